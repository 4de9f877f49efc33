import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { io as ioClient, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import { bundleClient } from '../src/build/bundle.js';
import { loadConfig, type RoomConfig } from '../src/server/config.js';
import { createLogger } from '../src/server/log.js';
import { startServer, type RunningServer, type ServerOptions } from '../src/server/server.js';

export const roomImageDir = fileURLToPath(new URL('..', import.meta.url));
export const repoRoot = path.resolve(roomImageDir, '..');

export const BROADCASTER_KEY = 'bk-test-0123456789';
export const VIEWER_KEY = 'vk-test-0123456789';

/** The media relay binary (npm run build:relay), built here when missing. */
export function relayBinary(): string {
  const bin = path.join(roomImageDir, 'media', 'dist', 'streamroom-relay');
  if (!existsSync(bin)) {
    execFileSync('npm', ['run', '--silent', 'build:relay'], { cwd: roomImageDir, stdio: 'inherit' });
  }
  return bin;
}

/**
 * A room's environment for tests. PeerToPeer unless a test asks for SFU (the media tests do); an SFU
 * room's relay listens on 127.0.0.1 and offers loopback candidates.
 */
export function testEnv(env: Record<string, string> = {}): Record<string, string> {
  return {
    ROOM_NAME: 'test-room',
    ROOM_BROADCASTER_KEY: BROADCASTER_KEY,
    PORT: '0',
    ROOM_METRICS_PORT: '0',
    ROOM_MEDIA_MODE: 'PeerToPeer',
    ROOM_RELAY_LISTEN_ADDRESS: '127.0.0.1',
    ROOM_RELAY_INCLUDE_LOOPBACK: 'true',
    ...(env['ROOM_MEDIA_MODE'] === 'SFU' ? { ROOM_RELAY_PATH: relayBinary() } : {}),
    ...env,
  };
}

export function testConfig(env: Record<string, string> = {}): RoomConfig {
  return loadConfig(testEnv(env));
}

export async function buildClientToTemp(): Promise<string> {
  const outdir = await mkdtemp(path.join(os.tmpdir(), 'streamroom-public-'));
  await bundleClient({ clientDir: path.join(roomImageDir, 'src/client'), outdir, minify: false });
  return outdir;
}

export async function start(
  env: Record<string, string> = {},
  options: ServerOptions = {},
): Promise<RunningServer> {
  return startServer(testConfig(env), {
    host: '127.0.0.1',
    port: 0,
    log: createLogger('error', () => undefined),
    ...options,
  });
}

export interface Auth {
  role?: unknown;
  key?: unknown;
  name?: unknown;
  user?: unknown;
}

const open: Socket[] = [];

/**
 * Connects a socket.io client; resolves with it after `welcome`, rejects on connect_error. `options`
 * adds client options (e.g. `extraHeaders`).
 */
export function connect(
  url: string,
  auth: Auth,
  options: Partial<ManagerOptions & SocketOptions> = {},
  /** Listeners attached before connecting (events that may come in the same packet as the welcome). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  listeners: Record<string, (...args: any[]) => void> = {},
): Promise<{ socket: Socket; welcome: Record<string, unknown> }> {
  const socket = ioClient(url, {
    auth,
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    ...options,
  });
  for (const [event, listener] of Object.entries(listeners)) socket.on(event, listener);
  open.push(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('connect timed out')), 5000);
    socket.once('welcome', (welcome: Record<string, unknown>) => {
      clearTimeout(timer);
      resolve({ socket, welcome });
    });
    socket.once('connect_error', (err: Error & { data?: unknown }) => {
      clearTimeout(timer);
      socket.close();
      reject(err);
    });
  });
}

export function closeAllClients(): void {
  for (const s of open.splice(0)) s.close();
}

export function nextEvent<T = unknown>(socket: Socket, event: string, timeoutMs = 3000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${event}`)), timeoutMs);
    socket.once(event, (payload: T) => {
      clearTimeout(timer);
      resolve(payload);
    });
  });
}

/** Collects every `event` payload the socket receives from now on. */
export function collect<T = unknown>(socket: Socket, event: string): T[] {
  const items: T[] = [];
  socket.on(event, (p: T) => items.push(p));
  return items;
}

/** Collects every chat message the socket receives from now on (`chat:batch` events, flattened). */
export function collectChat<T = unknown>(socket: Socket, batches: T[][] = []): T[] {
  const items: T[] = [];
  socket.on('chat:batch', (batch: T[]) => {
    batches.push(batch);
    items.push(...batch);
  });
  return items;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitFor(
  fn: () => boolean | Promise<boolean>,
  timeoutMs = 3000,
  stepMs = 20,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await sleep(stepMs);
  }
  throw new Error('condition not met in time');
}

/** A sample of `metricsUrl`/metrics (RunningServer.metricsUrl, RoomProcess.metricsUrl). */
export async function metric(metricsUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`metric ${name} not found`);
  return Number(line.slice(name.length + 1));
}
