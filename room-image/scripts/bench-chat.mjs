/* global fetch, performance, setTimeout, clearTimeout, setInterval, clearInterval */
// Chat fan-out benchmark: one room served by 1, 2 and 3 room-server processes (the built dist/)
// sharing one redis-server, plus a single process without Redis (in-memory state) as the baseline.
// socket.io clients are spread round-robin over the replicas; some of them send chat at a fixed
// rate, every client receives every message. Each run is bounded in time; the table gives the
// messages sent per second, deliveries per second, delivery latency (send -> receive, one clock)
// and the resident memory of each replica. Run after `npm run build` (bench:chat does both).
//
// Then the fan-out rows, at the size of a full room: FANOUT_CLIENTS (500) socket.io clients held by
// FANOUT_WORKERS (2) client processes (bench-chat-clients.mjs), so that the clients' parsing does
// not run in the measuring process; for the in-memory room and a room of 3 replicas on one Redis:
//   burst      500 messages, each from a different client, 10 every 5 ms (every client gets all)
//   sustained  50 messages a second for 30 s
// The server's CPU (utime + stime of /proc/<pid>/stat, all replicas together) is taken over each
// run, from just before the first send to the last delivery. BENCH_ROWS=fanout or =classic runs one
// part only, BENCH_FANOUT=memory or =redis one fan-out room only; CHAT_BATCH_MS=<ms> sets the
// room's tick; BENCH_SERVER=<entry> runs another server build (e.g. the previous one, for before and
// after); BENCH_MSGPACK_PARSER=<path of socket.io-msgpack-parser's entry> and BENCH_DEFLATE=1, with
// BENCH_SERVER=scripts/bench-chat-server.mjs, compare encodings (see README, "Chat fan-out").
import { fork, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { URL, fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';

const parser = process.env.BENCH_MSGPACK_PARSER ? await import(process.env.BENCH_MSGPACK_PARSER) : undefined;

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 60);
const RUN_SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';
const TOTAL_TIMEOUT_MS = 15 * 60_000;
const ROWS = process.env.BENCH_ROWS ?? 'all';
const FANOUT_CLIENTS = Number(process.env.FANOUT_CLIENTS ?? 500);
const FANOUT_WORKERS = Number(process.env.FANOUT_WORKERS ?? 2);
const SUSTAINED_SECONDS = Number(process.env.SUSTAINED_SECONDS ?? 30);
const SERVER_ENTRY = process.env.BENCH_SERVER ?? 'dist/server/main.js';
// BENCH_FANOUT=memory or =redis runs one of them only.
const FANOUT_SCENARIOS = [
  { backplane: 'memory', replicas: 1 },
  { backplane: 'redis', replicas: 3 },
].filter((s) => (process.env.BENCH_FANOUT ?? s.backplane) === s.backplane);
const KEY = 'bench-broadcaster-key';
// The CRD allows at most 600 chat messages per minute per user; a user sends < 400 in the bench.
const MESSAGES_PER_MINUTE = 600;
const LOADS = [
  { name: 'busy', senders: 20, perSecond: 5 },
  { name: 'heavy', senders: CLIENTS, perSecond: 10 },
  // 20/s is what the per-socket flood guard lets a viewer send: the most this room can be asked.
  { name: 'max', senders: CLIENTS, perSecond: 20 },
];
const SCENARIOS = [
  { backplane: 'memory', replicas: 1 },
  { backplane: 'redis', replicas: 1 },
  { backplane: 'redis', replicas: 2 },
  { backplane: 'redis', replicas: 3 },
];
const root = fileURLToPath(new URL('..', import.meta.url));
const children = new Set();

const deadline = setTimeout(() => {
  console.error('bench: overall time limit reached');
  for (const c of children) c.kill('SIGKILL');
  process.exit(1);
}, TOTAL_TIMEOUT_MS);

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Spawns a process and resolves once its output matches `pattern`. */
function start(cmd, args, env, pattern) {
  const child = spawn(cmd, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${cmd} did not start: ${out}`)), 10_000);
    const onData = (d) => {
      out += d;
      const m = pattern.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, match: m });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d) => (out += d));
    child.once('exit', (code) => reject(new Error(`${cmd} exited (${code}): ${out}`)));
  });
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
}

/** CPU seconds (user + system) the process has used so far. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100/s)
}

const rssMiB = (pid) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-redis-'));
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
  ];
  const { child } = await start(REDIS_SERVER, args, process.env, /Ready to accept connections/);
  return { child, url: `redis://127.0.0.1:${port}`, dir };
}

async function startReplica(redisUrl) {
  const env = {
    PATH: process.env.PATH ?? '',
    // Chat only: no media relay beside the server (its offers to clients that never answer would
    // be repeated every few seconds and counted as the server's CPU).
    ROOM_MEDIA_MODE: 'PeerToPeer',
    ...(process.env.BENCH_MSGPACK_PARSER ? { BENCH_MSGPACK_PARSER: process.env.BENCH_MSGPACK_PARSER } : {}),
    ...(process.env.BENCH_DEFLATE ? { BENCH_DEFLATE: process.env.BENCH_DEFLATE } : {}),
    ...(process.env.CHAT_BATCH_MS ? { CHAT_BATCH_MS: process.env.CHAT_BATCH_MS } : {}),
    PORT: '0',
    LISTEN_ADDRESS: '127.0.0.1',
    ROOM_BROADCASTER_KEY: KEY,
    ROOM_NAME: 'bench',
    CHAT_MESSAGES_PER_MINUTE: String(MESSAGES_PER_MINUTE),
    // every bench client comes from 127.0.0.1, and replicas share the host
    ROOM_MAX_VIEWERS_PER_ADDRESS: '0',
    ROOM_NEW_USERS_PER_ADDRESS_PER_MINUTE: '0',
    ROOM_METRICS_PORT: '0',
    ...(redisUrl ? { ROOM_REDIS_URL: redisUrl } : {}),
  };
  const { child, match } = await start(process.execPath, [SERVER_ENTRY], env, /"port":(\d+)/);
  const url = `http://127.0.0.1:${match[1]}`;
  for (let i = 0; i < 100; i++) {
    if ((await fetch(`${url}/readyz`)).status === 200) return { child, url };
    await sleep(100);
  }
  throw new Error(`${url} never got ready`);
}

function connectClient(url, i) {
  const socket = io(url, {
    auth: { role: 'viewer', name: `Bench ${i}` },
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    ...(parser ? { parser } : {}),
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('client connect timed out')), 10_000);
    socket.once('welcome', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('connect_error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

const percentile = (sorted, p) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/** One load level for `RUN_SECONDS`: senders at a fixed rate, every client counting deliveries. */
async function runLoad(clients, load, tag) {
  const latencies = [];
  let delivered = 0;
  let sent = 0;
  let accepted = 0;
  let refused = 0;
  let measuring = true;
  const listeners = clients.map((socket) => {
    const fn = (m) => {
      const parts = m.text.split(' ');
      if (parts[0] !== tag) return;
      delivered++;
      if (measuring) latencies.push(performance.now() - Number(parts[1]));
    };
    // one event per message (chat:message), or one per batch (chat:batch)
    const batch = (b) => (Array.isArray(b) ? b : (b?.messages ?? [])).forEach(fn);
    socket.on('chat:message', fn);
    socket.on('chat:batch', batch);
    return { fn, batch };
  });
  const intervalMs = 1000 / load.perSecond;
  const timers = [];
  const t0 = performance.now();
  for (let s = 0; s < load.senders; s++) {
    const socket = clients[s % clients.length];
    const begin = setTimeout(
      () => {
        const timer = setInterval(() => {
          sent++;
          socket.emit('chat:send', { text: `${tag} ${performance.now()}` }, (ack) =>
            ack?.ok ? accepted++ : refused++,
          );
        }, intervalMs);
        timers.push(timer);
      },
      (s / load.senders) * intervalMs, // spread the senders over one interval
    );
    timers.push(begin);
  }
  await sleep(RUN_SECONDS * 1000);
  for (const t of timers) clearInterval(t);
  const elapsed = (performance.now() - t0) / 1000;
  measuring = false;
  // Let what is in flight arrive (bounded).
  const expected = () => accepted * clients.length;
  for (let i = 0; i < 50 && delivered < expected(); i++) await sleep(100);
  clients.forEach((socket, i) => {
    socket.off('chat:message', listeners[i].fn);
    socket.off('chat:batch', listeners[i].batch);
  });
  latencies.sort((a, b) => a - b);
  return {
    sentPerSecond: accepted / elapsed,
    refused,
    deliveredPerSecond: delivered / elapsed,
    deliveredShare: expected() === 0 ? 0 : delivered / expected(),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    sent,
  };
}

async function scenario({ backplane, replicas }) {
  const redis = backplane === 'redis' ? await startRedis() : undefined;
  const servers = [];
  const clients = [];
  try {
    for (let i = 0; i < replicas; i++) servers.push(await startReplica(redis?.url));
    for (let i = 0; i < CLIENTS; i++) clients.push(await connectClient(servers[i % replicas].url, i));
    await runLoad(clients, { senders: 5, perSecond: 5 }, 'warmup'); // JIT, connections, history
    const rows = [];
    for (const load of LOADS) {
      const pids = [...servers.map((s) => s.child.pid), ...(redis ? [redis.child.pid] : [])];
      const cpu0 = pids.map(cpuSeconds);
      const own0 = process.cpuUsage();
      const t0 = performance.now();
      const r = await runLoad(clients, load, load.name);
      const seconds = (performance.now() - t0) / 1000;
      const cpu = pids.map((pid, i) => (100 * (cpuSeconds(pid) - cpu0[i])) / seconds);
      const own = process.cpuUsage(own0);
      rows.push({
        backplane,
        replicas,
        load: `${load.name} (${load.senders}x${load.perSecond}/s)`,
        offered: load.senders * load.perSecond,
        ...r,
        cpu: cpu.slice(0, replicas),
        redisCpu: redis ? cpu[replicas] : undefined,
        clientCpu: (own.user + own.system) / 1e4 / seconds,
        rss: servers.map((s) => rssMiB(s.child.pid)),
        redisRss: redis ? rssMiB(redis.child.pid) : undefined,
      });
      process.stderr.write('.');
    }
    return rows;
  } finally {
    for (const c of clients) c.close();
    for (const s of servers) await stop(s.child);
    if (redis) {
      await stop(redis.child);
      rmSync(redis.dir, { recursive: true, force: true });
    }
  }
}

/** A client process (bench-chat-clients.mjs) and a promise-returning call over its IPC channel. */
function clientWorker() {
  const child = fork(path.join(root, 'scripts', 'bench-chat-clients.mjs'), [], {
    cwd: root,
    env: process.env,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const waiting = new Map();
  let next = 0;
  child.on('message', (msg) => {
    const w = waiting.get(msg.id);
    waiting.delete(msg.id);
    if (msg.ok) w?.resolve(msg.result);
    else w?.reject(new Error(msg.error));
  });
  child.once('exit', (code) => {
    for (const w of waiting.values()) w.reject(new Error(`client process exited (${code})`));
  });
  return {
    child,
    call: (cmd, args = {}) =>
      new Promise((resolve, reject) => {
        const id = next++;
        waiting.set(id, { resolve, reject });
        child.send({ ...args, cmd, id });
      }),
  };
}

const serverCpu = (pids) => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);

/**
 * One fan-out run: `plan` lists [ms after start, sending client] for every message; resolves once
 * every client got every accepted message (or after a bound), with the server's CPU over the run.
 */
async function fanoutRun(workers, servers, redis, tag, plan, nominalSeconds) {
  const pids = servers.map((s) => s.child.pid);
  const cpu0 = serverCpu(pids);
  const redisCpu0 = redis ? cpuSeconds(redis.child.pid) : 0;
  const own0 = process.cpuUsage();
  const workerCpu0 = serverCpu(workers.map((w) => w.child.pid));
  const t0 = performance.timeOrigin + performance.now() + 300; // every client process is ready by then
  const sends = await Promise.all(workers.map((w) => w.call('send', { tag, t0, plan })));
  const accepted = sends.reduce((n, r) => n + r.accepted, 0);
  const refused = sends.reduce((n, r) => n + r.refused, 0);
  const results = await Promise.all(
    workers.map((w) => w.call('await', { tag, accepted, timeoutMs: 60_000 })),
  );
  const end = performance.timeOrigin + performance.now();
  const cpu = serverCpu(pids) - cpu0;
  const delivered = results.reduce((n, r) => n + r.delivered, 0);
  const expected = results.reduce((n, r) => n + r.expected, 0);
  const last = Math.max(...results.map((r) => r.last));
  const latencies = results.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const seconds = nominalSeconds ?? (last - t0) / 1000;
  return {
    tag,
    accepted,
    refused,
    delivered,
    expected,
    short: results.reduce((n, r) => n + r.short, 0),
    seconds,
    deliveriesPerSecond: delivered / seconds,
    cpu,
    corePercent: (100 * cpu) / ((end - t0) / 1000),
    cpuPer100k: (cpu / delivered) * 1e5,
    perCpuSecond: delivered / cpu,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    rss: servers.map((s) => rssMiB(s.child.pid)),
    redisCpu: redis ? cpuSeconds(redis.child.pid) - redisCpu0 : undefined,
    clientCpu:
      serverCpu(workers.map((w) => w.child.pid)) -
      workerCpu0 +
      (process.cpuUsage(own0).user + process.cpuUsage(own0).system) / 1e6,
  };
}

async function fanoutScenario({ backplane, replicas }) {
  const redis = backplane === 'redis' ? await startRedis() : undefined;
  const servers = [];
  const workers = [];
  try {
    for (let i = 0; i < replicas; i++) servers.push(await startReplica(redis?.url));
    const pids = servers.map((s) => s.child.pid);
    const urls = servers.map((s) => s.url);
    for (let w = 0; w < FANOUT_WORKERS; w++) workers.push(clientWorker());
    const cpu0 = serverCpu(pids);
    const per = Math.ceil(FANOUT_CLIENTS / FANOUT_WORKERS);
    await Promise.all(
      workers.map((w, i) =>
        w.call('connect', { urls, from: i * per, to: Math.min(FANOUT_CLIENTS, (i + 1) * per) }),
      ),
    );
    await sleep(2000); // the presence pushes of the joins settle
    const connectCpu = serverCpu(pids) - cpu0;
    const connectRss = servers.map((s) => rssMiB(s.child.pid));
    const every = (n, ms, first = 0) =>
      Array.from({ length: n }, (_, k) => [k * ms, (first + k) % FANOUT_CLIENTS]);
    // Warm-up (JIT, history full): 100 messages over 2 s.
    await fanoutRun(workers, servers, redis, 'warmup', every(100, 20, 7));
    await sleep(1000);
    const burstPlan = Array.from({ length: FANOUT_CLIENTS }, (_, k) => [Math.floor(k / 10) * 5, k]);
    const burst = await fanoutRun(workers, servers, redis, 'burst', burstPlan);
    process.stderr.write('.');
    await sleep(2000);
    const n = 50 * SUSTAINED_SECONDS;
    const sustained = await fanoutRun(
      workers,
      servers,
      redis,
      'sustained',
      every(n, 20, 3),
      SUSTAINED_SECONDS,
    );
    process.stderr.write('.');
    return [
      {
        backplane,
        replicas,
        load: `burst ${FANOUT_CLIENTS} msgs, 10 per 5 ms`,
        connectCpu,
        connectRss,
        ...burst,
      },
      {
        backplane,
        replicas,
        load: `sustained 50 msg/s, ${SUSTAINED_SECONDS} s`,
        connectCpu,
        connectRss,
        ...sustained,
      },
    ];
  } finally {
    await Promise.all(workers.map((w) => w.call('close').catch(() => undefined)));
    for (const s of servers) await stop(s.child);
    if (redis) {
      await stop(redis.child);
      rmSync(redis.dir, { recursive: true, force: true });
    }
  }
}

const redisVersion = await new Promise((resolve) => {
  const c = spawn(REDIS_SERVER, ['--version']);
  let out = '';
  c.stdout.on('data', (d) => (out += d));
  c.once('exit', () => resolve(/v=([\d.]+)/.exec(out)?.[1] ?? '?'));
  c.once('error', () => resolve('not found'));
});
const rows = [];
const fanoutRows = [];
try {
  if (ROWS !== 'classic') for (const s of FANOUT_SCENARIOS) fanoutRows.push(...(await fanoutScenario(s)));
  if (ROWS !== 'fanout') for (const s of SCENARIOS) rows.push(...(await scenario(s))); // each with a fresh Redis
} finally {
  for (const c of children) c.kill('SIGKILL');
}
clearTimeout(deadline);

const fmt = (n, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : '-');
function printTable(header, table) {
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
  const line = (cells) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  console.log(line(header));
  for (const row of table) console.log(line(row));
}
const encoding =
  `${parser ? 'msgpack parser' : 'default (JSON) parser'}, perMessageDeflate ${process.env.BENCH_DEFLATE === '1' ? 'on' : 'off'}` +
  `, server ${SERVER_ENTRY}${process.env.CHAT_BATCH_MS ? `, CHAT_BATCH_MS=${process.env.CHAT_BATCH_MS}` : ''}`;
console.log('');
if (fanoutRows.length > 0) {
  console.log(
    `chat fan-out at room size: ${FANOUT_CLIENTS} clients in ${FANOUT_WORKERS} client processes, ${encoding}, ` +
      `${os.cpus().length} CPUs, Node ${process.version}, redis-server ${redisVersion}, all on 127.0.0.1`,
  );
  printTable(
    [
      'backplane',
      'replicas',
      'load',
      'deliveries',
      'delivered',
      'seconds',
      'deliveries/s',
      'server CPU-s',
      'CPU-s per 100k',
      'deliveries per CPU-s',
      '% of a core',
      'p50 ms',
      'p99 ms',
      'RSS MiB per replica',
      'redis CPU-s',
      'clients CPU-s',
      'connect CPU-s',
    ],
    fanoutRows.map((r) => [
      r.backplane,
      String(r.replicas),
      r.load,
      String(r.delivered),
      `${fmt((100 * r.delivered) / r.expected, 1)}%`,
      fmt(r.seconds, 2),
      fmt(r.deliveriesPerSecond),
      fmt(r.cpu, 2),
      fmt(r.cpuPer100k, 2),
      fmt(r.perCpuSecond),
      fmt(r.corePercent, 1),
      fmt(r.p50, 1),
      fmt(r.p99, 1),
      r.rss.map((m) => fmt(m)).join(' / '),
      r.redisCpu === undefined ? '-' : fmt(r.redisCpu, 2),
      fmt(r.clientCpu, 2),
      fmt(r.connectCpu, 2),
    ]),
  );
  console.log(
    'server CPU-s: all replicas, from just before the first send to the last delivery (connect CPU-s: ' +
      'the clients joining, before); % of a core: that CPU over the same wall time; latency: send -> each ' +
      'delivery. The client processes share the 2 CPUs with the servers.',
  );
  const short = fanoutRows.filter((r) => r.short > 0 || r.refused > 0);
  for (const r of short)
    console.log(`(${r.backplane} ${r.load}: ${r.refused} refused, ${r.short} clients missed messages)`);
  console.log('');
}
if (rows.length > 0) {
  console.log(
    `chat fan-out: ${CLIENTS} clients spread over the replicas, ${RUN_SECONDS} s per load, ${encoding}, ` +
      `${os.cpus().length} CPUs, Node ${process.version}, redis-server ${redisVersion}, all on 127.0.0.1`,
  );
  printTable(
    [
      'backplane',
      'replicas',
      'load (senders x msg/s)',
      'offered/s',
      'sent/s',
      'deliveries/s',
      'delivered',
      'p50 ms',
      'p99 ms',
      'CPU % per replica',
      'RSS MiB per replica',
      'redis CPU %',
      'redis RSS MiB',
      'bench clients CPU %',
    ],
    rows.map((r) => [
      r.backplane,
      String(r.replicas),
      r.load,
      String(r.offered),
      fmt(r.sentPerSecond),
      fmt(r.deliveredPerSecond),
      `${fmt(r.deliveredShare * 100, 1)}%`,
      fmt(r.p50, 1),
      fmt(r.p99, 1),
      r.cpu.map((c) => fmt(c)).join(' / '),
      r.rss.map((m) => fmt(m)).join(' / '),
      r.redisCpu === undefined ? '-' : fmt(r.redisCpu),
      r.redisRss === undefined ? '-' : fmt(r.redisRss),
      fmt(r.clientCpu),
    ]),
  );
  console.log(
    'sent/s: messages the server accepted; deliveries/s: chat messages received by all clients; ' +
      'latency: send -> each delivery (one clock). The bench clients share the CPUs with the servers: ' +
      'when their CPU % nears 100 the client, not the room, limits the numbers.',
  );
  const refused = rows.reduce((n, r) => n + r.refused, 0);
  if (refused > 0) console.log(`(${refused} messages refused by the server, e.g. rate limit)`);
}
