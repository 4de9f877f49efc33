// The operator at fleet scale under faults, run as the chart runs it: two replicas of the built operator,
// each a process of its own, with --leader-elect=true (one leads, the other keeps warm caches), on a
// cluster of this file's own (kwok nodes), so the faults below touch no other suite. Every fault test
// ends converged: every room Ready, its children exactly what its spec asks for (by owner uid: nothing
// orphaned, duplicated, missing or unowned), and then not one write by any replica for IDLE_SECONDS
// (rest_client_requests_total by method). Each prints what it measured:
// 1. 100 rooms created: the reduced benchmark row; no write while idle, none at all by the standby;
// 2. the leader SIGKILLed while 100 rooms are being created: the standby's first write (failover time),
//    then every room Ready with one set of children;
// 3. watches expired: kube-apiserver crashes (SIGKILL), etcd moves on past every revision the
//    informers hold and is compacted there, kube-apiserver starts again (its watch cache begins at the
//    new revision): every informer of the replicas gets 410 Gone and relists; the caches are whole again
//    and not one room is written to (keys untouched). The leader keeps its Lease when kube-apiserver is
//    back within its renew deadline, else it steps down and the standby leads (both are checked);
// 4. kube-apiserver stopped for 30 s: neither replica spins (CPU measured) and both say 503; the standby
//    stays up, the leader steps down at its renew deadline (a leader that cannot renew its Lease must
//    stop leading: leader election's rule, as client-go's), and the standby leads and reconciles within
//    seconds of the API server's return (recovery times);
// 5. the Deployments of 50 rooms deleted at once: all back, new, Ready (repair time).
// The numbers also go to test-artifacts/fleet.json. FLEET_ROOMS changes the 100 (on 2 cores, 100 keeps
// the file near 6 minutes; `npm run bench:operator` measures 1,000), FLEET_QPS the replicas' client
// rate limit (50).
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { KubernetesObjectApi, type KubeConfig, type V1Deployment } from '@kubernetes/client-node';
import { CHILD_KINDS, MANAGED_BY, MANAGED_BY_LABEL } from '../../operator/src/builders.js';
import type { StreamRoom } from '../../operator/src/types.js';
import {
  apiServerControl,
  eventually,
  REPO_DIR,
  startCluster,
  type ApiServerControl,
  type Cluster,
} from '../src/cluster.js';
import {
  census,
  createRooms,
  FleetWatch,
  fleetTable,
  kubeConfigOf,
  operatorRow,
  requestsByKind,
  roomNames,
  spawnOperator,
  writesOf,
  type Census,
  type OperatorProcess,
} from '../src/fleet.js';
import { installCrd } from '../src/operator.js';

const LEASE_NAMESPACE = 'default';
const LEASE = 'streamroom-operator';
const ROOMS = Number(process.env.FLEET_ROOMS ?? 100);
/** The replicas' client rate limit (--kube-api-qps; burst twice that). */
const QPS = Number(process.env.FLEET_QPS ?? 50);
/** The idle window after each test has converged: no replica may write in it. */
const IDLE_SECONDS = 10;
/** The namespaces whose rooms exist by the time of the fault tests. */
const FLEET = ['bench', 'failover'];
/** The informers of an operator that watches all namespaces, as its log names them. */
const INFORMERS = ['StreamRoom', ...CHILD_KINDS];

let cluster: Cluster;
let kc: KubeConfig;
/** Every replica started, for the cleanup. */
const replicas: { op: OperatorProcess; log: string }[] = [];
let leader: OperatorProcess;
let standby: OperatorProcess;
const measured: Record<string, unknown> = {};

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const getJson = async (args: string[]): Promise<Obj> =>
  JSON.parse(await cluster.kubectl([...args, '-o', 'json', '--request-timeout=10s']));
const alive = (op: OperatorProcess) => op.child.exitCode === null && op.child.signalCode === null;
const logOf = (op: OperatorProcess) => replicas.find((r) => r.op === op)?.log ?? '';
const round = (ms: number) => Math.round(ms);

