import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { RunningServer } from '../src/server/server.js';
import {
  CHROMIUM_ARGS,
  CHROMIUM_PATH,
  expectVideoPlaying,
  framesDecoded,
  openRoomPage,
  waitForFrames,
} from './browser-helpers.js';
import {
  BROADCASTER_KEY,
  buildClientToTemp,
  closeAllClients,
  connect,
  repoRoot,
  start,
  waitFor,
} from './helpers.js';
import { RoundRobinProxy } from './processes.js';

let browser: Browser;
let server: RunningServer;
let publicDir: string;

beforeAll(async () => {
  publicDir = await buildClientToTemp();
  server = await start({ ROOM_TITLE: 'Friday Night Synths', CHAT_MESSAGES_PER_MINUTE: '60' }, { publicDir });
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
}, 30_000);

const contexts: BrowserContext[] = [];
async function newContext(options: Parameters<Browser['newContext']>[0] = {}): Promise<BrowserContext> {
  const ctx = await browser.newContext(options);
  contexts.push(ctx);
  return ctx;
}

afterEach(async () => {
  for (const ctx of contexts.splice(0)) await ctx.close();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (publicDir) await rm(publicDir, { recursive: true, force: true });
});

const openViewer = (name: string): Promise<Page> => openRoomPage(browser, contexts, server.url, name);

describe('room page in Chromium', () => {
  it('streams to viewers, relays chat, serves late joiners and survives a broadcaster reload', async () => {
    const bctx = await newContext({ viewport: { width: 1280, height: 760 } });
    const broadcaster = await bctx.newPage();
    const requested: string[] = [];
    broadcaster.on('request', (r) => requested.push(r.url()));
    await broadcaster.goto(`${server.url}/#key=${encodeURIComponent(BROADCASTER_KEY)}`);
    // The key left the address bar and never appeared in a request URL.
    expect(broadcaster.url()).toBe(`${server.url}/`);
    await broadcaster.getByRole('button', { name: 'Start camera' }).click();
    await broadcaster.getByRole('button', { name: 'Stop camera' }).waitFor();

    const v1 = await openViewer('Viewer One');
    const v2 = await openViewer('Viewer Two');
    const f1 = await waitForFrames(v1, 0);
    const f2 = await waitForFrames(v2, 0);
    // Frames keep coming.
    await waitForFrames(v1, f1 + 5);
    await waitForFrames(v2, f2 + 5);
    await v1.getByText('2 watching').waitFor();
    await expectVideoPlaying(v1);
    await expectVideoPlaying(v2);

    // Chat typed in one page shows up in the others, as text.
    await v1.fill('#chat-input', 'hello <img src=x onerror=alert(1)> from one');
    await v1.press('#chat-input', 'Enter');
    for (const p of [broadcaster, v2]) {
      await p.locator('.msg-text', { hasText: 'hello <img src=x onerror=alert(1)> from one' }).waitFor();
      expect(await p.locator('.messages img').count()).toBe(0);
    }
    await broadcaster.fill('#chat-input', 'welcome everyone');
    await broadcaster.press('#chat-input', 'Enter');
    await v1.locator('.msg-broadcaster .msg-text', { hasText: 'welcome everyone' }).waitFor();

    // A late joiner gets video and the chat history.
    const joinedAt = Date.now();
    const late = await openViewer('Late Larry');
    await waitForFrames(late, 0);
    // "Within a couple of seconds" (bench median is ~1 s here); generous for a loaded CI machine.
    expect(Date.now() - joinedAt).toBeLessThan(5000);
    await expectVideoPlaying(late);
    await late.locator('.msg-text', { hasText: 'welcome everyone' }).waitFor();

    // The broadcaster stops the camera: viewers see the offline state; starting again brings video back.
    await broadcaster.getByRole('button', { name: 'Stop camera' }).click();
    for (const p of [v1, v2]) {
      await p.locator('#overlay-title', { hasText: 'Starting soon' }).waitFor();
      await p.locator('#live-badge', { hasText: 'Offline' }).waitFor();
      expect(await framesDecoded(p)).toBe(0);
    }
    await mkdir(path.join(repoRoot, 'test-artifacts'), { recursive: true });
    await v2.screenshot({ path: path.join(repoRoot, 'test-artifacts', 'room-viewer-offline.png') });
    await broadcaster.getByRole('button', { name: 'Start camera' }).click();
    await waitForFrames(v1, 0);
    await waitForFrames(v2, 0);

    // The broadcaster reloads; viewers see offline, then video again without reloading.
    await broadcaster.reload();
    await v1.locator('#live-badge', { hasText: 'Offline' }).waitFor();
    await broadcaster.getByRole('button', { name: 'Stop camera' }).waitFor({ timeout: 15_000 });
    await waitForFrames(v1, 0);
    await waitForFrames(v2, 0);
    await waitForFrames(late, 0);
    await expectVideoPlaying(v1);
    await expectVideoPlaying(v2);
    expect(v1.url()).toBe(`${server.url}/`);

    expect(requested.some((u) => u.includes(BROADCASTER_KEY))).toBe(false);

    await v1.locator('#overlay').waitFor({ state: 'hidden' });
    await v1.screenshot({ path: path.join(repoRoot, 'test-artifacts', 'room-viewer.png') });
    await broadcaster.screenshot({ path: path.join(repoRoot, 'test-artifacts', 'room-broadcaster.png') });
    const phone = await newContext({
      viewport: { width: 390, height: 844 },
      isMobile: true,
      hasTouch: true,
    });
    const mobile = await phone.newPage();
    await mobile.goto(server.url);
    await waitForFrames(mobile, 0);
    await mobile.screenshot({ path: path.join(repoRoot, 'test-artifacts', 'room-viewer-phone.png') });
  }, 90_000);

  it('shows a burst of chat from many senders in order, one page update per batch', async () => {
    const page = await openViewer('Reader');
    // Counts the changes that add to the list (the test's tsconfig has no DOM types: a string).
    await page.evaluate(`
      window.additions = 0;
      new MutationObserver((records) => {
        window.additions += records.filter((r) => r.addedNodes.length > 0).length;
      }).observe(document.querySelector('.messages'), { childList: true });
    `);
    const senders = await Promise.all(
      Array.from({ length: 10 }, (_, i) => connect(server.url, { role: 'viewer', name: `Burst ${i}` })),
    );
    const acks = senders.flatMap((s, i) =>
      Array.from({ length: 10 }, (_, k) => s.socket.emitWithAck('chat:send', { text: `burst ${i}.${k}` })),
    );
    expect((await Promise.all(acks)).every((a) => (a as { ok: boolean }).ok)).toBe(true);
    const shown = async (): Promise<string[]> =>
      (await page.locator('.msg-text').allTextContents()).filter((t) => t.startsWith('burst '));
    await waitFor(async () => (await shown()).length >= 100, 10_000);
    const texts = await shown();
    expect(new Set(texts).size).toBe(100);
    for (let i = 0; i < 10; i++) {
      expect(texts.filter((t) => t.startsWith(`burst ${i}.`))).toEqual(
        Array.from({ length: 10 }, (_, k) => `burst ${i}.${k}`),
      );
    }
    // A batch is one change to the list, not one per message.
    const additions = Number(await page.evaluate('window.additions'));
    console.log(`100 messages shown in ${additions} updates of the list`);
    expect(additions).toBeLessThanOrEqual(20);
    closeAllClients();
  });

  it('pages reconnect by themselves and video resumes after the room server restarts', async () => {
    const port = server.port;
    const broadcaster = await (await newContext()).newPage();
    await broadcaster.goto(`${server.url}/#key=${encodeURIComponent(BROADCASTER_KEY)}`);
    await broadcaster.getByRole('button', { name: 'Start camera' }).click();
    const viewer = await openViewer('Patient Pat');
    await waitForFrames(viewer, 0);

    await server.close();
    await viewer.locator('#overlay-title', { hasText: 'Reconnecting' }).waitFor();
    // The replacement process comes up on the same address (as a new pod would behind the Service).
    server = await start({ ROOM_TITLE: 'Friday Night Synths' }, { publicDir, port });
    await waitForFrames(viewer, 0, 20_000);
    await expectVideoPlaying(viewer);
    await viewer.getByText('1 watching').waitFor();
  }, 60_000);
});

