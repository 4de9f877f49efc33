/**
 * The room page in real Chromium against several room-server processes sharing one Redis: video
 * and chat cross replicas, and pages whose replica is killed carry on without a reload.
 */
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import {
  CHROMIUM_ARGS,
  CHROMIUM_PATH,
  expectVideoPlaying,
  openBroadcaster as openRoomBroadcaster,
  openRoomPage,
  waitForFrames,
} from './browser-helpers.js';
import { BROADCASTER_KEY, waitFor } from './helpers.js';
import {
  RoundRobinProxy,
  startRedis,
  startReplicas,
  type RedisProcess,
  type RoomProcess,
} from './processes.js';

let browser: Browser;
let redis: RedisProcess | undefined;
let rooms: RoomProcess[] = [];
const proxies: RoundRobinProxy[] = [];
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
}, 30_000);

afterEach(async () => {
  for (const ctx of contexts.splice(0)) await ctx.close();
  for (const p of proxies.splice(0)) await p.close();
  await Promise.all(rooms.map((r) => r.crash()));
  rooms = [];
  await redis?.stop();
  redis = undefined;
});

afterAll(async () => {
  await browser?.close();
});

async function cluster(n: number): Promise<string[]> {
  redis = await startRedis();
  const started = await startReplicas(n, redis.url, { CHAT_MESSAGES_PER_MINUTE: '60' });
  rooms = started.rooms;
  return started.urls;
}

async function proxy(...backends: string[]): Promise<{ url: string; proxy: RoundRobinProxy }> {
  const p = new RoundRobinProxy(backends.map((u) => Number(new URL(u).port)));
  proxies.push(p);
  return { url: await p.listen(), proxy: p };
}

const openPage = (url: string, name?: string): Promise<Page> => openRoomPage(browser, contexts, url, name);
const openBroadcaster = (url: string): Promise<Page> =>
  openRoomBroadcaster(browser, contexts, url, BROADCASTER_KEY);

/** The page's socket id (changes when it reconnects) — read from the debug handle. */
function socketId(page: Page): Promise<string | undefined> {
  return page.evaluate(() => {
    type Handle = { socket(): { connected: boolean; id: string | undefined } };
    const s = (globalThis as unknown as { __streamroom: Handle }).__streamroom.socket();
    return s.connected ? s.id : undefined;
  });
}

/** Marks the page; the mark survives anything but a reload. */
async function mark(page: Page): Promise<void> {
  await page.evaluate(() => Object.assign(globalThis, { __mark: 'still the same page' }));
}
const marked = (page: Page): Promise<unknown> =>
  page.evaluate(() => (globalThis as unknown as { __mark?: string }).__mark);

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#chat-input', text);
  await page.press('#chat-input', 'Enter');
  await waitFor(async () => (await page.inputValue('#chat-input')) === '', 5000); // cleared on ack
}

/** How often each text appears in the page's chat. */
function chatCounts(page: Page): Promise<Record<string, number>> {
  return page.evaluate(() => {
    const g = globalThis as unknown as {
      document: { querySelectorAll(s: string): { textContent: string | null }[] };
    };
    const counts: Record<string, number> = {};
    for (const el of g.document.querySelectorAll('.msg-text')) {
      const t = el.textContent ?? '';
      counts[t] = (counts[t] ?? 0) + 1;
    }
    return counts;
  });
}

