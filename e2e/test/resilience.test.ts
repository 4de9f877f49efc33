// The operator when the API server goes away or its watches are cut short, against a real control plane:
// relists (many, all informers at once, while reconciles run) never replace a room's keys; after the API
// server was frozen (SIGSTOP) or stopped and started again, a change to a room is reconciled within
// seconds of the API server being ready; and /readyz says when the API server cannot be reached.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { RunningOperator } from '../../operator/src/index.js';
import { createLogger } from '../../operator/src/log.js';
import { apiServerControl, eventually, REPO_DIR, startCluster, type Cluster } from '../src/cluster.js';
import { installCrd, roomManifest, runOperator } from '../src/operator.js';

const NS = 'resilience';
const ROOMS = 30;
let cluster: Cluster;
let operator: RunningOperator | undefined;
const metrics: Record<string, number> = {};

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const getJson = async (args: string[]): Promise<Obj> =>
  JSON.parse(await cluster.kubectl([...args, '-o', 'json']));
const names = Array.from({ length: ROOMS }, (_, i) => `r-${String(i).padStart(3, '0')}`);

/** Every room's keys Secret: its data and resourceVersion, by name. */
async function secrets(): Promise<Record<string, { data: Obj; rv: string }>> {
  const list = await getJson([
    'get',
    'secrets',
    '-n',
    NS,
    '-l',
    'app.kubernetes.io/managed-by=streamroom-operator',
  ]);
  return Object.fromEntries(
    (list.items as Obj[]).map((s) => [s.metadata.name, { data: s.data, rv: s.metadata.resourceVersion }]),
  );
}

/** Time from now until the room's Deployment shows the title just set. */
async function timeToReconcile(room: string, title: string): Promise<number> {
  const started = Date.now();
  await cluster.kubectl([
    'patch',
    'streamroom',
    room,
    '-n',
    NS,
    '--type',
    'merge',
    '-p',
    JSON.stringify({ spec: { title } }),
  ]);
  await eventually(
    `${room}'s Deployment with title ${title}`,
    async () => {
      const d = await getJson(['get', 'deployment', room, '-n', NS, '--request-timeout=2s']);
      const env = d.spec.template.spec.containers[0].env as { name: string; value?: string }[];
      return env.some((e) => e.name === 'ROOM_TITLE' && e.value === title);
    },
    60_000,
    100,
  );
  return Date.now() - started;
}

const readyz = async (url: string | undefined) => {
  const r = await fetch(`${url}/readyz`).catch(() => undefined);
  return { status: r?.status, body: (await r?.text())?.trim() };
};

beforeAll(async () => {
  cluster = await startCluster();
  await installCrd(cluster);
  await cluster.kubectl(['create', 'namespace', NS]);
  // max 3: each room has the full set of keys (broadcaster, Redis password and URL) and its own Redis
  const rooms = names.map((n) =>
    roomManifest(n, NS, { image: 'streamroom/room:test', replicas: { min: 1, max: 3 } }),
  );
  await cluster.kubectl(
    ['apply', '-f', '-'],
    JSON.stringify({ apiVersion: 'v1', kind: 'List', items: rooms }),
  );
}, 240_000);

afterAll(async () => {
  await operator?.stop();
  await cluster?.stop();
  mkdirSync(path.join(REPO_DIR, 'test-artifacts'), { recursive: true });
  writeFileSync(
    path.join(REPO_DIR, 'test-artifacts', 'resilience.json'),
    `${JSON.stringify(metrics, null, 2)}\n`,
  );
}, 60_000);

describe('the operator under relists and API outages', () => {
  it('keeps every room\u2019s keys through 100+ relists of all informers at once while reconciling', async () => {
    operator = await runOperator(cluster, { args: ['--health-address', '127.0.0.1:0'] });
    await eventually(
      'every room Ready',
      async () => {
        const list = await getJson(['get', 'streamrooms', '-n', NS]);
        return (list.items as Obj[]).filter((r) => r.status?.phase === 'Ready').length === ROOMS;
      },
      120_000,
      500,
    );
    const before = await secrets();
    expect(Object.keys(before)).toHaveLength(ROOMS);
    await operator.stop();

    // Every watch relists after 1 s of silence, and every room is reconciled every second.
    let relists = 0;
    const log = createLogger('info', (line) => {
      if (JSON.parse(line).msg === 'relisted') relists++;
    });
    operator = await runOperator(cluster, {
      log,
      args: ['--watch-idle-timeout', '1', '--resync-period', '1', '--health-address', '127.0.0.1:0'],
    });
    const started = Date.now();
    while (relists < 100 && Date.now() - started < 120_000) await new Promise((r) => setTimeout(r, 500));
    metrics.relists = relists;
    metrics.relistSeconds = (Date.now() - started) / 1000;
    metrics.reconcilesDuringRelists = operator.controller.stats.reconciles;
    expect(relists).toBeGreaterThanOrEqual(100);
    expect(operator.controller.stats.reconciles).toBeGreaterThan(ROOMS * 5);
    const after = await secrets();
    let changed = 0;
    for (const [name, s] of Object.entries(before)) {
      expect({ name, data: after[name]?.data }).toEqual({ name, data: s.data });
      if (after[name]?.rv !== s.rv) changed++;
    }
    metrics.keySecretsWritten = changed;
    expect(changed).toBe(0);
    await operator.stop();
    operator = undefined;
  }, 300_000);

  it('reconciles a change within seconds of the API server coming back from a freeze (SIGSTOP 30 s)', async () => {
    operator = await runOperator(cluster, { args: ['--health-address', '127.0.0.1:0'] });
    await timeToReconcile('r-000', 'before the freeze');
    const api = apiServerControl(cluster);
    api.pause();
    try {
      await new Promise((r) => setTimeout(r, 30_000));
    } finally {
      api.resume();
    }
    await api.waitReady();
    const ms = await timeToReconcile('r-000', 'after the freeze');
    metrics.afterFreezeMs = ms;
    expect(ms).toBeLessThan(5000);
  }, 120_000);

  it('reconciles a change within seconds of the API server being started again, and says so in /readyz', async () => {
    const api = apiServerControl(cluster);
    await api.stop();
    const downAt = Date.now();
    // readiness follows the API server (liveness does not: nothing restarts the operator for an outage)
    const unready = await eventually(
      'operator /readyz 503',
      async () => {
        const r = await readyz(operator?.healthUrl);
        return r.status === 503 ? r.body : undefined;
      },
      30_000,
      200,
    );
    expect(unready).toMatch(/^API server unreachable/);
    expect((await fetch(`${operator?.healthUrl}/healthz`)).status).toBe(200);
    await new Promise((r) => setTimeout(r, Math.max(0, 30_000 - (Date.now() - downAt))));
    api.start();
    metrics.apiServerStartMs = await api.waitReady();
    const ms = await timeToReconcile('r-001', 'after the restart');
    metrics.afterRestartMs = ms;
    expect(ms).toBeLessThan(5000);
    await eventually(
      'operator /readyz 200',
      async () => (await readyz(operator?.healthUrl)).status === 200,
      10_000,
    );
  }, 180_000);
});
