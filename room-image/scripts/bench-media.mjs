/* global setTimeout, clearTimeout, performance */
// Media benchmark. SFU: one synthetic ~1 Mbps broadcaster (the Go swarm) and N swarm viewers of a
// room server with its relay, every peer signaling through the room's socket.io like a page: the
// relay's CPU (% of one core, from its own rusage), its memory and memory per viewer, loss, one-way
// delay and the time from a viewer's join to its first packet. PeerToPeer, in the same run: a real
// Chromium broadcaster (fake camera) and N swarm viewers, up to where it breaks. Every run is
// bounded in time; everything listens on 127.0.0.1. Run after `npm run build` (bench:media does both).
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { URL, fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { Swarm } from '../dist/bench/swarm.js';
import { loadConfig } from '../dist/server/config.js';
import { startServer } from '../dist/server/server.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const SWARM = path.join(root, 'media', 'dist', 'streamroom-swarm');
const KEY = 'bench-broadcaster-key';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const SFU_VIEWERS = (process.env.BENCH_VIEWERS ?? '1,50,100,200,400').split(',').map(Number);
const P2P_VIEWERS = (process.env.BENCH_P2P_VIEWERS ?? '1,5,10,20,30,40').split(',').map(Number);
const TOTAL_TIMEOUT_MS = 15 * 60_000;
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

const deadline = setTimeout(() => {
  console.error('bench: overall time limit reached');
  process.exit(1);
}, TOTAL_TIMEOUT_MS);

async function room(mode) {
  const server = await startServer(
    loadConfig({
      ROOM_NAME: 'bench',
      ROOM_BROADCASTER_KEY: KEY,
      ROOM_MEDIA_MODE: mode,
      ROOM_MAX_VIEWERS: '1000',
      ROOM_MAX_VIEWERS_PER_ADDRESS: '0', // every viewer of the bench comes from 127.0.0.1
      ROOM_METRICS_PORT: '0',
      ROOM_RELAY_LISTEN_ADDRESS: '127.0.0.1',
      ROOM_RELAY_INCLUDE_LOOPBACK: 'true',
    }),
    { host: '127.0.0.1', port: 0, log: () => undefined },
  );
  if (server.media && !(await until(() => server.media.relay.running, 10_000)))
    throw new Error('the relay did not start');
  return server;
}

const pct = (values, p) => {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const fmt = (n, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '–');
const load = () => os.loadavg()[0].toFixed(2);

/** Waits until `check` holds or `ms` pass; returns whether it held. */
async function until(check, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await sleep(200);
  }
  return false;
}

/** Join → first packet (and first video packet) of every viewer that got one, in ms. */
function joinTimes(viewers, stats) {
  const byPeer = new Map(stats.perViewer.map((v) => [v.id, v]));
  const packet = [];
  const video = [];
  for (const v of viewers) {
    const s = byPeer.get(v.peers[0]);
    if (s?.firstPacketAt) packet.push(s.firstPacketAt - v.joinedAt);
    if (s?.firstVideoAt) video.push(s.firstVideoAt - v.joinedAt);
  }
  return { packet, video };
}

async function sfuRow(n) {
  const server = await room('SFU');
  const swarm = new Swarm(SWARM);
  try {
    const idle = await server.media.relay.stats();
    await swarm.publish(server.url, KEY);
    const viewers = await swarm.addViewers(server.url, n, { concurrency: 50 });
    const all = await until(
      async () => (await swarm.stats()).perViewer.filter((v) => v.firstVideoAt > 0).length >= n,
      60_000,
    );
    const joined = joinTimes(viewers, await swarm.stats());
    await sleep(1000);
    await swarm.reset();
    const before = await server.media.relay.stats();
    const t0 = performance.now();
    await sleep(SECONDS * 1000);
    const after = await server.media.relay.stats();
    const seconds = (performance.now() - t0) / 1000;
    const s = await swarm.stats();
    return {
      viewers: n,
      load: load(),
      cpu: (100 * (after.cpuSeconds - before.cpuSeconds)) / seconds,
      rssMiB: after.rssBytes / 2 ** 20,
      perViewerKiB: n > 1 ? (after.rssBytes - idle.rssBytes) / 1024 / n : NaN,
      connected: s.connected,
      allGotVideo: all,
      lossPct: s.aggregate.lossPct,
      delayP50: s.aggregate.delayP50Ms,
      delayP99: s.aggregate.delayP99Ms,
      firstPacketP50: pct(joined.packet, 50),
      firstVideoP50: pct(joined.video, 50),
      firstVideoP99: pct(joined.video, 99),
      bitrateOutMbps: after.bitrateOut / 1e6,
    };
  } finally {
    await swarm.close();
    await server.close();
  }
}

/** CPU seconds of a process and its descendants (Chromium's broadcaster: browser, renderer, GPU...). */
async function treeCpuSeconds(pid) {
  const { readFile, readdir } = await import('node:fs/promises');
  const tick = 100; // USER_HZ
  const stats = new Map();
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = (await readFile(`/proc/${d}/stat`, 'utf8')).split(') ')[1].split(' ');
      stats.set(Number(d), { ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) / tick });
    } catch {
      // gone meanwhile
    }
  }
  const inTree = (p) => {
    for (let q = p; q > 1; q = stats.get(q)?.ppid ?? 0) if (q === pid) return true;
    return false;
  };
  let total = 0;
  for (const [p, s] of stats) if (inTree(p)) total += s.cpu;
  return total;
}

