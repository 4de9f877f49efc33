// An SFU room in real Chromium: the broadcaster's page sends one stream to the room's relay, and viewer
// pages decode it from there: late joiners, a broadcaster who reloads or restarts the camera, and a
// viewer on a poor connection who must not slow the others down.
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { RunningServer } from '../src/server/server.js';
import {
  CHROMIUM_ARGS,
  CHROMIUM_PATH,
  expectVideoPlaying,
  framesDecoded,
  openBroadcaster,
  openRoomPage,
  throttle,
  waitForFrames,
} from './browser-helpers.js';
import { BROADCASTER_KEY, buildClientToTemp, metric, repoRoot, sleep, start, waitFor } from './helpers.js';

let browser: Browser;
let server: RunningServer;
let publicDir: string;
const contexts: BrowserContext[] = [];
const timings: Record<string, number> = {};

beforeAll(async () => {
  publicDir = await buildClientToTemp();
  server = await start({ ROOM_MEDIA_MODE: 'SFU', ROOM_TITLE: 'Relay Night' }, { publicDir });
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
}, 60_000);

afterEach(async () => {
  for (const ctx of contexts.splice(0)) await ctx.close();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (publicDir) await rm(publicDir, { recursive: true, force: true });
  console.log(`browser SFU timings (ms): ${JSON.stringify(timings)}`);
});

const openViewer = (name: string): Promise<Page> => openRoomPage(browser, contexts, server.url, name);

/** The peer connections of a broadcaster page (one per viewer in PeerToPeer, one to the relay in SFU). */
const broadcasterPeers = (page: Page): Promise<number> =>
  page.evaluate(
    () => (globalThis as unknown as { __streamroom: { peers(): unknown[] } }).__streamroom.peers().length,
  );

/** A handle on a viewer page's current peer connection, to tell whether it was replaced. */
const pcIdentity = (page: Page): Promise<string> =>
  page.evaluate(() => {
    type W = { __streamroom: { pc(): { __id?: string } | null } };
    const pc = (globalThis as unknown as W).__streamroom.pc();
    if (!pc) return '';
    pc.__id ??= Math.random().toString(36).slice(2);
    return pc.__id;
  });

describe('an SFU room in Chromium', () => {
  it('sends one stream to the relay, which three viewers decode; late joiners get video at once', async () => {
    const broadcaster = await openBroadcaster(browser, contexts, server.url, BROADCASTER_KEY);
    const viewers = [await openViewer('Ann'), await openViewer('Ben'), await openViewer('Cid')];
    for (const v of viewers) await waitForFrames(v, 10);
    for (const v of viewers) await expectVideoPlaying(v);
    // frames keep coming to every viewer
    const before = await Promise.all(viewers.map(framesDecoded));
    await sleep(1500);
    const after = await Promise.all(viewers.map(framesDecoded));
    after.forEach((n, i) => expect(n).toBeGreaterThan(before[i]! + 10));
    // the broadcaster's browser holds one connection however many watch: the relay fans out
    expect(await broadcasterPeers(broadcaster)).toBe(1);
    expect(await metric(server.metricsUrl, 'streamroom_relay_viewers')).toBe(3);
    await viewers[0]!.getByText('3 watching').waitFor();

    // a late joiner: from opening the page to the first decoded frame
    const opened = Date.now();
    const late = await openViewer('Dee');
    await waitForFrames(late, 0, 10_000);
    timings.lateJoinFirstFrameMs = Date.now() - opened;
    expect(timings.lateJoinFirstFrameMs).toBeLessThan(5000);
    await mkdir(path.join(repoRoot, 'test-artifacts'), { recursive: true });
    await late.screenshot({ path: path.join(repoRoot, 'test-artifacts', 'room-viewer-sfu.png') });
  }, 90_000);

  it('keeps viewers connected while the broadcaster reloads or restarts the camera', async () => {
    const broadcaster = await openBroadcaster(browser, contexts, server.url, BROADCASTER_KEY);
    const viewers = [await openViewer('Eve'), await openViewer('Fay')];
    for (const v of viewers) await waitForFrames(v, 10);
    const ids = await Promise.all(viewers.map(pcIdentity));

    // stop the camera: the picture stops and the page says so; start it: frames come back
    await broadcaster.getByRole('button', { name: 'Stop camera' }).click();
    for (const v of viewers) await v.locator('#overlay-title', { hasText: 'Starting soon' }).waitFor();
    const stopped = await Promise.all(viewers.map(framesDecoded));
    await sleep(1000);
    expect(await Promise.all(viewers.map(framesDecoded))).toEqual(stopped);
    let t = Date.now();
    await broadcaster.getByRole('button', { name: 'Start camera' }).click();
    for (const [i, v] of viewers.entries()) await waitForFrames(v, stopped[i]! + 5);
    timings.cameraRestartToFramesMs = Date.now() - t;

    // reload the broadcaster's page: viewers keep their connection and get frames again
    const beforeReload = await Promise.all(viewers.map(framesDecoded));
    t = Date.now();
    await broadcaster.reload();
    await broadcaster.getByRole('button', { name: 'Stop camera' }).waitFor({ timeout: 15_000 });
    for (const [i, v] of viewers.entries()) await waitForFrames(v, beforeReload[i]! + 5, 20_000);
    timings.broadcasterReloadToFramesMs = Date.now() - t;
    expect(await Promise.all(viewers.map(pcIdentity))).toEqual(ids);
    for (const v of viewers) await expectVideoPlaying(v);
  }, 90_000);

  it('a viewer on a throttled connection does not slow the others down', async () => {
    await openBroadcaster(browser, contexts, server.url, BROADCASTER_KEY);
    const slow = await openViewer('Slow Sam');
    const fast = [await openViewer('Quick Quinn'), await openViewer('Rapid Rae')];
    for (const v of [slow, ...fast]) await waitForFrames(v, 10);
    const rate = async (p: Page) => {
      const a = await framesDecoded(p);
      await sleep(3000);
      return ((await framesDecoded(p)) - a) / 3;
    };
    const before = await Promise.all(fast.map(rate));
    // the slow viewer's network lets 15 packets a second through (the stream needs several times that)
    const undo = await throttle(slow, 15);
    try {
      await sleep(1000);
      const [slowFps, ...fastFps] = await Promise.all([slow, ...fast].map(rate));
      timings.throttledViewerFps = slowFps!;
      timings.otherViewersFpsBefore = Math.min(...before);
      timings.otherViewersFpsWhileOneIsThrottled = Math.min(...fastFps);
      expect(slowFps).toBeLessThan(Math.min(...before) / 2);
      fastFps.forEach((f, i) => expect(f).toBeGreaterThan(before[i]! * 0.7));
      // the slow viewer is told, quietly, that its own connection is the problem
      await waitFor(
        async () => (await slow.locator('#status').textContent())?.includes('connection looks weak') ?? false,
        10_000,
        250,
      );
      expect(await fast[0]!.locator('#status').textContent()).toBe('');
    } finally {
      undo();
    }
  }, 90_000);
});
