// npm run bench:live: status writes per minute for 1,000 rooms whose audiences keep changing, with the
// operator's default intervals (a room's /live polled every 10 s, its live fields written at most once
// per 15 s, minor moves after 60 s). The rooms run on kwok nodes; their /live is simulated
// (e2e/src/live-sim.ts). The operator is the built one, in a process of its own (as in a cluster);
// its writes are counted from its /metrics (rest_client_requests_total). BENCH_LIVE_ROOMS (1000),
// BENCH_LIVE_SECONDS (180) and BENCH_LIVE_CHURN_MS (5000: how often each room's audience changes)
// change the run. Result in test-artifacts/bench-live.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, expect, it } from '@jest/globals';
import { eventually, REPO_DIR, startCluster, type Cluster } from '../src/cluster.js';
import { requestsByKind, spawnOperator, type OperatorProcess } from '../src/fleet.js';
import { liveStatuses, simpleRooms, startLiveSim, type LiveSim } from '../src/live-sim.js';
import { installCrd } from '../src/operator.js';

const ROOMS = Number(process.env.BENCH_LIVE_ROOMS ?? 1000);
const SECONDS = Number(process.env.BENCH_LIVE_SECONDS ?? 180);
const CHURN_MS = Number(process.env.BENCH_LIVE_CHURN_MS ?? 5000);
const NS = 'audience';

let cluster: Cluster | undefined;
let operator: OperatorProcess | undefined;
let sim: LiveSim | undefined;

afterAll(async () => {
  await operator?.stop();
  await sim?.close();
  await cluster?.stop();
}, 120_000);

it(`status writes per minute, ${ROOMS} rooms with changing audiences`, async () => {
  cluster = await startCluster({ kwokNodes: Math.max(2, Math.ceil(ROOMS / 250) + 1), kwokNodePods: 250 });
  await installCrd(cluster);
  await cluster.kubectl(['wait', '--for=condition=Ready', 'nodes', '--all', '--timeout=60s']);
  await cluster.kubectl(['create', 'namespace', NS]);
  sim = await startLiveSim(Array.from({ length: ROOMS }, (_, i) => `${NS}/room-${i}`));
  operator = await spawnOperator(cluster, { args: ['--live-url-template', sim.template], name: 'live' });
  const op = operator;
  /** PATCHes of streamrooms/status so far (the live fields', and any the reconcile makes). */
  const statusPatches = async () => requestsByKind(await op.metrics()).get('PATCH streamrooms/status') ?? 0;
  await cluster.kubectl(['apply', '-f', '-'], JSON.stringify(simpleRooms(NS, ROOMS)));
  await eventually(
    'every room with its live status',
    async () =>
      [...(await liveStatuses(cluster!, NS)).values()].filter((s) => s.viewers !== undefined).length ===
      ROOMS,
    900_000,
    5000,
  );
  const before = { patches: await statusPatches(), requests: sim.requests, cpu: op.cpuSeconds() };
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
    statusWritesPerMinute: Math.round(((await statusPatches()) - before.patches) / minutes),
    pollsPerSecond: Math.round((sim.requests - before.requests) / (minutes * 60)),
    operatorCpuPercent: Math.round(((op.cpuSeconds() - before.cpu) / (minutes * 60)) * 100),
    operatorPeakRssMiB: op.peakRssMiB(),
    audienceChangesPerMinute: Math.round((ROOMS * 60_000) / CHURN_MS),
  };
  const dir = path.join(REPO_DIR, 'test-artifacts');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'bench-live.json'), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`\nbench:live ${JSON.stringify(result)}\n`);
  expect(result.statusWritesPerMinute).toBeGreaterThan(0);
}, 1_800_000);