/** Starts one more replica of the operator (it stands by while another holds the Lease). */
async function replica(): Promise<OperatorProcess> {
  const name = `operator-${replicas.length + 1}`;
  const op = await spawnOperator(cluster, {
    name,
    args: [
      '--leader-elect=true',
      '--leader-election-namespace',
      LEASE_NAMESPACE,
      // Below the default 200/400: on 2 cores that also run the whole control plane, the leader's own
      // writes at 200/s keep kube-apiserver from answering its Lease renewals within the 10 s renew
      // deadline, and it steps down mid-test (as it must). bench:operator measures the defaults.
      '--kube-api-qps',
      String(QPS),
      '--kube-api-burst',
      String(2 * QPS),
    ],
  });
  replicas.push({ op, log: path.join(cluster.dir, 'logs', `${name}.log`) });
  return op;
}

async function readyz(op: OperatorProcess): Promise<{ status?: number; body: string }> {
  const r = await fetch(`${op.healthUrl}/readyz`, { signal: AbortSignal.timeout(2000) }).catch(
    () => undefined,
  );
  return { status: r?.status, body: ((await r?.text().catch(() => '')) ?? '').trim() };
}

async function metric(op: OperatorProcess, name: string): Promise<number | undefined> {
  return (await op.metrics()).find((s) => s.name === name)?.value;
}

/** The replica's writes so far (POST, PUT, PATCH, DELETE; its Lease calls are not among them). */
const writes = async (op: OperatorProcess) => writesOf(requestsByKind(await op.metrics()));

async function lease(): Promise<{ holderIdentity?: string; leaseTransitions?: number }> {
  return (await getJson(['get', 'lease', LEASE, '-n', LEASE_NAMESPACE])).spec;
}

/** How a replica ended, with the end of its log (for a failure message). */
async function ending(op: OperatorProcess): Promise<string> {
  const log = readFileSync(logOf(op), 'utf8').trimEnd().split('\n').slice(-5).join('\n');
  return `${path.basename(logOf(op))} exited (${await op.exited}); its log ends:\n${log}`;
}

/**
 * Waits until one of the two leads (its metrics and /readyz say so) and the other stands by, naming the
 * Lease's holder as the leader; resolves with [leader, standby]. Fails at once when either has exited.
 */
async function elected(a: OperatorProcess, b: OperatorProcess): Promise<[OperatorProcess, OperatorProcess]> {
  const role = async (op: OperatorProcess) => {
    const [r, master] = await Promise.all([readyz(op), metric(op, 'leader_election_master_status')]);
    if (r.status === 200 && r.body === 'ok' && master === 1) return 'leader';
    const named = /^standby \(leader: (.+)\)$/.exec(r.body)?.[1];
    return r.status === 200 && master === 0 ? named : undefined;
  };
  const deadline = performance.now() + 90_000;
  for (;;) {
    for (const op of [a, b]) if (!alive(op)) throw new Error(`no election: ${await ending(op)}`);
    const [ra, rb] = await Promise.all([role(a).catch(() => undefined), role(b).catch(() => undefined)]);
    const holder = (await lease().catch(() => undefined))?.holderIdentity;
    if (ra === 'leader' && rb === holder) return [a, b];
    if (rb === 'leader' && ra === holder) return [b, a];
    if (performance.now() > deadline) {
      throw new Error(`no election within 90 s: roles ${String(ra)}, ${String(rb)}; Lease holder ${holder}`);
    }
    await sleep(200);
  }
}

/** Waits until the leader has nothing left to do: an empty queue and no write for 3 s. */
async function settled(op: OperatorProcess): Promise<void> {
  let last = -1;
  const deadline = performance.now() + 120_000;
  for (;;) {
    if (!alive(op)) throw new Error(`the leader did not settle: ${await ending(op)}`);
    const [w, depth] = [await writes(op), await metric(op, 'workqueue_depth')];
    if (w === last && depth === 0) return;
    last = w;
    if (performance.now() > deadline) throw new Error(`the leader did not settle in 120 s (queue ${depth})`);
    await sleep(3000);
  }
}

