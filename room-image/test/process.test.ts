import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import * as esbuild from 'esbuild';
import { BROADCASTER_KEY, connect, closeAllClients, nextEvent, roomImageDir } from './helpers.js';

afterEach(() => closeAllClients());

/** Compiles src/server/main.ts to a single ESM file (packages stay external). */
async function buildEntry(): Promise<string> {
  const outdir = path.join(roomImageDir, 'dist', 'test-server');
  await mkdir(outdir, { recursive: true });
  const outfile = path.join(outdir, 'main.mjs');
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
  return outfile;
}

function run(entry: string, env: Record<string, string>) {
  const child = spawn(process.execPath, [entry], {
    cwd: roomImageDir,
    env: { PATH: process.env['PATH'] ?? '', PORT: '0', LISTEN_ADDRESS: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const listening = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 10_000);
    child.stdout.on('data', () => {
      const m = /"port":(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(`http://127.0.0.1:${m[1]}`);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`server exited: ${out}`));
    });
  });
  return { child, exited, listening, output: () => out };
}

describe('server process', () => {
  it('exits with status 2 and names the variable on bad configuration', async () => {
    const entry = await buildEntry();
    const p = run(entry, { ROOM_BROADCASTER_KEY: BROADCASTER_KEY, ROOM_MAX_VIEWERS: 'lots' });
    p.listening.catch(() => undefined);
    expect(await p.exited).toBe(2);
    expect(p.output()).toContain('ROOM_MAX_VIEWERS');
    expect(p.output()).not.toContain(BROADCASTER_KEY);
  }, 20_000);

  it('on SIGTERM tells clients to reconnect and exits 0 within the timeout', async () => {
    const entry = await buildEntry();
    const p = run(entry, { ROOM_BROADCASTER_KEY: BROADCASTER_KEY, SHUTDOWN_TIMEOUT_SECONDS: '4' });
    const url = await p.listening;
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    const b = await connect(url, { role: 'broadcaster', key: BROADCASTER_KEY });
    const v = await connect(url, { role: 'viewer' });
    const notices = [nextEvent(b.socket, 'server:shutdown'), nextEvent(v.socket, 'server:shutdown')];
    const started = Date.now();
    p.child.kill('SIGTERM');
    for (const n of notices) expect(await n).toMatchObject({ reconnect: true });
    expect((await fetch(`${url}/readyz`)).status).toBe(503);
    expect(await p.exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(4000);
    expect(p.output()).not.toContain(BROADCASTER_KEY);
  }, 20_000);
});
