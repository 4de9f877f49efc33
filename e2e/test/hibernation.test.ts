// spec.hibernation on kwok: rooms nobody visits go to sleep (their /live simulated, e2e/src/live-sim.ts):
// no pod, no autoscaler, no Redis, their Service pointed at the operator's waker; while they sleep the
// operator writes nothing, even through resyncs. The waker wakes a room on a visitor's request, once
// however many ask, never a suspended one. HIBERNATION_ROOMS (default 100) sets the fleet size.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { RunningOperator } from '../../operator/src/index.js';
import { eventually, startCluster, type Cluster } from '../src/cluster.js';
import { startLiveSim, type LiveSim } from '../src/live-sim.js';
import { installCrd, runOperator } from '../src/operator.js';

const ROOMS = Number(process.env.HIBERNATION_ROOMS ?? 100);
const NS = 'sleepy';
const IDLE_AFTER = 10;

let cluster: Cluster;
let operator: RunningOperator | undefined;
let sim: LiveSim | undefined;

const names = Array.from({ length: ROOMS }, (_, i) => `room-${i}`);
const count = async (kind: string, selector?: string) =>
  (await cluster.kubectl(['get', kind, '-n', NS, '-o', 'name', ...(selector ? ['-l', selector] : [])]))
    .trim()
    .split('\n')
    .filter(Boolean).length;
