// The operator at fleet scale, shared by the fault tests (e2e/test/fleet.test.ts) and the benchmark
// (e2e/bench/operator.bench.ts): the operator as a process of its own (built: operator/dist), a watch
// that timestamps every room and child as the API server announces them, rooms created concurrently
// through the API, the same objects created without the operator (the baseline), and a census that
// finds orphaned or duplicated children.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { openSync, readFileSync, readdirSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  Watch,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { desiredChildren, MANAGED_BY, MANAGED_BY_LABEL } from '../../operator/src/builders.js';
import type { StreamRoom } from '../../operator/src/types.js';
import { eventually, REPO_DIR, type Cluster } from './cluster.js';
import { roomManifest } from './operator.js';

export const BENCH_IMAGE = 'streamroom/room:bench';
const OPERATOR_MAIN = path.join(REPO_DIR, 'operator/dist/main.js');
/** The operator runs with the chart's NODE_OPTIONS (its heap cap), as it does in a cluster. */
const CHART_NODE_OPTIONS = (
  parseYaml(readFileSync(path.join(REPO_DIR, 'charts/streamroom-operator/values.yaml'), 'utf8')) as {
    nodeOptions: string;
  }
).nodeOptions;
const CLK_TCK = 100;

/** Fails clearly when operator/dist is older than operator/src (the process runs the build). */
export function assertOperatorBuilt(): void {
  const newest = (dir: string): number =>
    Math.max(
      ...readdirSync(dir, { withFileTypes: true }).map((e) =>
        e.isDirectory() ? newest(path.join(dir, e.name)) : statSync(path.join(dir, e.name)).mtimeMs,
      ),
    );
  let built = 0;
  try {
    built = statSync(OPERATOR_MAIN).mtimeMs;
  } catch {
    built = 0;
  }
  if (built < newest(path.join(REPO_DIR, 'operator/src'))) {
    throw new Error('operator/dist is missing or older than operator/src: run `npm run build -w operator`');
  }
}

export function kubeConfigOf(cluster: Cluster): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.kubeconfig);
  return kc;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** One Prometheus sample. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || line.startsWith('#')) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1] as string] = l[2] as string;
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return samples;
}

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The operator's API requests so far, by "METHOD resource", from its rest_client_requests_total. */
export function requestsByKind(samples: Sample[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== 'rest_client_requests_total' || s.value === 0) continue;
    const key = `${s.labels.method} ${s.labels.resource}`;
    counts.set(key, (counts.get(key) ?? 0) + s.value);
  }
  return counts;
}

export function writesOf(requests: Map<string, number>): number {
  let n = 0;
  for (const [key, count] of requests) if (WRITE_METHODS.has(key.split(' ')[0] ?? '')) n += count;
  return n;
}