function expectClean(c: Census, rooms: number): void {
  expect(c).toEqual({ rooms, orphans: [], wrong: [], unowned: [] });
}

/** Every room's keys Secret (all namespaces): its data and resourceVersion, by namespace/name. */
async function keySecrets(): Promise<Map<string, { data: Obj; rv: string }>> {
  const list = await getJson(['get', 'secrets', '-A', '-l', `${MANAGED_BY_LABEL}=${MANAGED_BY}`]);
  return new Map(
    (list.items as Obj[]).map((s) => [
      `${s.metadata.namespace}/${s.metadata.name}`,
      { data: s.data, rv: s.metadata.resourceVersion },
    ]),
  );
}

/** Polls a replica's /readyz every 100 ms until stopped, keeping each change of answer and when it came. */
function readyzTimeline(op: OperatorProcess) {
  const changes: { at: number; status?: number; body: string }[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const r = await readyz(op);
      const last = changes.at(-1);
      if (!last || last.status !== r.status || last.body !== r.body)
        changes.push({ at: performance.now(), ...r });
      await sleep(100);
    }
  })();
  return {
    changes,
    /** The answer in effect at `at`. */
    at: (at: number) => changes.filter((c) => c.at <= at).at(-1),
    async stop() {
      running = false;
      await loop;
    },
  };
}