const phases = async () => {
  const list = JSON.parse(await cluster.kubectl(['get', 'streamrooms', '-n', NS, '-o', 'json'])) as {
    items: { metadata: { name: string }; status?: { phase?: string } }[];
  };
  return new Map(list.items.map((r) => [r.metadata.name, r.status?.phase]));
};
/** A visitor's request to the waker, with the Host its browser sends for the room's URL. */
const visit = (host: string, method = 'POST', path = '/.streamroom/wake') =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(`${operator!.wakerUrl}${path}`, { method, headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
const hostOf = (name: string) => `${name}.${NS}.svc.cluster.local`;

beforeAll(async () => {
  cluster = await startCluster({
    kwokNodes: Math.max(2, Math.ceil((ROOMS * 2) / 250) + 1),
    kwokNodePods: 250,
  });
  await installCrd(cluster);
  await cluster.kubectl(['create', 'namespace', NS]);
  sim = await startLiveSim(names.map((n) => `${NS}/${n}`));
  // nobody came to any room since a minute ago
  const idleSince = new Date(Date.now() - 60_000).toISOString();
  for (const key of sim.rooms.keys())
    sim.rooms.set(key, { live: false, viewers: 0, lastActivityTime: idleSince });
  operator = await runOperator(cluster, {
    args: [
      '--live-url-template',
      sim.template,
      '--live-poll-interval',
      '2',
      '--waker-listen',
      '127.0.0.1:0',
      // (a documentation address: kwok's nodes run nothing; the test speaks to the waker directly)
      '--waker-address',
      '192.0.2.80',
      '--max-waking',
      '5',
    ],
  });
}, 240_000);

afterAll(async () => {
  await operator?.stop();
  await sim?.close();
  await cluster?.stop();
}, 60_000);

describe('hibernation', () => {
  it(`puts ${ROOMS} idle rooms to sleep at no pod, and writes nothing while they sleep`, async () => {
    const rooms = names.map((name) => ({
      apiVersion: 'streamroom.dev/v1alpha1',
      kind: 'StreamRoom',
      metadata: { name, namespace: NS },
      spec: {
        image: 'streamroom/room:test',
        media: { mode: 'PeerToPeer' },
        replicas: { min: 1, max: 2 },
        hibernation: { idleAfterSeconds: IDLE_AFTER },
      },
    }));
    const appliedAt = Date.now();
    await cluster.kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: rooms }),
    );
    // each room: Ready with its pods and its Redis first (the live poller only asks serving rooms)...
    await eventually(
      'every room Hibernating',
      async () => [...(await phases()).values()].filter((p) => p === 'Hibernating').length === ROOMS,
      600_000,
      2000,
    );
    process.stdout.write(
      `hibernation: ${ROOMS} rooms applied -> all Hibernating in ${Math.round((Date.now() - appliedAt) / 1000)} s\n`,
    );
    // ...then nothing: no pod (room or Redis), no autoscaler, no Redis Deployment; one waker slice each
    await eventually('no pod left', async () => (await count('pods')) === 0, 120_000, 2000);
    expect(await count('hpa')).toBe(0);
    expect(await count('deployments', 'app.kubernetes.io/name=streamroom-redis')).toBe(0);
    expect(await count('deployments', 'app.kubernetes.io/name=streamroom')).toBe(ROOMS);
    expect(await count('endpointslices', 'endpointslice.kubernetes.io/managed-by=streamroom-operator')).toBe(
      ROOMS,
    );
    const room0 = JSON.parse(
      await cluster.kubectl(['get', 'streamroom', 'room-0', '-n', NS, '-o', 'json']),
    ) as {
      status: { replicas: number; hibernatedAt?: string; live?: boolean; viewers?: number };
    };
    expect(room0.status).toMatchObject({ replicas: 0, live: false, viewers: 0 });
    expect(room0.status.hibernatedAt).toMatch(/Z$/);

    // asleep: a full resync and 20 s of polling write nothing
    const kube = operator!.controller.kube;
    await eventually('the queue idle', async () => operator!.controller.queue.length === 0, 60_000, 500);
    const before = JSON.stringify(kube.writes);
    operator!.controller.resync();
    await operator!.controller.queue.idle();
    await new Promise((r) => setTimeout(r, 20_000));
    expect(JSON.stringify(kube.writes)).toBe(before);
    expect(await count('pods')).toBe(0);
  }, 900_000);

  it('wakes a room once however many visitors ask, never a suspended one, at most --max-waking at once', async () => {
    // the waking page, for any path of the room's URL; an unknown host gets none
    const page = await visit(hostOf('room-0'), 'GET', '/');
    expect(page.status).toBe(503);
    expect(page.body).toContain('This room is waking up');
    expect((await visit('elsewhere.example.com', 'GET', '/')).status).toBe(404);

    // (the visitor who woke it stays: its /live says so once it runs)
    sim!.rooms.set(`${NS}/room-0`, { live: false, viewers: 1, lastActivityTime: new Date().toISOString() });
    // 200 visitors at once on room-0: one wake (kwok's pods are ready within seconds: the last
    // visitors may already hear that the room is up)
    const wakes = operator!.controller.stats.wakes;
    const answers = await Promise.all(Array.from({ length: 200 }, () => visit(hostOf('room-0'))));
    expect(answers[0]).toEqual({ status: 200, body: '{"state":"waking"}' });
    for (const a of answers)
      expect(['200 {"state":"waking"}', '200 {"state":"ready"}']).toContain(`${a.status} ${a.body}`);
    expect(operator!.controller.stats.wakes).toBe(wakes + 1);
    // the room woke alone: its pods and Redis are back, the other rooms still sleep
    await eventually('room-0 Ready', async () => (await phases()).get('room-0') === 'Ready', 180_000, 1000);
    expect(await count('deployments', 'app.kubernetes.io/name=streamroom-redis')).toBe(1);
    expect(await count('hpa')).toBe(1);
    // its Service no longer reaches the waker
    await eventually(
      'room-0 waker slice gone',
      async () =>
        (await cluster.kubectlResult(['get', 'endpointslice', 'room-0-waker', '-n', NS])).code !== 0,
      60_000,
      1000,
    );
    expect([...(await phases()).values()].filter((p) => p === 'Hibernating').length).toBe(ROOMS - 1);
    expect(JSON.parse((await visit(hostOf('room-0'))).body)).toEqual({ state: 'ready' });

    // a suspended room: never woken by a visitor
    await cluster.kubectl([
      'patch',
      'streamroom',
      'room-1',
      '-n',
      NS,
      '--type',
      'merge',
      '-p',
      '{"spec":{"suspend":true}}',
    ]);
    await eventually(
      'room-1 Suspended',
      async () => (await phases()).get('room-1') === 'Suspended',
      60_000,
      1000,
    );
    const suspended = await visit(hostOf('room-1'));
    expect(suspended).toEqual({ status: 409, body: '{"state":"suspended"}' });

    // at most 5 rooms wake at once: the next visitors are told to retry
    const many = names.slice(2, 12);
    const before = operator!.controller.stats.wakes;
    const states = await Promise.all(
      many.map((n) => visit(hostOf(n)).then((a) => JSON.parse(a.body).state as string)),
    );
    expect(states.filter((s) => s === 'waking')).toHaveLength(5);
    expect(states.filter((s) => s === 'busy')).toHaveLength(5);
    expect(operator!.controller.stats.wakes).toBe(before + 5);
  }, 600_000);
});