export interface OperatorProcess {
  readonly pid: number;
  readonly healthUrl: string;
  readonly child: ChildProcess;
  /** The exit code or signal, once it has exited. */
  readonly exited: Promise<number | string>;
  metrics(): Promise<Sample[]>;
  /** /readyz: status code. */
  readyz(): Promise<number | undefined>;
  /** User plus system CPU seconds so far. */
  cpuSeconds(): number;
  /** Peak resident memory so far (VmHWM), MiB. */
  peakRssMiB(): number;
  kill(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after 20 s; resolves once it has exited. */
  stop(): Promise<void>;
}

/**
 * Starts the built operator against the cluster with extra flags; its logs go to <cluster>/logs/<name>.log.
 * Resolves once it serves /healthz.
 */
export async function spawnOperator(
  cluster: Cluster,
  options: { args?: string[]; name?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<OperatorProcess> {
  assertOperatorBuilt();
  const port = await freePort();
  const logFile = path.join(cluster.dir, 'logs', `${options.name ?? 'operator'}.log`);
  const log = openSync(logFile, 'a');
  const child = spawn(
    process.execPath,
    [
      OPERATOR_MAIN,
      '--kubeconfig',
      cluster.kubeconfig,
      '--health-address',
      `127.0.0.1:${port}`,
      '--default-image',
      BENCH_IMAGE,
      ...(options.args ?? []),
    ],
    {
      stdio: ['ignore', log, log],
      env: { ...process.env, NODE_OPTIONS: CHART_NODE_OPTIONS, ...options.env },
    },
  );
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  const pid = child.pid as number;
  const healthUrl = `http://127.0.0.1:${port}`;
  const proc = (file: string) => readFileSync(`/proc/${pid}/${file}`, 'utf8');
  const op: OperatorProcess = {
    pid,
    healthUrl,
    child,
    exited,
    async metrics() {
      const r = await fetch(`${healthUrl}/metrics`);
      return parseMetrics(await r.text());
    },
    async readyz() {
      return (await fetch(`${healthUrl}/readyz`).catch(() => undefined))?.status;
    },
    cpuSeconds() {
      const fields = proc('stat').split(') ')[1]?.split(' ') ?? [];
      return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
    },
    peakRssMiB() {
      return Number(/VmHWM:\s+(\d+)/.exec(proc('status'))?.[1]) / 1024;
    },
    kill: (signal) => void child.kill(signal),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
  await Promise.race([
    eventually(
      `the operator's /healthz (log: ${logFile})`,
      async () => (await fetch(`${healthUrl}/healthz`).catch(() => undefined))?.ok,
      60_000,
      100,
    ),
    exited.then((how) => {
      throw new Error(`the operator exited (${how}) before serving /healthz; log: ${logFile}`);
    }),
  ]);
  return op;
}

/** The room's kind and its children's, as the API names them. */
const KINDS: { apiVersion: string; kind: string; plural: string }[] = [
  { apiVersion: 'streamroom.dev/v1alpha1', kind: 'StreamRoom', plural: 'streamrooms' },
  { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', plural: 'networkpolicies' },
  { apiVersion: 'v1', kind: 'Secret', plural: 'secrets' },
  { apiVersion: 'apps/v1', kind: 'Deployment', plural: 'deployments' },
  { apiVersion: 'v1', kind: 'Service', plural: 'services' },
  { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', plural: 'horizontalpodautoscalers' },
];
const apiPath = (apiVersion: string) =>
  apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;

interface Seen {
  /** When the room was first announced. */
  created?: number;
  /** When its status first said Ready. */
  ready?: number;
  /** Its children by kind/name: when each was first announced. */
  children: Map<string, number>;
  /** Its Deployments by name: when each first had an available replica (the baseline's Ready). */
  available: Map<string, number>;
}

/**
 * Watches one namespace's rooms and their children (by owner) and keeps, per room, when it appeared, when
 * its children appeared, and when it turned Ready: times on this process's clock, as the API server
 * announces them.
 */
export class FleetWatch {
  readonly rooms = new Map<string, Seen>();
  /** Watches that ended before stop() (the times would then be incomplete). */
  readonly broken: string[] = [];
  private readonly aborts: AbortController[] = [];
  private stopped = false;

  constructor(
    private readonly kc: KubeConfig,
    readonly namespace: string,
  ) {}

  private seen(room: string): Seen {
    let s = this.rooms.get(room);
    if (!s) this.rooms.set(room, (s = { children: new Map(), available: new Map() }));
    return s;
  }

  /** Starts the watches (from the current state, listed first); resolves once all are established. */
  async start(): Promise<void> {
    const objects = KubernetesObjectApi.makeApiClient(this.kc);
    const watch = new Watch(this.kc);
    for (const { apiVersion, kind, plural } of KINDS) {
      // (right after the cluster starts, the API server may still answer 429 "storage is initializing")
      const listed = await eventually(`a list of ${plural}`, () =>
        objects.list(apiVersion, kind, this.namespace),
      );
      for (const o of listed.items) this.observe(plural, o);
      const abort = await watch.watch(
        `${apiPath(apiVersion)}/namespaces/${this.namespace}/${plural}`,
        { resourceVersion: listed.metadata?.resourceVersion },
        (_phase, obj: KubernetesObject) => this.observe(plural, obj),
        (err: unknown) => {
          if (!this.stopped) this.broken.push(`${plural}: ${String(err ?? 'closed')}`);
        },
      );
      this.aborts.push(abort);
    }
  }

  private observe(kind: string, obj: KubernetesObject & { status?: Record<string, unknown> }): void {
    const now = performance.now();
    if (kind === 'streamrooms') {
      const s = this.seen(obj.metadata?.name ?? '');
      s.created ??= now;
      if ((obj.status as { phase?: string } | undefined)?.phase === 'Ready') s.ready ??= now;
      return;
    }
    const owner = obj.metadata?.ownerReferences?.find((r) => r.controller && r.kind === 'StreamRoom');
    if (!owner) return;
    const s = this.seen(owner.name);
    const key = `${kind}/${obj.metadata?.name}`;
    if (!s.children.has(key)) s.children.set(key, now);
    if (
      kind === 'deployments' &&
      Number((obj.status as { availableReplicas?: number })?.availableReplicas) >= 1
    ) {
      if (!s.available.has(obj.metadata?.name ?? '')) s.available.set(obj.metadata?.name ?? '', now);
    }
  }

  stop(): void {
    this.stopped = true;
    this.aborts.forEach((a) => a.abort());
  }

  /** Rooms whose status says Ready. */
  readyCount(names: string[]): number {
    return names.filter((n) => this.rooms.get(n)?.ready !== undefined).length;
  }

  /** Rooms all of whose (expected number of) Deployments have an available replica. */
  availableCount(names: string[], deploymentsPerRoom: number): number {
    return names.filter((n) => (this.rooms.get(n)?.available.size ?? 0) >= deploymentsPerRoom).length;
  }

  /** Per room: ms from its creation to the last of its children appearing (the operator's own part). */
  overheads(names: string[]): number[] {
    return names.flatMap((n) => {
      const s = this.rooms.get(n);
      if (s?.created === undefined || s.children.size === 0) return [];
      return [Math.max(...s.children.values()) - s.created];
    });
  }

  /** ms from `since` until the last of these rooms turned Ready (or had its Deployments available). */
  lastReady(names: string[], since: number, by: 'status' | 'available'): number {
    let last = since;
    for (const n of names) {
      const s = this.rooms.get(n);
      const t =
        by === 'status' ? s?.ready : s && s.available.size ? Math.max(...s.available.values()) : undefined;
      if (t !== undefined && t > last) last = t;
    }
    return last - since;
  }
}

/** Runs `task` over the items with at most `concurrency` at a time. */
export async function inParallel<T>(
  items: T[],
  concurrency: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

export const roomNames = (prefix: string, n: number): string[] =>
  Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`);

/** Creates the rooms through the API, `concurrency` requests at a time. */
export async function createRooms(
  kc: KubeConfig,
  namespace: string,
  names: string[],
  concurrency = 32,
): Promise<void> {
  const api = kc.makeApiClient(CustomObjectsApi);
  await inParallel(names, concurrency, async (name) => {
    await api.createNamespacedCustomObject({
      group: 'streamroom.dev',
      version: 'v1alpha1',
      namespace,
      plural: 'streamrooms',
      body: roomManifest(name, namespace, { image: BENCH_IMAGE }),
    });
  });
}

/**
 * The baseline: each room and the very children the operator would make for it (its pure builders),
 * created straight through the API, `concurrency` rooms at a time with each room's children at once
 * (the network policies and keys first, as the operator does). No operator runs on the namespace.
 */
export async function createDirectly(
  kc: KubeConfig,
  namespace: string,
  names: string[],
  concurrency: number,
): Promise<Map<string, number>> {
  const rooms = kc.makeApiClient(CustomObjectsApi);
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const requests = new Map<string, number>();
  const create = async (o: KubernetesObject) => {
    await objects.create(o);
    const key = `POST ${KINDS.find((k) => k.kind === o.kind)?.plural ?? o.kind}`;
    requests.set(key, (requests.get(key) ?? 0) + 1);
  };
  let port = 20000;
  await inParallel(names, concurrency, async (name) => {
    const room = (await rooms.createNamespacedCustomObject({
      group: 'streamroom.dev',
      version: 'v1alpha1',
      namespace,
      plural: 'streamrooms',
      body: roomManifest(name, namespace, { image: BENCH_IMAGE }),
    })) as StreamRoom;
    const { apply } = desiredChildren(
      room,
      { defaultImage: BENCH_IMAGE, media: { defaultNetwork: 'HostPort', port: port++ } },
      undefined,
      () => randomBytes(24).toString('base64url'),
    );
    requests.set('POST streamrooms', (requests.get('POST streamrooms') ?? 0) + 1);
    const first = (o: KubernetesObject) => o.kind === 'NetworkPolicy' || o.kind === 'Secret';
    await Promise.all(apply.filter(first).map(create));
    await Promise.all(apply.filter((o) => !first(o)).map(create));
  });
  return requests;
}

/** What the operator manages in a namespace, checked against the rooms that exist. */
export interface Census {
  rooms: number;
  /** Children whose owning room does not exist (by uid). */
  orphans: string[];
  /** Rooms with other children than the operator's builders give for them (missing or extra). */
  wrong: string[];
  /** Managed objects with no controller reference at all. */
  unowned: string[];
}

export async function census(kc: KubeConfig, namespace: string): Promise<Census> {
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const selector = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
  const [roomKind, ...childKinds] = KINDS;
  const rooms = (await objects.list<StreamRoom>(roomKind!.apiVersion, roomKind!.kind, namespace)).items;
  const byUid = new Map(rooms.map((r) => [r.metadata.uid, r]));
  const result: Census = { rooms: rooms.length, orphans: [], wrong: [], unowned: [] };
  const children = new Map<string, string[]>();
  for (const { apiVersion, kind } of childKinds) {
    const list = await objects.list(
      apiVersion,
      kind,
      namespace,
      undefined,
      undefined,
      undefined,
      undefined,
      selector,
    );
    for (const o of list.items) {
      const ref = o.metadata?.ownerReferences?.find((r) => r.controller);
      const what = `${kind}/${o.metadata?.name}`;
      if (!ref) result.unowned.push(what);
      else if (!byUid.has(ref.uid)) result.orphans.push(what);
      else children.set(ref.name, [...(children.get(ref.name) ?? []), what]);
    }
  }
  for (const room of rooms) {
    const expected = desiredChildren(
      room,
      { defaultImage: BENCH_IMAGE, media: { defaultNetwork: 'HostPort', port: 1 } },
      undefined,
      () => '',
    ).apply.map((o) => `${o.kind}/${o.metadata?.name}`);
    const actual = children.get(room.metadata.name) ?? [];
    if (actual.length !== expected.length || !expected.every((e) => actual.includes(e))) {
      result.wrong.push(
        `${room.metadata.name}: has [${actual.sort().join(', ')}], wants [${expected.sort().join(', ')}]`,
      );
    }
  }
  return result;
}

/** p-th percentile (0..100) of the values, nearest rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/** One row of the fleet benchmark. */
export interface FleetRow {
  label: string;
  rooms: number;
  /** ms from a room's creation to all its children existing: p50, p99, max. */
  overhead?: { p50: number; p99: number; max: number };
  /** ms from the first create until the last room was Ready. */
  allReadyMs: number;
  writesPerRoom: number;
  /** Requests per room by "METHOD resource" (the operator's, or the baseline's own). */
  requestsPerRoom: Record<string, number>;
  cpuSeconds?: number;
  peakRssMiB?: number;
  /** Writes by the operator in the idle period after everything settled. */
  idleWrites?: number;
  idleSeconds?: number;
}

const perRoom = (m: Map<string, number>, n: number) =>
  Object.fromEntries([...m].sort().map(([k, v]) => [k, Math.round((v / n) * 100) / 100]));

function difference(after: Map<string, number>, before: Map<string, number>): Map<string, number> {
  const d = new Map<string, number>();
  for (const [k, v] of after) if (v - (before.get(k) ?? 0) > 0) d.set(k, v - (before.get(k) ?? 0));
  return d;
}

/**
 * Creates `count` rooms in a new namespace with the operator running, waits until all are Ready, then
 * watches the operator's writes through an idle period.
 */
export async function operatorRow(
  cluster: Cluster,
  op: OperatorProcess,
  namespace: string,
  count: number,
  options: { label?: string; idleSeconds: number; readyTimeoutMs: number },
): Promise<FleetRow> {
  const kc = kubeConfigOf(cluster);
  await cluster.kubectl(['create', 'namespace', namespace]);
  const watch = new FleetWatch(kc, namespace);
  await watch.start();
  try {
    const names = roomNames(namespace, count);
    const before = requestsByKind(await op.metrics());
    const cpu = op.cpuSeconds();
    const t0 = performance.now();
    await createRooms(kc, namespace, names);
    await eventually(
      `${count} rooms Ready in ${namespace}`,
      async () => watch.readyCount(names) === count,
      options.readyTimeoutMs,
      200,
    );
    const allReadyMs = watch.lastReady(names, t0, 'status');
    const cpuSeconds = op.cpuSeconds() - cpu;
    const requests = difference(requestsByKind(await op.metrics()), before);
    // settled: then not one write for the idle period
    await new Promise((r) => setTimeout(r, 2000));
    const idleStart = writesOf(requestsByKind(await op.metrics()));
    await new Promise((r) => setTimeout(r, options.idleSeconds * 1000));
    const idleWrites = writesOf(requestsByKind(await op.metrics())) - idleStart;
    const overheads = watch.overheads(names);
    if (watch.broken.length) throw new Error(`the benchmark's watches broke: ${watch.broken.join('; ')}`);
    return {
      label: options.label ?? `operator, ${count} room${count === 1 ? '' : 's'}`,
      rooms: count,
      overhead: {
        p50: percentile(overheads, 50),
        p99: percentile(overheads, 99),
        max: Math.max(...overheads),
      },
      allReadyMs,
      writesPerRoom: writesOf(requests) / count,
      requestsPerRoom: perRoom(requests, count),
      cpuSeconds,
      peakRssMiB: op.peakRssMiB(),
      idleWrites,
      idleSeconds: options.idleSeconds,
    };
  } finally {
    watch.stop();
  }
}

/** The same objects created straight through the API, no operator: the floor of this API server. */
export async function baselineRow(
  cluster: Cluster,
  namespace: string,
  count: number,
  options: { concurrency: number; readyTimeoutMs: number },
): Promise<FleetRow> {
  const kc = kubeConfigOf(cluster);
  await cluster.kubectl(['create', 'namespace', namespace]);
  const watch = new FleetWatch(kc, namespace);
  await watch.start();
  try {
    const names = roomNames(namespace, count);
    const t0 = performance.now();
    const requests = await createDirectly(kc, namespace, names, options.concurrency);
    const deployments = (requests.get('POST deployments') ?? 0) / count;
    await eventually(
      `${count} rooms' Deployments available in ${namespace}`,
      async () => watch.availableCount(names, deployments) === count,
      options.readyTimeoutMs,
      200,
    );
    if (watch.broken.length) throw new Error(`the benchmark's watches broke: ${watch.broken.join('; ')}`);
    return {
      label: `baseline: the same objects, no operator (${count} rooms, ${options.concurrency} at a time)`,
      rooms: count,
      allReadyMs: watch.lastReady(names, t0, 'available'),
      writesPerRoom: writesOf(requests) / count,
      requestsPerRoom: perRoom(requests, count),
    };
  } finally {
    watch.stop();
  }
}

const ms = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '–' : `${Math.round(v)} ms`);
const s1 = (v: number | undefined) => (v === undefined ? '–' : `${(v / 1000).toFixed(1)} s`);

/** The rows as one Markdown table. */
export function fleetTable(rows: FleetRow[]): string {
  const head = [
    'run',
    'overhead p50',
    'p99',
    'max',
    'all Ready',
    'writes/room',
    'operator CPU',
    'peak RSS',
    'idle writes',
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of rows) {
    lines.push(
      `| ${[
        r.label,
        ms(r.overhead?.p50),
        ms(r.overhead?.p99),
        ms(r.overhead?.max),
        s1(r.allReadyMs),
        r.writesPerRoom.toFixed(1),
        r.cpuSeconds === undefined ? '–' : `${r.cpuSeconds.toFixed(1)} s`,
        r.peakRssMiB === undefined ? '–' : `${r.peakRssMiB.toFixed(0)} MiB`,
        r.idleWrites === undefined ? '–' : `${r.idleWrites} in ${r.idleSeconds} s`,
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}