describe('transport fallback', () => {
  it('falls back to HTTP long-polling when WebSocket is blocked, in a single-replica room', async () => {
    // A network path that refuses every WebSocket handshake (as some corporate proxies do).
    const proxy = new RoundRobinProxy([server.port]);
    proxy.refuseWebSocket = true;
    const url = await proxy.listen();
    try {
      const page = await (await newContext()).newPage();
      await page.goto(url);
      const transport = (): Promise<string | undefined> =>
        page.evaluate(() => {
          type Handle = { socket(): { connected: boolean; transport: string | undefined } };
          const s = (globalThis as unknown as { __streamroom: Handle }).__streamroom.socket();
          return s.connected ? s.transport : undefined;
        });
      await waitFor(async () => (await transport()) === 'polling', 20_000, 200);
      await page.fill('#chat-input', 'sent over polling');
      await page.press('#chat-input', 'Enter');
      await page.locator('.msg-text', { hasText: 'sent over polling' }).waitFor();
    } finally {
      await proxy.close();
    }
  }, 40_000);
});

describe('insecure pages', () => {
  it('tells a broadcaster on plain http (not localhost) that the camera needs a secure page', async () => {
    // room.test resolves to the test server, so the page is http on a name that is not localhost.
    const insecure = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      args: [...CHROMIUM_ARGS, '--host-resolver-rules=MAP room.test 127.0.0.1'],
    });
    try {
      const page = await insecure.newPage();
      await page.goto(`http://room.test:${server.port}/#key=${encodeURIComponent(BROADCASTER_KEY)}`);
      expect(
        await page.evaluate(() => (globalThis as unknown as { isSecureContext: boolean }).isSecureContext),
      ).toBe(false);
      await page.getByRole('button', { name: 'Start camera' }).click();
      await page.locator('#toast', { hasText: 'Broadcasting needs a secure page' }).waitFor();
      await page.getByRole('button', { name: 'Share screen' }).click();
      await page.locator('#toast', { hasText: 'https://' }).waitFor();
    } finally {
      await insecure.close();
    }
  }, 30_000);
});
