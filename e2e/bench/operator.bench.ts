// npm run bench:operator: the operator at fleet scale on kwok nodes, one table. Rows:
// - baseline: the rooms and the very children the operator would make, created straight through the
//   API at the operator's concurrency, no operator: the floor of this machine's API server;
// - the operator (a process of its own, built) with 1, then 100, then 1,000 rooms, each followed by an
//   idle period whose writes are counted (there must be none);
// - 100 rooms again with the controller-manager and scheduler at their default client rate limits.
// Each row's cluster: kwok nodes enough for the pods, HPA sync every 15 s (the default), metrics-server.
// BENCH_ROOMS (default "1,100,1000"), BENCH_IDLE_SECONDS (60) and BENCH_BASELINE=0 change the run.
// The table and every row's requests by verb and resource go to test-artifacts/bench-operator.{md,json}.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, expect, it } from '@jest/globals';
import { REPO_DIR, startCluster, type Cluster, type ClusterOptions } from '../src/cluster.js';
import {
  baselineRow,
  fleetTable,
  operatorRow,
  spawnOperator,
  type FleetRow,
  type OperatorProcess,
} from '../src/fleet.js';
import { installCrd } from '../src/operator.js';

const SIZES = (process.env.BENCH_ROOMS ?? '1,100,1000').split(',').map(Number);
const IDLE = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
const LARGEST = Math.max(...SIZES);
const WORKERS = 16; // the operator's default --workers
const rows: FleetRow[] = [];
let cluster: Cluster | undefined;
let operator: OperatorProcess | undefined;

async function cluster_(rooms: number, options: ClusterOptions = {}): Promise<Cluster> {
  // two pods per room (the room and its Redis), 250 per simulated node
  const nodes = Math.max(2, Math.ceil((rooms * 2) / 250) + 1);
  const c = await startCluster({ kwokNodes: nodes, kwokNodePods: 250, hpaSyncPeriod: '15s', ...options });
  await installCrd(c);
  await c.kubectl(['wait', '--for=condition=Ready', 'nodes', '--all', '--timeout=60s']);
  return c;
}

/** Writes the table so far (a long run leaves what it measured even if a later row fails). */
function report(): void {
  const dir = path.join(REPO_DIR, 'test-artifacts');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'bench-operator.md'), `${fleetTable(rows)}\n`);
  writeFileSync(path.join(dir, 'bench-operator.json'), `${JSON.stringify(rows, null, 2)}\n`);
  process.stdout.write(`${rows.at(-1)?.label}: done\n`);
}

afterAll(() => {
  process.stdout.write(
    `\n${fleetTable(rows)}\n\n(test-artifacts/bench-operator.json: requests per room by verb and resource)\n`,
  );
});

afterEach(async () => {
  await operator?.stop();
  operator = undefined;
  await cluster?.stop();
  cluster = undefined;
}, 120_000);

it('baseline: the objects without the operator', async () => {
  if (process.env.BENCH_BASELINE === '0') return;
  cluster = await cluster_(LARGEST);
  rows.push(
    await baselineRow(cluster, 'baseline', LARGEST, { concurrency: WORKERS, readyTimeoutMs: 900_000 }),
  );
  report();
}, 1_200_000);

it('the operator with 1, 100 and 1,000 rooms', async () => {
  cluster = await cluster_(SIZES.reduce((a, b) => a + b, 0));
  operator = await spawnOperator(cluster, { args: ['--log-level', 'warn'] });
  for (const n of SIZES) {
    const row = await operatorRow(cluster, operator, `rooms-${n}`, n, {
      idleSeconds: IDLE,
      readyTimeoutMs: 900_000,
    });
    rows.push(row);
    report();
    expect(row.idleWrites).toBe(0);
  }
}, 3_600_000);

it('100 rooms with the control plane at its default rate limits', async () => {
  const n = Math.min(100, LARGEST);
  cluster = await cluster_(n, { controlPlaneQps: 'default' });
  operator = await spawnOperator(cluster, { args: ['--log-level', 'warn'] });
  rows.push(
    await operatorRow(cluster, operator, 'defaults', n, {
      label: `operator, ${n} rooms, controller-manager and scheduler at default QPS`,
      idleSeconds: 0,
      readyTimeoutMs: 900_000,
    }),
  );
  report();
}, 1_200_000);