describe('room page across replicas in Chromium', () => {
  it('streams from a broadcaster on one replica to viewers on the others; chat crosses replicas', async () => {
    const [a, b, c] = (await cluster(3)) as [string, string, string];
    const broadcaster = await openBroadcaster(a);
    const vb = await openPage(b, 'Bob on B');
    const vc = await openPage(c, 'Cleo on C');
    const fb = await waitForFrames(vb, 0);
    const fc = await waitForFrames(vc, 0);
    await waitForFrames(vb, fb + 5);
    await waitForFrames(vc, fc + 5);
    await expectVideoPlaying(vb);
    await expectVideoPlaying(vc);
    for (const p of [broadcaster, vb, vc]) await p.getByText('2 watching').waitFor();

    await vb.fill('#chat-input', 'hi from B');
    await vb.press('#chat-input', 'Enter');
    await broadcaster.fill('#chat-input', 'hi from A');
    await broadcaster.press('#chat-input', 'Enter');
    for (const p of [broadcaster, vb, vc]) {
      await p.locator('.msg-text', { hasText: 'hi from B' }).waitFor();
      await p.locator('.msg-broadcaster .msg-text', { hasText: 'hi from A' }).waitFor();
    }
    await vc.locator('.msg-name', { hasText: 'Bob on B' }).waitFor();

    // Without WebSocket there is no way in: polling would need sticky sessions, so the page says so.
    const blocking = await proxy(a);
    blocking.proxy.refuseWebSocket = true;
    const blocked = await openPage(blocking.url);
    await blocked.locator('#status', { hasText: 'block WebSocket' }).waitFor({ timeout: 20_000 });
    expect(await socketId(blocked)).toBeUndefined();
  }, 60_000);

  it('pages whose replica is killed reconnect elsewhere, keep name and chat, and get video back', async () => {
    const [a, b, c] = (await cluster(3)) as [string, string, string];
    // Each page reaches the room through its own "Service", first holding only one replica.
    const forHost = await proxy(a);
    const forVera = await proxy(b);
    const broadcaster = await openBroadcaster(forHost.url);
    const vera = await openPage(forVera.url); // no chosen name: the server names her Guest-xxxx
    const carl = await openPage(c, 'Carl');
    await waitForFrames(vera, 0);
    await waitForFrames(carl, 0);
    const guestName = await vera.inputValue('#name-input');
    expect(guestName).toMatch(/^Guest-/);
    await say(vera, 'before 1');
    await say(carl, 'before 2');
    await say(broadcaster, 'before 3');
    for (const t of ['before 1', 'before 2', 'before 3'])
      await vera.locator('.msg-text', { hasText: t }).waitFor();
    await Promise.all([mark(vera), mark(broadcaster)]);

    // Now the Services know the other replicas too; replica B (Vera's) is killed.
    forVera.proxy.backends = [b, c].map((u) => Number(new URL(u).port));
    forHost.proxy.backends = [a, c].map((u) => Number(new URL(u).port));
    const veraBefore = await socketId(vera);
    await rooms[1]!.crash();
    await say(carl, 'while Vera was away');
    await waitFor(async () => ((await socketId(vera)) ?? veraBefore) !== veraBefore, 10_000);
    await waitForFrames(vera, 0, 20_000);
    await expectVideoPlaying(vera);
    expect(await marked(vera)).toBe('still the same page');
    expect(await vera.inputValue('#name-input')).toBe(guestName);
    await vera.locator('.msg-text', { hasText: 'while Vera was away' }).waitFor();
    const counts = await chatCounts(vera);
    for (const t of ['before 1', 'before 2', 'before 3', 'while Vera was away']) expect(counts[t]).toBe(1);
    await say(vera, 'back again');
    await carl.locator('.msg', { hasText: guestName }).filter({ hasText: 'back again' }).waitFor();
    // Vera's old seat on the dead replica is swept: two viewers again, on every page.
    for (const p of [broadcaster, vera, carl]) await p.getByText('2 watching').waitFor({ timeout: 20_000 });

    // The broadcaster's replica dies too: it reconnects and offers again to every viewer.
    const hostBefore = await socketId(broadcaster);
    await rooms[0]!.crash();
    await waitFor(async () => ((await socketId(broadcaster)) ?? hostBefore) !== hostBefore, 10_000);
    expect(await marked(broadcaster)).toBe('still the same page');
    await broadcaster.getByRole('button', { name: 'Stop camera' }).waitFor();
    const [fv, fcarl] = [await waitForFrames(vera, 0, 20_000), await waitForFrames(carl, 0, 20_000)];
    await waitForFrames(vera, fv + 5);
    await waitForFrames(carl, fcarl + 5);
    await expectVideoPlaying(carl);
  }, 120_000);
});