/** The replica's log lines (JSON) written after byte `from`. */
function logLines(op: OperatorProcess, from: number): Obj[] {
  return readFileSync(logOf(op))
    .subarray(from)
    .toString('utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Obj);
}

/** The pid of a control-plane process, from <cluster>/pids (e2e/cluster/up.sh; apiServerControl keeps it). */
function componentPid(name: string): number {
  const line = readFileSync(path.join(cluster.dir, 'pids'), 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`no ${name} in ${cluster.dir}/pids`);
  return Number(line.split(' ')[1]);
}

/** etcd's client URL, from the env file up.sh writes. */
function etcdUrl(): string {
  const url = /^export STREAMROOM_ETCD_URL=(.+)$/m.exec(
    readFileSync(path.join(cluster.dir, 'env'), 'utf8'),
  )?.[1];
  if (!url) throw new Error(`no STREAMROOM_ETCD_URL in ${cluster.dir}/env`);
  return url;
}

const b64 = (text: string) => Buffer.from(text).toString('base64');

/**
 * Moves etcd on by one revision (a key outside /registry, which kube-apiserver never reads) and compacts
 * it, physically, to that revision, through etcd's HTTP/JSON gateway: no revision any informer or watch
 * cache held is left. Resolves with the revision.
 */
async function bumpAndCompactEtcd(): Promise<number> {
  const url = etcdUrl();
  const post = async (p: string, body: object): Promise<Obj> => {
    const r = await fetch(`${url}${p}`, {
      method: 'POST',
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const json = (await r.json()) as Obj;
    if (!r.ok) throw new Error(`etcd ${p}: HTTP ${r.status} ${JSON.stringify(json)}`);
    return json;
  };
  const key = b64('/streamroom-e2e/revision-bump');
  const put = await post('/v3/kv/put', { key, value: b64(new Date().toISOString()) });
  const revision = Number(put.header.revision);
  await post('/v3/kv/compaction', { revision: String(revision), physical: true });
  // every older revision is gone now
  await expect(post('/v3/kv/range', { key, revision: String(revision - 1) })).rejects.toThrow(/compacted/);
  return revision;
}

/** Whether a process is still running (not gone, not a zombie). */
function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

/** SIGKILLs kube-apiserver (a crash) and waits until it is gone. */
async function crashApiServer(): Promise<void> {
  const pid = componentPid('kube-apiserver');
  process.kill(pid, 'SIGKILL');
  await eventually('kube-apiserver gone', async () => !running(pid), 10_000, 20);
}

/** api.waitReady(), with the end of kube-apiserver's log when it does not get ready. */
async function apiServerReady(api: ApiServerControl): Promise<number> {
  try {
    return await api.waitReady(90_000);
  } catch (err) {
    const log = readFileSync(path.join(cluster.dir, 'logs', 'kube-apiserver.log'), 'utf8');
    throw new Error(`${String(err)}\nkube-apiserver.log ends:\n${log.split('\n').slice(-40).join('\n')}`);
  }
}

/** Waits until the Lease was renewed again: from then on the leader has its whole renew deadline. */
async function freshRenewal(): Promise<void> {
  const renewTime = async () =>
    (await getJson(['get', 'lease', LEASE, '-n', LEASE_NAMESPACE])).spec.renewTime as string;
  const last = await renewTime();
  await eventually('a renewal of the Lease', async () => (await renewTime()) !== last, 10_000, 50);
}

/** The replicas still running. */
const live = () => replicas.map((r) => r.op).filter(alive);

/** Every replica's writes so far, by pid. */
async function writesByReplica(): Promise<Map<number, number>> {
  const ops = live();
  const counts = await Promise.all(ops.map(writes));
  return new Map(ops.map((op, i) => [op.pid, counts[i] as number]));
}

/**
 * Converged: every room of the fleet Ready, the leader's queue empty, every namespace's children exactly
 * what its rooms want (census), then not one write by any running replica for IDLE_SECONDS. Resolves
 * with the writes seen in the idle window (asserted 0).
 */
async function converged(what: string): Promise<number> {
  const objects = KubernetesObjectApi.makeApiClient(kc);
  await eventually(
    `every room Ready (${FLEET.join(', ')})`,
    async () => {
      for (const ns of FLEET) {
        const rooms = (await objects.list<StreamRoom>('streamroom.dev/v1alpha1', 'StreamRoom', ns)).items;
        if (rooms.length !== ROOMS || rooms.some((r) => r.status?.phase !== 'Ready')) return false;
      }
      return true;
    },
    180_000,
    1000,
  );
  await settled(leader);
  for (const ns of FLEET) expectClean(await census(kc, ns), ROOMS);
  const before = await writesByReplica();
  await sleep(IDLE_SECONDS * 1000);
  const after = await writesByReplica();
  let idle = 0;
  for (const [pid, n] of after) idle += n - (before.get(pid) ?? n);
  console.log(
    `${what}: converged (${FLEET.length * ROOMS} rooms Ready, one set of children each), ${idle} writes in ${IDLE_SECONDS} s idle`,
  );
  const gone = replicas.map((r) => r.op).filter((op) => before.has(op.pid) && !after.has(op.pid));
  if (gone.length) throw new Error(`a replica exited: ${(await Promise.all(gone.map(ending))).join('\n')}`);
  expect(idle).toBe(0);
  return idle;
}

/** ms from `since` until the room's Deployment has the title just set (resilience.test.ts does the same). */
async function timeToReconcile(ns: string, room: string, title: string, since: number): Promise<number> {
  const patch = JSON.stringify({ spec: { title } });
  await eventually('the patch', () =>
    cluster.kubectl(['patch', 'streamroom', room, '-n', ns, '--type', 'merge', '-p', patch]),
  );
  await eventually(
    `${room}'s Deployment with title ${title}`,
    async () => {
      const d = await getJson(['get', 'deployment', room, '-n', ns]);
      const env = d.spec.template.spec.containers[0].env as { name: string; value?: string }[];
      return env.some((e) => e.name === 'ROOM_TITLE' && e.value === title);
    },
    60_000,
    100,
  );
  return performance.now() - since;
}

beforeAll(async () => {
  cluster = await startCluster({
    // two pods per room (the room and its Redis): 400 rooms, and 50 being replaced, fit 4 × 250
    kwokNodes: 4,
    kwokNodePods: 250,
    // The 400 HPAs are synced every minute rather than every 15 s: their status churn is not what this
    // file tests (bench:operator measures at the default), and on 2 cores it slows the API server
    // that the leader must renew its Lease on within 10 s.
    hpaSyncPeriod: '60s',
    // kwok nodes stay Ready through the 30 s API server outage: kwok never makes a pod Ready again
    // once the node lifecycle controller marked it NotReady (a real kubelet would)
    nodeMonitorGracePeriod: '5m',
  });
  kc = kubeConfigOf(cluster);
  await installCrd(cluster);
  await cluster.kubectl(['wait', '--for=condition=Ready', 'nodes', '--all', '--timeout=60s']);
  const first = await replica();
  [leader, standby] = await elected(first, await replica());
}, 240_000);

afterAll(async () => {
  await Promise.all(replicas.map(({ op }) => op.stop()));
  await cluster?.stop();
  mkdirSync(path.join(REPO_DIR, 'test-artifacts'), { recursive: true });
  writeFileSync(
    path.join(REPO_DIR, 'test-artifacts', 'fleet.json'),
    `${JSON.stringify(measured, null, 2)}\n`,
  );
}, 90_000);

describe('two operator replicas (leader election) at fleet scale, under faults', () => {
  it(`brings ${ROOMS} rooms to Ready, then writes nothing while idle; the standby never writes`, async () => {
    const standbyWrites = await writes(standby);
    const row = await operatorRow(cluster, leader, 'bench', ROOMS, {
      label: `operator (leader of 2, ${QPS} QPS), ${ROOMS} rooms`,
      idleSeconds: 20,
      readyTimeoutMs: 240_000,
    });
    measured.bench = row;
    console.log(`reduced bench:\n${fleetTable([row])}`);
    expect(row.writesPerRoom).toBeGreaterThanOrEqual(8); // the leader made every room's 8 children
    expect(row.idleWrites).toBe(0);
    expect(await writes(standby)).toBe(standbyWrites);
    expectClean(await census(kc, 'bench'), ROOMS);
  }, 360_000);

  it(`fails over to the standby when the leader is SIGKILLed while ${ROOMS} rooms are being created`, async () => {
    const ns = 'failover';
    await cluster.kubectl(['create', 'namespace', ns]);
    const { leaseTransitions = 0 } = await lease();
    const watch = new FleetWatch(kc, ns);
    await watch.start();
    try {
      const names = roomNames(ns, ROOMS);
      const creating = createRooms(kc, ns, names);
      creating.catch(() => undefined); // (awaited below)
      const withDeployment = () =>
        names.filter((n) => watch.rooms.get(n)?.children.has(`deployments/${n}`)).length;
      await eventually('40 rooms with their Deployment', async () => withDeployment() >= 40, 120_000, 50);
      const [dead, next] = [leader, standby];
      const before = await writes(next);
      const killedAt = performance.now();
      dead.kill('SIGKILL');
      const atKill = withDeployment();
      expect(await dead.exited).toBe('SIGKILL');
      const failoverMs = await eventually(
        "the standby's first write",
        async () => ((await writes(next)) > before ? performance.now() - killedAt : undefined),
        60_000,
        100,
      );
      console.log(
        `failover: the standby's first write ${round(failoverMs)} ms after the leader's SIGKILL (${atKill} of ${ROOMS} rooms had their Deployment)`,
      );
      expect(atKill).toBeLessThan(ROOMS); // killed half-way
      // Not before the dead leader's Lease ran out (15 s from its last renewal, at most 2 s before the
      // kill); within the lease, the standby's jittered retry (at most 4.4 s) and its first reconcile.
      expect(failoverMs).toBeGreaterThan(10_000);
      expect(failoverMs).toBeLessThan(35_000);
      expect((await lease()).leaseTransitions).toBe(leaseTransitions + 1);
      await creating;
      await eventually(`${ROOMS} rooms Ready`, async () => watch.readyCount(names) === ROOMS, 240_000, 200);
      const allReadyMs = watch.lastReady(names, killedAt, 'status');
      console.log(`failover: all ${ROOMS} rooms Ready ${round(allReadyMs)} ms after the SIGKILL`);
      measured.failover = {
        failoverMs: round(failoverMs),
        roomsWithDeploymentAtKill: atKill,
        allReadyAfterKillMs: round(allReadyMs),
      };
      expect(watch.broken).toEqual([]);
      // a fresh replica takes the dead one's place, as the standby
      [leader, standby] = await elected(next, await replica());
      expect(leader).toBe(next);
      await converged('failover');
    } finally {
      watch.stop();
    }
  }, 420_000);

  it('relists on 410 Gone when etcd was compacted past its watches, and writes nothing', async () => {
    const api = apiServerControl(cluster);
    await settled(leader);
    const secrets = await keySecrets();
    expect(secrets.size).toBe(FLEET.length * ROOMS);
    const { leaseTransitions = 0, holderIdentity } = await lease();
    const before = await writesByReplica();
    const pair = [leader, standby];
    const restarts = await Promise.all(
      pair.map(async (op) => (await metric(op, 'streamroom_informer_restarts_total')) ?? 0),
    );
    const logFrom = pair.map((op) => statSync(logOf(op)).size);
    const timelines = pair.map(readyzTimeline);
    // Right after a renewal (the leader then has its whole renew deadline), kube-apiserver crashes;
    // while it is away etcd moves on past every revision the informers hold and forgets the older ones.
    await freshRenewal();
    const crashedAt = performance.now();
    let killed = false;
    let revision = 0;
    let apiStartMs: number;
    let startedAt: number;
    try {
      try {
        killed = true;
        await crashApiServer();
        revision = await bumpAndCompactEtcd();
      } finally {
        startedAt = performance.now();
        if (killed) api.start();
      }
      apiStartMs = await apiServerReady(api);
    } catch (err) {
      await Promise.all(timelines.map((t) => t.stop()));
      throw err;
    }
    const awayMs = performance.now() - crashedAt;
    // The replicas that lived through it: each informer got 410 Gone on its first watch from its old
    // resourceVersion (the new watch cache begins past it) and relisted, and /readyz is 200 again.
    const relistedOn410 = (op: OperatorProcess, from: number) =>
      new Set(
        logLines(op, from)
          .filter((l) => l.msg === 'relisted' && /410/.test(l.reason))
          .map((l) => l.informer as string),
      );
    let readyAgainMs: number;
    try {
      readyAgainMs = await eventually(
        'every informer of the running replicas relisted on 410 Gone, and /readyz 200',
        async () => {
          const up = pair.filter(alive);
          if (!up.includes(standby)) throw new Error('the standby exited');
          const done = up.map((op) => {
            const relisted = relistedOn410(op, logFrom[pair.indexOf(op)] as number);
            const last = timelines[pair.indexOf(op)]?.changes.at(-1);
            return INFORMERS.every((n) => relisted.has(n)) && last?.status === 200 ? last.at : undefined;
          });
          return done.every((t) => t !== undefined) ? Math.max(...(done as number[])) - startedAt : undefined;
        },
        60_000,
        100,
      );
    } finally {
      await Promise.all(timelines.map((t) => t.stop()));
    }
    const kept = alive(leader);
    console.log(
      `410 Gone: kube-apiserver crashed, /readyz ok again ${round(awayMs)} ms later (${apiStartMs} ms after its start), etcd compacted at revision ${revision}; every informer of ${kept ? 'both replicas' : 'the standby'} relisted on 410 and was ready ${round(readyAgainMs)} ms after kube-apiserver started; the leader ${kept ? 'kept its Lease' : 'stepped down at its renew deadline and the standby took over'}`,
    );
    measured.gone = {
      compactedRevision: revision,
      apiServerAwayMs: round(awayMs),
      apiServerStartMs: apiStartMs,
      readyAfterApiServerStartMs: round(readyAgainMs),
      leaderKeptLease: kept,
    };
    // It noticed: unready while the API server was away.
    for (const [i, op] of pair.entries()) {
      if (alive(op)) expect(timelines[i]?.changes.some((c) => c.status === 503)).toBe(true);
      if (alive(op))
        expect((await metric(op, 'streamroom_informer_restarts_total')) ?? 0).toBeGreaterThan(
          restarts[i] as number,
        );
    }
    expect(readyAgainMs).toBeLessThan(30_000);
    if (kept) {
      // it kept its Lease: the same holder, no transition
      expect(await elected(leader, standby)).toEqual([leader, standby]);
      expect(await lease()).toMatchObject({ holderIdentity, leaseTransitions });
    } else {
      // Only for the reason leader election gives: the API server away for most of the renew deadline
      // (12 s from the renewal before the crash). The standby leads; a fresh replica stands by.
      expect(await leader.exited).toBe(1);
      expect(awayMs).toBeGreaterThan(9_000);
      expect(
        logLines(leader, logFrom[0] as number).filter((l) => l.msg === 'lost the lease: stopping'),
      ).toEqual([expect.objectContaining({ reason: expect.stringMatching(/renew deadline/) })]);
      [leader, standby] = await elected(standby, await replica());
      expect(leader).toBe(pair[1]);
      expect((await lease()).leaseTransitions).toBe(leaseTransitions + 1);
    }
    // And nothing was reconciled wrongly: not one write by any replica (also none by a standby that
    // took over and reconciled every room), the keys as they were.
    await converged('410 Gone');
    const after = await writesByReplica();
    for (const [pid, n] of before)
      if (after.has(pid)) expect({ pid, writes: after.get(pid) }).toEqual({ pid, writes: n });
    for (const [pid, n] of after)
      if (!before.has(pid)) expect({ pid, writes: n }).toEqual({ pid, writes: 0 });
    expect(await keySecrets()).toEqual(secrets);
  }, 300_000);

  it('rides out kube-apiserver stopped for 30 s: no spin, unready meanwhile, leading again within seconds', async () => {
    const api = apiServerControl(cluster);
    await settled(leader);
    const [old, next] = [leader, standby];
    const { leaseTransitions = 0 } = await lease();
    const cpu = { old: old.cpuSeconds(), next: next.cpuSeconds() };
    let oldCpu = 0;
    const logFrom = statSync(logOf(old)).size;
    const timelines = { old: readyzTimeline(old), next: readyzTimeline(next) };
    const stoppedAt = performance.now();
    let oldExitedAfterMs: number | undefined;
    void old.exited.then(() => (oldExitedAfterMs = performance.now() - stoppedAt));
    let outageMs: number;
    let nextCpu: number;
    let endOfOutage: number;
    let apiStartMs: number;
    let upAt: number;
    try {
      await api.stop();
      const downAt = performance.now();
      try {
        while (performance.now() - downAt < 30_000) {
          if (alive(old)) oldCpu = old.cpuSeconds() - cpu.old; // (until it exits)
          await sleep(200);
        }
        nextCpu = next.cpuSeconds() - cpu.next;
        endOfOutage = performance.now();
        outageMs = endOfOutage - downAt;
      } finally {
        api.start();
      }
      apiStartMs = await apiServerReady(api);
      upAt = performance.now();
    } finally {
      await Promise.all([timelines.old.stop(), timelines.next.stop()]);
    }
    // Recovery: the standby leads (it finds the Lease unrenewed since before the outage), and a change
    // made once the API server is back is reconciled.
    const [readyMs, reconcileMs] = await Promise.all([
      eventually(
        'the former standby leading',
        async () => {
          const r = await readyz(next);
          return r.status === 200 && r.body === 'ok' ? performance.now() - upAt : undefined;
        },
        60_000,
        100,
      ),
      timeToReconcile('bench', roomNames('bench', 1)[0] as string, 'after the outage', upAt),
    ]);
    console.log(
      `API server stopped 30 s: standby CPU ${nextCpu.toFixed(2)} s, leader CPU ${oldCpu.toFixed(2)} s until it stepped down ${round(oldExitedAfterMs ?? NaN)} ms after the stop`,
    );
    console.log(
      `API server back: the standby leading (/readyz ok) after ${round(readyMs)} ms, a title change reconciled after ${round(reconcileMs)} ms (kube-apiserver ready in ${apiStartMs} ms)`,
    );
    measured.outage = {
      outageMs: round(outageMs),
      standbyCpuSeconds: nextCpu,
      leaderCpuSeconds: oldCpu,
      leaderExitedAfterMs: oldExitedAfterMs === undefined ? undefined : round(oldExitedAfterMs),
      apiServerStartMs: apiStartMs,
      recoveryReadyMs: round(readyMs),
      recoveryReconcileMs: round(reconcileMs),
    };
    expect(outageMs).toBeGreaterThanOrEqual(30_000);
    // The standby neither exited nor spun, and said it was not ready.
    expect(alive(next)).toBe(true);
    expect(() => process.kill(next.pid, 0)).not.toThrow();
    // A spin takes a whole core (30 CPU-s here). The standby's retries, its GC and the test's /readyz
    // polls measured 1.9 s and 2.3 s (with the chart's 4 MiB semi-spaces) on 2 cores: 6 s (a fifth of
    // a core) keeps a spin far out and a slower CI machine in.
    expect(nextCpu).toBeLessThan(6);
    expect(timelines.next.at(endOfOutage)).toMatchObject({
      status: 503,
      body: expect.stringMatching(/^API server unreachable/),
    });
    // The leader did not spin either, and stepped down at its renew deadline (10 s after a renewal fell
    // due, renewals due every 2 s): not at once, not much later. (Whether it said 503 first depends on
    // how long kube-apiserver's graceful stop keeps the watches open: they may outlast the deadline.)
    expect(oldCpu).toBeLessThan(3);
    expect(await old.exited).toBe(1);
    expect(oldExitedAfterMs).toBeGreaterThan(9_000);
    expect(oldExitedAfterMs).toBeLessThan(20_000);
    expect(logLines(old, logFrom).filter((l) => l.msg === 'lost the lease: stopping')).toEqual([
      expect.objectContaining({ reason: expect.stringMatching(/renew deadline/) }),
    ]);
    expect(readyMs).toBeLessThan(30_000);
    expect(reconcileMs).toBeLessThan(30_000);
    expect((await lease()).leaseTransitions).toBe(leaseTransitions + 1);
    // a fresh replica takes the old leader's place, as the standby
    [leader, standby] = await elected(next, await replica());
    expect(leader).toBe(next);
    await cluster.kubectl(['wait', '--for=condition=Ready', 'nodes', '--all', '--timeout=60s']);
    await converged('API server outage');
  }, 240_000);

  it('repairs the Deployments of 50 rooms deleted at once', async () => {
    const ns = 'bench';
    const names = roomNames(ns, ROOMS).slice(0, 50);
    const objects = KubernetesObjectApi.makeApiClient(kc);
    const state = async () => {
      const [deployments, rooms] = await Promise.all([
        objects.list<V1Deployment>('apps/v1', 'Deployment', ns),
        objects.list<StreamRoom>('streamroom.dev/v1alpha1', 'StreamRoom', ns),
      ]);
      return {
        deployments: new Map(deployments.items.map((d) => [d.metadata?.name, d])),
        rooms: new Map(rooms.items.map((r) => [r.metadata.name, r])),
      };
    };
    await settled(leader);
    const uids = new Map(
      [...(await state()).deployments].map(([name, d]) => [name, d.metadata?.uid as string]),
    );
    const [leaderWrites, standbyWrites] = [await writes(leader), await writes(standby)];
    const deletedAt = performance.now();
    await cluster.kubectl(['delete', 'deployment', '-n', ns, ...names, '--wait=false']);
    const repairMs = await eventually(
      '50 new Deployments ready, their rooms Ready',
      async () => {
        const { deployments, rooms } = await state();
        const repaired = names.filter((n) => {
          const d = deployments.get(n);
          return (
            d &&
            d.metadata?.uid !== uids.get(n) &&
            (d.status?.readyReplicas ?? 0) >= 1 &&
            rooms.get(n)?.status?.phase === 'Ready'
          );
        });
        return repaired.length === names.length ? performance.now() - deletedAt : undefined;
      },
      180_000,
      250,
    );
    console.log(
      `repair: 50 rooms' Deployments deleted at once, all new and Ready after ${round(repairMs)} ms`,
    );
    measured.repair = { deployments: names.length, repairMs: round(repairMs) };
    expect(repairMs).toBeLessThan(120_000);
    expect((await writes(leader)) - leaderWrites).toBeGreaterThanOrEqual(names.length);
    expect(await writes(standby)).toBe(standbyWrites);
    await converged('repair');
  }, 300_000);
});
