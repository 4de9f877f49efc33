// npm run bench:live: status writes per minute for 1,000 rooms whose audiences keep changing, with the
// operator's default intervals (a room's /live polled every 10 s, its live fields written at most once
// per 15 s, minor moves after 60 s). The rooms run on kwok nodes; their /live is simulated
// (e2e/src/live-sim.ts). BENCH_LIVE_ROOMS (1000), BENCH_LIVE_SECONDS (180) and BENCH_LIVE_CHURN_MS
// (5000: how often each room's audience changes) change the run. Result in
// test-artifacts/bench-live.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, expect, it } from '@jest/globals';
import type { RunningOperator } from '../../operator/src/index.js';
import { eventually, REPO_DIR, startCluster, type Cluster } from '../src/cluster.js';
import { liveStatuses, simpleRooms, startLiveSim, type LiveSim } from '../src/live-sim.js';
import { installCrd, runOperator } from '../src/operator.js';

const ROOMS = Number(process.env.BENCH_LIVE_ROOMS ?? 1000);
const SECONDS = Number(process.env.BENCH_LIVE_SECONDS ?? 180);
const CHURN_MS = Number(process.env.BENCH_LIVE_CHURN_MS ?? 5000);
const NS = 'audience';

let cluster: Cluster | undefined;
let operator: RunningOperator | undefined;
let sim: LiveSim | undefined;

afterAll(async () => {
  await operator?.stop();
  await sim?.close();
  await cluster?.stop();
}, 120_000);

it(`status writes per minute, ${ROOMS} rooms with changing audiences`, async () => {
  cluster = await startCluster({
    env: {
      STREAMROOM_KWOK_NODES: String(Math.max(2, Math.ceil(ROOMS / 250) + 1)),
      STREAMROOM_KWOK_NODE_PODS: '250',
    },
  });
  await installCrd(cluster);
  await cluster.kubectl(['wait', '--for=condition=Ready', 'nodes', '--all', '--timeout=60s']);
  await cluster.kubectl(['create', 'namespace', NS]);
  sim = await startLiveSim(Array.from({ length: ROOMS }, (_, i) => `${NS}/room-${i}`));
  operator = await runOperator(cluster, { args: ['--live-url-template', sim.template] });
  await cluster.kubectl(['apply', '-f', '-'], JSON.stringify(simpleRooms(NS, ROOMS)));
  await eventually(
    'every room with its live status',
    async () =>
      [...(await liveStatuses(cluster!, NS)).values()].filter((s) => s.viewers !== undefined).length ===
      ROOMS,
    900_000,
    5000,
  );
  const kube = operator.controller.kube;
  const before = { live: kube.writes.live, status: kube.writes.status, requests: sim.requests };
  const started = Date.now();
  sim.churn(CHURN_MS);
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  sim.freeze();
  const minutes = (Date.now() - started) / 60_000;
  const result = {
    rooms: ROOMS,
    seconds: Math.round(minutes * 60),
    audienceChangeEveryMs: CHURN_MS,
    pollSeconds: 10,
    statusIntervalSeconds: 15,
    liveWritesPerMinute: Math.round((kube.writes.live - before.live) / minutes),
    otherStatusWritesPerMinute: Math.round((kube.writes.status - before.status) / minutes),
    pollsPerSecond: Math.round((sim.requests - before.requests) / (minutes * 60)),
    audienceChangesPerMinute: Math.round((ROOMS * 60_000) / CHURN_MS),
  };
  const dir = path.join(REPO_DIR, 'test-artifacts');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'bench-live.json'), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`\nbench:live ${JSON.stringify(result)}\n`);
  expect(result.liveWritesPerMinute).toBeGreaterThan(0);
}, 1_800_000);
