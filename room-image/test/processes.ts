/**
 * Real processes for the tests: a Redis (Debian's redis-server), room servers (`node` on the
 * compiled entry point) and a round-robin TCP proxy standing in for the Kubernetes Service.
 * Everything listens on 127.0.0.1 only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as esbuild from 'esbuild';
import { bundleClient } from '../src/build/bundle.js';
import { roomImageDir, sleep, testEnv } from './helpers.js';

export const REDIS_SERVER = '/usr/bin/redis-server';

/** A port that was free a moment ago (for a process that must be told its port in advance). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Collects a child's output and resolves when a line matches, or rejects on exit/timeout. */
function watch(child: ChildProcess, pattern: RegExp, timeoutMs: number) {
  let out = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const matched = new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no ${pattern} within ${timeoutMs} ms: ${out}`)),
      timeoutMs,
    );
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = pattern.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`process exited (${code}): ${out}`));
    });
  });
  matched.catch(() => undefined);
  return { exited, matched, output: () => out };
}

export interface RedisProcess {
  port: number;
  url: string;
  /** Stops it (SIGKILL: nothing to save) and waits for the exit. */
  stop(): Promise<void>;
}

/** Starts redis-server on 127.0.0.1 without persistence, in a temp dir. */
export async function startRedis(port?: number, extraArgs: string[] = []): Promise<RedisProcess> {
  const p = port ?? (await freePort());
  const dir = await mkdtemp(path.join(os.tmpdir(), 'streamroom-redis-'));
  const child = spawn(
    REDIS_SERVER,
    [
      '--port',
      String(p),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      ...extraArgs,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const w = watch(child, /Ready to accept connections/, 10_000);
  await w.matched;
  return {
    port: p,
    url: `redis://127.0.0.1:${p}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await w.exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

let built: Promise<string> | undefined;

/** Removes build directories of test processes that are gone. */
async function removeStaleBuilds(base: string): Promise<void> {
  for (const name of await readdir(base).catch(() => [] as string[])) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch {
      await rm(path.join(base, name), { recursive: true, force: true });
    }
  }
}

/**
 * Compiles src/server/main.ts to one ESM file (packages stay external) and bundles the page next
 * to it, once per test process: dist/test-server/<pid>/{server/main.mjs,public/}. The server finds
 * the page at ../public/ from its own file, as in the image.
 */
export function serverEntry(): Promise<string> {
  built ??= (async () => {
    const base = path.join(roomImageDir, 'dist', 'test-server');
    await removeStaleBuilds(base);
    const dir = path.join(base, String(process.pid));
    const outfile = path.join(dir, 'server', 'main.mjs');
    await mkdir(path.dirname(outfile), { recursive: true });
    await esbuild.build({
      entryPoints: [path.join(roomImageDir, 'src/server/main.ts')],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      logLevel: 'silent',
    });
    await bundleClient({
      clientDir: path.join(roomImageDir, 'src/client'),
      outdir: path.join(dir, 'public'),
      minify: false,
    });
    return outfile;
  })();
  return built;
}

export interface RoomProcess {
  child: ChildProcess;
  /** Resolves with the base URL once the server logs its port. */
  listening: Promise<string>;
  /** Resolves with the base URL of its metrics port. */
  metricsUrl: Promise<string>;
  exited: Promise<number | null>;
  output(): string;
  /** SIGKILL, as a crashed or evicted pod; resolves when it is gone. */
  crash(): Promise<void>;
}

/** Runs the room server as its own process, as in the container (PORT=0 unless given). */
export async function startRoom(env: Record<string, string>): Promise<RoomProcess> {
  const child = spawn(process.execPath, [await serverEntry()], {
    cwd: roomImageDir,
    env: {
      PATH: process.env['PATH'] ?? '',
      LISTEN_ADDRESS: '127.0.0.1',
      ...testEnv(env),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const w = watch(child, /"port":(\d+),"metricsPort":(\d+)/, 10_000);
  const metricsUrl = w.matched.then((m) => `http://127.0.0.1:${m[2]}`);
  metricsUrl.catch(() => undefined); // a test that expects an early exit waits on `listening` only
  return {
    child,
    listening: w.matched.then((m) => `http://127.0.0.1:${m[1]}`),
    metricsUrl,
    exited: w.exited,
    output: w.output,
    async crash() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await w.exited;
    },
  };
}

/** Starts `n` room servers sharing one Redis; resolves with their URLs and metrics URLs. */
export async function startReplicas(
  n: number,
  redisUrl: string,
  env: Record<string, string> = {},
): Promise<{ rooms: RoomProcess[]; urls: string[]; metricsUrls: string[] }> {
  const rooms: RoomProcess[] = [];
  for (let i = 0; i < n; i++) rooms.push(await startRoom({ ROOM_REDIS_URL: redisUrl, ...env }));
  const urls = await Promise.all(rooms.map((r) => r.listening));
  const metricsUrls = await Promise.all(rooms.map((r) => r.metricsUrl));
  await Promise.all(urls.map((u) => waitReady(u)));
  return { rooms, urls, metricsUrls };
}

/** Waits until GET /readyz answers 200. */
export async function waitReady(url: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < end) {
    try {
      const res = await fetch(`${url}/readyz`);
      last = `${res.status} ${await res.text()}`;
      if (res.status === 200) return;
    } catch (err) {
      last = String(err);
    }
    await sleep(100);
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms: ${last}`);
}

/**
 * A TCP proxy that spreads connections round-robin over the backends it is given and skips a
 * backend that refuses (a dead pod), as a Service does once the endpoint is gone. Each accepted
 * connection is piped to one backend for its whole life. With `refuseWebSocket` it answers
 * WebSocket handshakes with 403, like a corporate proxy that does not let WebSocket through.
 */
export class RoundRobinProxy {
  private next = 0;
  private readonly server = net.createServer((client) => this.accept(client));
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  refuseWebSocket = false;

  constructor(public backends: number[]) {}

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return `http://127.0.0.1:${this.port}`;
  }

  private accept(client: net.Socket): void {
    this.sockets.add(client);
    client.once('close', () => this.sockets.delete(client));
    client.on('error', () => client.destroy());
    // HTTP speaks first: look at the first request before choosing a backend.
    client.once('data', (first: Buffer) => {
      client.pause();
      if (this.refuseWebSocket && /transport=websocket/.test(first.toString('latin1'))) {
        client.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        return;
      }
      this.connect(client, first, 0);
    });
  }

  private connect(client: net.Socket, first: Buffer, attempt: number): void {
    const backends = this.backends;
    if (attempt >= backends.length || client.destroyed) {
      client.destroy();
      return;
    }
    const port = backends[this.next++ % backends.length]!;
    const upstream = net.connect(port, '127.0.0.1');
    let connected = false;
    upstream.on('error', () => {
      upstream.destroy();
      if (!connected) this.connect(client, first, attempt + 1); // refused: a dead backend
    });
    upstream.once('connect', () => {
      connected = true;
      this.sockets.add(upstream);
      upstream.once('close', () => {
        this.sockets.delete(upstream);
        client.destroy();
      });
      client.once('close', () => upstream.destroy());
      upstream.write(first);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
