/* global fetch, performance, setTimeout, clearTimeout */
// Room benchmark: starts the built server (dist/) as a child process on 127.0.0.1, measures its
// idle RSS after a warm-up, then measures time from a viewer opening the page to its first
// decoded video frame (median of several runs) with Debian's Chromium and a fake camera.
// Run after `npm run build` (the bench:room script does both).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { URL, fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { io } from 'socket.io-client';

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const RUN_TIMEOUT_MS = 15_000;
const TOTAL_TIMEOUT_MS = 120_000;
const KEY = 'bench-broadcaster-key';
const root = fileURLToPath(new URL('..', import.meta.url));

const deadline = setTimeout(() => {
  console.error('bench: overall time limit reached');
  process.exit(1);
}, TOTAL_TIMEOUT_MS);

const child = spawn(process.execPath, ['dist/server/main.js'], {
  cwd: root,
  env: {
    ...process.env,
    PORT: '0',
    LISTEN_ADDRESS: '127.0.0.1',
    ROOM_BROADCASTER_KEY: KEY,
    ROOM_TITLE: 'Bench',
    ROOM_MAX_VIEWERS_PER_ADDRESS: '0', // every viewer of the bench comes from 127.0.0.1
    ROOM_NEW_USERS_PER_ADDRESS_PER_MINUTE: '0',
    ROOM_METRICS_PORT: '0',
  },
  stdio: ['ignore', 'pipe', 'inherit'],
});
const port = await new Promise((resolve, reject) => {
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    const m = /"port":(\d+)/.exec(buf);
    if (m) resolve(Number(m[1]));
  });
  child.once('exit', (code) => reject(new Error(`server exited early (${code})`)));
});
const url = `http://127.0.0.1:${port}`;

const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]);

// Warm-up: page, assets, a few socket connections.
const html = await (await fetch(`${url}/`)).text();
for (const asset of html.matchAll(/(?:src|href)="\/([^"]+-[A-Z0-9]{8}\.(?:js|css))"/g)) {
  await (await fetch(`${url}/${asset[1]}`, { headers: { 'accept-encoding': 'gzip' } })).arrayBuffer();
}
for (let i = 0; i < 5; i++) {
  const s = io(url, {
    auth: { role: 'viewer' },
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  });
  await new Promise((r) => s.once('welcome', r));
  s.close();
}
await sleep(2000);
const idleRss = rssKiB();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-quic',
    '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
  ],
});

async function framesDecoded(page) {
  return page.evaluate(async () => {
    const pc = globalThis.__streamroom?.pc();
    if (!pc) return 0;
    let frames = 0;
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') frames = Math.max(frames, r.framesDecoded ?? 0);
    });
    return frames;
  });
}

const times = [];
try {
  const broadcaster = await (await browser.newContext()).newPage();
  await broadcaster.goto(`${url}/#key=${KEY}`);
  await broadcaster.getByRole('button', { name: 'Start camera' }).click();
  await broadcaster.getByRole('button', { name: 'Stop camera' }).waitFor();

  for (let i = 0; i < RUNS; i++) {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const t0 = performance.now();
    await page.goto(url);
    let ms;
    while (performance.now() - t0 < RUN_TIMEOUT_MS) {
      if ((await framesDecoded(page)) > 0) {
        ms = performance.now() - t0;
        break;
      }
      await sleep(10);
    }
    await ctx.close();
    if (ms === undefined) throw new Error(`run ${i + 1}: no decoded frame within ${RUN_TIMEOUT_MS} ms`);
    times.push(ms);
    console.log(`run ${i + 1}: first decoded frame after ${ms.toFixed(0)} ms`);
  }
} finally {
  await browser.close();
}
const sorted = [...times].sort((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)];
const afterRss = rssKiB();
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
clearTimeout(deadline);

console.log('');
console.log(
  `viewer open -> first decoded frame: median ${median.toFixed(0)} ms over ${times.length} runs (min ${sorted[0].toFixed(0)} ms, max ${sorted.at(-1).toFixed(0)} ms)`,
);
console.log(`server idle RSS after warm-up: ${(idleRss / 1024).toFixed(1)} MiB`);
console.log(`server RSS after the viewer runs: ${(afterRss / 1024).toFixed(1)} MiB`);
