// status.live, status.viewers and status.lastActivityTime on kwok: 100 rooms whose /live is simulated
// (e2e/src/live-sim.ts) while their audiences change every second. The operator polls every 2 s and
// writes a room at most once per 5 s here (10 s and 15 s by default; npm run bench:live measures the
// defaults with 1,000 rooms), so the writes stay within that bound, the status ends up saying what the
// rooms say, and once the audiences stand still nothing more is written.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { RunningOperator } from '../../operator/src/index.js';
import { eventually, startCluster, type Cluster } from '../src/cluster.js';
import { liveStatuses, simpleRooms, startLiveSim, type LiveSim } from '../src/live-sim.js';
import { installCrd, runOperator } from '../src/operator.js';

const ROOMS = 100;
const NS = 'audience';
const STATUS_SECONDS = 5;
const CHURN_SECONDS = 40;

let cluster: Cluster;
let operator: RunningOperator | undefined;
let sim: LiveSim | undefined;

beforeAll(async () => {
  cluster = await startCluster();
  await installCrd(cluster);
  await cluster.kubectl(['create', 'namespace', NS]);
  sim = await startLiveSim(Array.from({ length: ROOMS }, (_, i) => `${NS}/room-${i}`));
  operator = await runOperator(cluster, {
    args: [
      '--live-url-template',
      sim.template,
      '--live-poll-interval',
      '2',
      '--live-status-interval',
      String(STATUS_SECONDS),
    ],
  });
}, 240_000);

afterAll(async () => {
  await operator?.stop();
  await sim?.close();
  await cluster?.stop();
}, 60_000);

/** Rooms whose status does not say what the room says. */
async function behind(): Promise<string[]> {
  const statuses = await liveStatuses(cluster, NS);
  return [...sim!.rooms].flatMap(([key, f]) => {
    const s = statuses.get(key);
    return s?.live === f.live && s?.viewers === f.viewers ? [] : [key];
  });
}

describe('live status', () => {
  it('shows each room audience, coalesced, and writes nothing once it stands still', async () => {
    await cluster.kubectl(['apply', '-f', '-'], JSON.stringify(simpleRooms(NS, ROOMS)));
    await eventually(
      'every room Ready and its audience in its status',
      async () => (await behind()).length === 0,
      300_000,
      2000,
    );
    const table = await cluster.kubectl(['get', 'streamrooms', '-n', NS, 'room-0']);
    const [header, row] = table.trim().split('\n');
    expect(header).toMatch(/^NAME\s+PHASE\s+READY\s+LIVE\s+VIEWERS\s+URL\s+AGE$/);
    const f = sim!.rooms.get(`${NS}/room-0`)!;
    expect(row).toMatch(new RegExp(`^room-0\\s+Ready\\s+1/1\\s+${f.live}\\s+${f.viewers}\\s`));

    // audiences change every second, in every room
    const kube = operator!.controller.kube;
    const before = kube.writes.live;
    const started = Date.now();
    sim!.churn(1000);
    await new Promise((r) => setTimeout(r, CHURN_SECONDS * 1000));
    sim!.freeze();
    const minutes = (Date.now() - started) / 60_000;
    const writes = kube.writes.live - before;
    const perMinute = Math.round(writes / minutes);
    process.stdout.write(
      `live status: ${ROOMS} rooms, audiences changing every ~1 s, poll 2 s, write interval ${STATUS_SECONDS} s: ${writes} writes in ${(minutes * 60).toFixed(0)} s = ${perMinute} writes/min (${(perMinute / ROOMS).toFixed(1)} per room; at most ${60 / STATUS_SECONDS} per room)\n`,
    );
    // at most one write per room per interval (plus one in flight at each end), and many rooms written
    expect(writes).toBeLessThanOrEqual(ROOMS * (Math.ceil((minutes * 60) / STATUS_SECONDS) + 1));
    expect(writes).toBeGreaterThan(ROOMS * 2);

    // once the audiences stand still the status catches up (minor changes wait 4 intervals)...
    await eventually('statuses caught up', async () => (await behind()).length === 0, 60_000, 2000);
    // ...and nothing more is written, though every room is still asked
    const settled = kube.writes.live;
    const requests = sim!.requests;
    await new Promise((r) => setTimeout(r, 15_000));
    expect(kube.writes.live).toBe(settled);
    const asked = sim!.requests - requests;
    process.stdout.write(
      `live status: ${asked} polls in 15 s with nothing written (${(asked / 15).toFixed(0)}/s)\n`,
    );
    // (7.5 polls per room at a 2 s interval; fewer on a busy machine, whose timers run late)
    expect(asked).toBeGreaterThan(ROOMS * 2);
    expect(operator!.controller.stats.reconcileErrors).toBe(0);
  }, 600_000);
});
