/** Chromium (Debian's) for the page tests: fake camera, no prompts, nothing phoning home. */
import { execFileSync } from 'node:child_process';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { sleep } from './helpers.js';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  // The tests' relay listens on 127.0.0.1 only: let pages pair with its loopback candidate, and hand
  // it their own address rather than an mDNS name it cannot resolve (see media/README.md).
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

/** Frames decoded by the viewer page's peer connection (0 when it has none yet). */
export async function framesDecoded(page: Page): Promise<number> {
  return page.evaluate(async () => {
    type Stats = { forEach(cb: (r: { type: string; kind?: string; framesDecoded?: number }) => void): void };
    type Handle = { pc(): { getStats(): Promise<Stats> } | null };
    const handle = (globalThis as unknown as { __streamroom?: Handle }).__streamroom;
    const pc = handle?.pc();
    if (!pc) return 0;
    let frames = 0;
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') frames = Math.max(frames, r.framesDecoded ?? 0);
    });
    return frames;
  });
}

/** Waits until the page's decoded-frame counter exceeds `above`; returns the new count. */
export async function waitForFrames(page: Page, above: number, timeoutMs = 15_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  let last = 0;
  while (Date.now() < end) {
    last = await framesDecoded(page);
    if (last > above) return last;
    await sleep(150);
  }
  throw new Error(`no decoded frames above ${above} within ${timeoutMs} ms (last ${last})`);
}

/** The page's <video> element is actually playing the remote stream. */
export async function expectVideoPlaying(page: Page): Promise<void> {
  const read = (): Promise<{ w: number; t: number; paused: boolean }> =>
    page.evaluate(() => {
      const g = globalThis as unknown as {
        document: {
          getElementById(id: string): { videoWidth: number; currentTime: number; paused: boolean } | null;
        };
      };
      const v = g.document.getElementById('video');
      return { w: v?.videoWidth ?? 0, t: v?.currentTime ?? 0, paused: v?.paused ?? true };
    });
  const first = await read();
  const end = Date.now() + 5000;
  let now = first;
  while (Date.now() < end && !(now.w > 0 && !now.paused && now.t > first.t)) {
    await sleep(100);
    now = await read();
  }
  expect(now.w).toBeGreaterThan(0);
  expect(now.paused).toBe(false);
  expect(now.t).toBeGreaterThan(first.t);
}

/**
 * Opens the room page in a new browser context (recorded in `contexts` so the caller can close it);
 * with a name, the page joins under it (the client keeps the name in localStorage).
 */
export async function openRoomPage(
  browser: Browser,
  contexts: BrowserContext[],
  url: string,
  name?: string,
): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 760 } });
  contexts.push(ctx);
  if (name) {
    await ctx.addInitScript((n) => {
      const g = globalThis as unknown as { localStorage: { setItem(k: string, v: string): void } };
      g.localStorage.setItem('streamroom:name', n);
    }, name);
  }
  const page = await ctx.newPage();
  await page.goto(url);
  return page;
}

/** Opens the room as its broadcaster (key in the URL fragment) and starts the fake camera. */
export async function openBroadcaster(
  browser: Browser,
  contexts: BrowserContext[],
  url: string,
  key: string,
): Promise<Page> {
  const page = await openRoomPage(
    browser,
    contexts,
    `${url.replace(/\/$/, '')}/#key=${encodeURIComponent(key)}`,
  );
  await page.getByRole('button', { name: 'Start camera' }).click();
  await page.getByRole('button', { name: 'Stop camera' }).waitFor();
  return page;
}

export interface CandidatePair {
  local: { ip: string; port: number; type: string };
  remote: { ip: string; port: number; type: string };
  /** The pair's current round-trip time, ms. */
  rttMs: number;
}

/** The viewer page's selected ICE candidate pair: where its media goes and comes from. */
export async function selectedPair(page: Page): Promise<CandidatePair> {
  return page.evaluate(async () => {
    type Stat = {
      type: string;
      id: string;
      selectedCandidatePairId?: string;
      localCandidateId?: string;
      remoteCandidateId?: string;
      address?: string;
      port?: number;
      candidateType?: string;
      currentRoundTripTime?: number;
    };
    type Handle = { pc(): { getStats(): Promise<{ forEach(cb: (r: Stat) => void): void }> } | null };
    const pc = (globalThis as unknown as { __streamroom: Handle }).__streamroom.pc();
    const all: Stat[] = [];
    (await pc!.getStats()).forEach((r) => all.push(r));
    const pairId = all.find((r) => r.type === 'transport')?.selectedCandidatePairId;
    const pair = all.find((r) => r.id === pairId);
    const end = (id: string | undefined) => {
      const c = all.find((r) => r.id === id);
      return { ip: c?.address ?? '', port: c?.port ?? 0, type: c?.candidateType ?? '' };
    };
    return {
      local: end(pair?.localCandidateId),
      remote: end(pair?.remoteCandidateId),
      rttMs: (pair?.currentRoundTripTime ?? NaN) * 1000,
    };
  });
}

/**
 * A poor connection for one viewer page: the kernel lets at most `packetsPerSecond` UDP packets a
 * second through to its WebRTC port and drops the rest (iptables, so root only). Returns the undo.
 * (Chromium's own network emulation does not touch WebRTC's UDP.)
 */
export async function throttle(page: Page, packetsPerSecond: number): Promise<() => void> {
  const { ip, port } = (await selectedPair(page)).local;
  if (!ip || !port) throw new Error('the page has no selected candidate pair');
  const match = ['-p', 'udp', '-d', ip, '--dport', String(port)];
  const limit = [
    '-m',
    'limit',
    '--limit',
    `${packetsPerSecond}/second`,
    '--limit-burst',
    '5',
    '-j',
    'ACCEPT',
  ];
  execFileSync('iptables', ['-I', 'OUTPUT', '1', ...match, '-j', 'DROP']);
  execFileSync('iptables', ['-I', 'OUTPUT', '1', ...match, ...limit]);
  return () => {
    execFileSync('iptables', ['-D', 'OUTPUT', ...match, ...limit]);
    execFileSync('iptables', ['-D', 'OUTPUT', ...match, '-j', 'DROP']);
  };
}