async function p2pRows() {
  const rows = [];
  const server = await room('PeerToPeer');
  const browserServer = await chromium.launchServer({
    executablePath: '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
  });
  const browser = await chromium.connect(browserServer.wsEndpoint());
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${server.url}/#key=${KEY}`);
    await page.getByRole('button', { name: 'Start camera' }).click();
    await page.getByRole('button', { name: 'Stop camera' }).waitFor();
    const pid = browserServer.process().pid;
    for (const n of P2P_VIEWERS) {
      const swarm = new Swarm(SWARM);
      try {
        const viewers = await swarm.addViewers(server.url, n, { concurrency: 10 });
        const all = await until(
          async () => (await swarm.stats()).perViewer.filter((v) => v.firstVideoAt > 0).length >= n,
          30_000,
        );
        const joined = joinTimes(viewers, await swarm.stats());
        await sleep(1000);
        await swarm.reset();
        const cpu0 = pid ? await treeCpuSeconds(pid) : NaN;
        const t0 = performance.now();
        await sleep(SECONDS * 1000);
        const seconds = (performance.now() - t0) / 1000;
        const cpu1 = pid ? await treeCpuSeconds(pid) : NaN;
        const s = await swarm.stats();
        const receiving = s.perViewer.filter((v) => v.packets > 0);
        const row = {
          viewers: n,
          load: load(),
          browserCpu: (100 * (cpu1 - cpu0)) / seconds,
          connected: s.connected,
          allGotVideo: all,
          receiving: receiving.length,
          lossPct: s.aggregate.lossPct,
          perViewerKbps: receiving.length ? (8 * s.aggregate.bytes) / seconds / receiving.length / 1000 : 0,
          uploadMbps: (8 * s.aggregate.bytes) / seconds / 1e6,
          firstVideoP50: pct(joined.video, 50),
          firstVideoP99: pct(joined.video, 99),
        };
        rows.push(row);
        console.error(`bench: PeerToPeer ${n} viewers: ${JSON.stringify(row)}`);
        if (!all || row.lossPct > 5) break; // it broke: larger audiences only get worse
      } finally {
        await swarm.close();
        await sleep(1000);
      }
    }
  } finally {
    await browser.close();
    await browserServer.close();
    await server.close();
  }
  return rows;
}

const sfu = [];
for (const n of SFU_VIEWERS) {
  const row = await sfuRow(n);
  sfu.push(row);
  console.error(`bench: SFU ${n} viewers: ${JSON.stringify(row)}`);
}
const p2p = await p2pRows();
clearTimeout(deadline);

console.log(
  `\nSFU: one synthetic ~1 Mbps broadcaster through the room's relay (${SECONDS} s per row, ${os.cpus().length} cores, all on loopback)\n`,
);
console.log(
  '| viewers | load (1 min) | relay CPU % of a core | relay RSS MiB | RSS per viewer KiB | out Mbit/s | loss % | delay p50 / p99 ms | join → first packet p50 ms | join → first video p50 / p99 ms |',
);
console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of sfu) {
  console.log(
    `| ${r.viewers}${r.allGotVideo ? '' : ' (not all got video)'} | ${r.load} | ${fmt(r.cpu)} | ${fmt(r.rssMiB)} | ${fmt(r.perViewerKiB, 0)} | ${fmt(r.bitrateOutMbps)} | ${fmt(r.lossPct, 2)} | ${fmt(r.delayP50)} / ${fmt(r.delayP99)} | ${fmt(r.firstPacketP50, 0)} | ${fmt(r.firstVideoP50, 0)} / ${fmt(r.firstVideoP99, 0)} |`,
  );
}
console.log(
  `\nPeerToPeer: a Chromium broadcaster (fake camera) sending to each swarm viewer itself (${SECONDS} s per row)\n`,
);
console.log(
  '| viewers | load (1 min) | broadcaster browser CPU % | viewers receiving | per viewer kbit/s | broadcaster upload Mbit/s | loss % | join → first video p50 / p99 ms |',
);
console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of p2p) {
  console.log(
    `| ${r.viewers}${r.allGotVideo ? '' : ' (not all got video)'} | ${r.load} | ${fmt(r.browserCpu)} | ${r.receiving}/${r.viewers} | ${fmt(r.perViewerKbps, 0)} | ${fmt(r.uploadMbps, 2)} | ${fmt(r.lossPct, 2)} | ${fmt(r.firstVideoP50, 0)} / ${fmt(r.firstVideoP99, 0)} |`,
  );
}
process.exit(0);
