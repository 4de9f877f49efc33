import type { RunningServer } from '../src/server/server.js';
import { rm } from 'node:fs/promises';
import { request } from 'node:http';
import {
  BROADCASTER_KEY,
  buildClientToTemp,
  VIEWER_KEY,
  closeAllClients,
  collect,
  collectChat,
  connect,
  metric,
  nextEvent,
  sleep,
  start,
  waitFor,
} from './helpers.js';

type Ack = { ok: boolean; error?: string; message?: { text: string; ts: number; name: string } };

let server: RunningServer | undefined;

afterEach(async () => {
  closeAllClients();
  await server?.close();
  server = undefined;
});

function refusal(p: Promise<unknown>): Promise<{ reason?: string; message?: string }> {
  return p.then(
    () => {
      throw new Error('expected the connection to be refused');
    },
    (err: Error & { data?: { reason?: string; message?: string } }) => err.data ?? {},
  );
}

describe('http endpoints', () => {
  it('serves health, readiness, config without keys, and metrics', async () => {
    server = await start({ ROOM_VIEWER_KEY: VIEWER_KEY, ROOM_TITLE: 'My <b>show</b>' });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    const cfg = await fetch(`${server.url}/config.json`);
    const text = await cfg.text();
    expect(JSON.parse(text)).toMatchObject({ title: 'My <b>show</b>', private: true });
    expect(text).not.toContain(BROADCASTER_KEY);
    expect(text).not.toContain(VIEWER_KEY);
    const m = await fetch(`${server.metricsUrl}/metrics`);
    expect(m.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const body = await m.text();
    expect(body).toMatch(/^streamroom_viewers_connected 0$/m);
    expect(body).toMatch(/^streamroom_rejected_messages_total\{reason="flood"\} 0$/m);
  });
});

/** Raw GET so the response body is not transparently decompressed. */
function rawGet(url: string): Promise<{ status: number; headers: Record<string, unknown>; bytes: number }> {
  return new Promise((resolve, reject) => {
    request(url, { headers: { 'accept-encoding': 'gzip, br' } }, (res) => {
      let bytes = 0;
      res.on('data', (d: Buffer) => (bytes += d.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes }));
    })
      .on('error', reject)
      .end();
  });
}

describe('page and static assets', () => {
  it('serves index.html with no-cache and hashed, compressed, immutable bundles', async () => {
    const publicDir = await buildClientToTemp();
    server = await start({}, { publicDir });
    const page = await fetch(`${server.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('cache-control')).toBe('no-cache');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await page.text();
    const script = /src="\/(app-[A-Z0-9]{8}\.js)"/.exec(html)?.[1];
    const style = /href="\/(style-[A-Z0-9]{8}\.css)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    expect(style).toBeDefined();
    for (const asset of [script!, style!]) {
      const res = await rawGet(`${server.url}/${asset}`);
      expect(res.status).toBe(200);
      expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(res.headers['content-encoding']).toMatch(/^(gzip|br)$/);
      const plain = await (
        await fetch(`${server.url}/${asset}`, { headers: { 'accept-encoding': 'identity' } })
      ).text();
      expect(res.bytes).toBeLessThan(plain.length / 2);
      // Its source map is as immutable as the bundle it belongs to.
      const map = await fetch(`${server.url}/${asset}.map`);
      expect(map.status).toBe(200);
      expect(map.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(JSON.parse(await map.text())).toMatchObject({ version: 3 }); // read it: an unread body holds the connection
    }
    expect((await fetch(`${server.url}/nope.js`)).status).toBe(404);
    expect((await fetch(`${server.url}/../package.json`)).status).toBe(404);
    await rm(publicDir, { recursive: true, force: true });
  });
});

describe('ICE servers', () => {
  const ice = {
    ICE_SERVERS: JSON.stringify([
      { urls: 'stun:stun.example.org' },
      { urls: 'turn:turn.example.org', username: 'u' },
    ]),
    ICE_SERVER_1_CREDENTIAL: 'turn-secret',
  };

  it('hands ICE servers with merged credentials to connected clients', async () => {
    server = await start(ice);
    const expected = [
      { urls: 'stun:stun.example.org' },
      { urls: 'turn:turn.example.org', username: 'u', credential: 'turn-secret' },
    ];
    expect((await connect(server.url, { role: 'viewer' })).welcome['iceServers']).toEqual(expected);
    const cfg = (await (await fetch(`${server.url}/config.json`)).json()) as { iceServers?: unknown };
    expect(cfg.iceServers).toEqual(expected);
  });

  it('keeps TURN credentials of a private room away from unauthenticated requests', async () => {
    server = await start({ ...ice, ROOM_VIEWER_KEY: VIEWER_KEY });
    expect(await (await fetch(`${server.url}/config.json`)).text()).not.toContain('turn-secret');
    const { welcome } = await connect(server.url, { role: 'viewer', key: VIEWER_KEY });
    expect(JSON.stringify(welcome['iceServers'])).toContain('turn-secret');
  });
});

describe('authentication and presence', () => {
  it('refuses a broadcaster without or with a wrong key and accepts the right one', async () => {
    server = await start();
    expect(await refusal(connect(server.url, { role: 'broadcaster' }))).toMatchObject({
      reason: 'bad_broadcaster_key',
    });
    expect(await refusal(connect(server.url, { role: 'broadcaster', key: 'nope-nope-nope' }))).toMatchObject({
      reason: 'bad_broadcaster_key',
    });
    expect(await refusal(connect(server.url, { role: 'admin' }))).toMatchObject({ reason: 'bad_auth' });
    const { welcome } = await connect(server.url, { role: 'broadcaster', key: BROADCASTER_KEY });
    expect(welcome).toMatchObject({ role: 'broadcaster', viewers: [] });
    expect(await metric(server.metricsUrl, 'streamroom_broadcasters_connected')).toBe(1);
    expect(
      await metric(server.metricsUrl, 'streamroom_rejected_connections_total{reason="bad_broadcaster_key"}'),
    ).toBe(2);
  });

  it('requires the viewer key in a private room', async () => {
    server = await start({ ROOM_VIEWER_KEY: VIEWER_KEY });
    expect(await refusal(connect(server.url, { role: 'viewer' }))).toMatchObject({
      reason: 'bad_viewer_key',
    });
    expect(await refusal(connect(server.url, { role: 'viewer', key: 'wrong-key-123' }))).toMatchObject({
      reason: 'bad_viewer_key',
    });
    // The broadcaster key is not a viewer key.
    expect(await refusal(connect(server.url, { role: 'viewer', key: BROADCASTER_KEY }))).toMatchObject({
      reason: 'bad_viewer_key',
    });
    const { welcome } = await connect(server.url, { role: 'viewer', key: VIEWER_KEY, name: 'Ada' });
    expect(welcome).toMatchObject({ role: 'viewer', name: 'Ada' });
  });

  it('enforces maxViewers with a clear message and frees the seat on leave', async () => {
    server = await start({ ROOM_MAX_VIEWERS: '2' });
    const b = await connect(server.url, { role: 'broadcaster', key: BROADCASTER_KEY });
    const presence = collect<{ viewers: number }>(b.socket, 'presence');
    const v1 = await connect(server.url, { role: 'viewer' });
    await connect(server.url, { role: 'viewer' });
    const refused = await refusal(connect(server.url, { role: 'viewer' }));
    expect(refused.reason).toBe('room_full');
    expect(refused.message).toMatch(/full \(2 viewers\)/);
    await waitFor(() => presence.at(-1)?.viewers === 2);
    expect(await metric(server.metricsUrl, 'streamroom_viewers_connected')).toBe(2);
    v1.socket.close();
    await waitFor(() => presence.at(-1)?.viewers === 1);
    await connect(server.url, { role: 'viewer' });
    expect(await metric(server.metricsUrl, 'streamroom_rejected_connections_total{reason="room_full"}')).toBe(
      1,
    );
  });

  it('tells viewers when the broadcaster comes, goes live and leaves', async () => {
    server = await start();
    const v = await connect(server.url, { role: 'viewer' });
    const presence = collect<{ broadcasterOnline: boolean; live: boolean }>(v.socket, 'presence');
    const b = await connect(server.url, { role: 'broadcaster', key: BROADCASTER_KEY });
    await waitFor(() => presence.at(-1)?.broadcasterOnline === true);
    const ack = await b.socket.emitWithAck('stream:state', { live: true });
    expect(ack).toEqual({ ok: true });
    await waitFor(() => presence.at(-1)?.live === true);
    b.socket.close();
    await waitFor(() => presence.at(-1)?.broadcasterOnline === false && presence.at(-1)?.live === false);
    // A viewer cannot claim the stream.
    expect(await v.socket.emitWithAck('stream:state', { live: true })).toEqual({
      ok: false,
      error: 'not_allowed',
    });
  });

  it('hands out user tokens, accepts its own back and ignores forged ones', async () => {
    server = await start();
    expect(await refusal(connect(server.url, { role: 'viewer', user: { id: 1 } }))).toMatchObject({
      reason: 'bad_auth',
    });
    expect(await refusal(connect(server.url, { role: 'viewer', user: 'x'.repeat(1000) }))).toMatchObject({
      reason: 'bad_auth',
    });
    const first = await connect(server.url, { role: 'viewer' });
    const token = first.welcome['user'] as string;
    expect(token).toMatch(/^[\w-]{16}\.[\w-]{22}$/);
    expect((await connect(server.url, { role: 'viewer', user: token })).welcome['user']).toBe(token);
    for (const forged of [
      'garbage',
      `${token.slice(0, 17)}${'B'.repeat(22)}`,
      `${'A'.repeat(16)}.${token.slice(17)}`,
    ]) {
      const other = await connect(server.url, { role: 'viewer', user: forged });
      expect(other.welcome['user']).not.toBe(token);
      expect(other.welcome['user']).not.toBe(forged);
    }
  });

  it('a reconnecting broadcaster replaces the old session', async () => {
    server = await start();
    const b1 = await connect(server.url, { role: 'broadcaster', key: BROADCASTER_KEY });
    const replaced = nextEvent(b1.socket, 'replaced');
    await connect(server.url, { role: 'broadcaster', key: BROADCASTER_KEY });
    await replaced;
    await waitFor(() => !b1.socket.connected);
    expect(await metric(server.metricsUrl, 'streamroom_broadcasters_connected')).toBe(1);
  });
});

describe('signaling relay', () => {
  it('relays offers/answers/candidates to exactly one socket', async () => {
    server = await start();
    const b = await connect(server.url, { role: 'broadcaster', key: BROADCASTER_KEY });
    const joined = collect<{ id: string }>(b.socket, 'viewer:joined');
    const v1 = await connect(server.url, { role: 'viewer' });
    const v2 = await connect(server.url, { role: 'viewer' });
    await waitFor(() => joined.length === 2);
    const v1Signals = collect(v1.socket, 'signal');
    const v2Signals = collect(v2.socket, 'signal');
    const bSignals = collect<{ from: string; pc: string; data: unknown }>(b.socket, 'signal');

    const offer = { type: 'offer', sdp: 'v=0\r\n' };
    expect(await b.socket.emitWithAck('signal', { to: v1.welcome['id'], pc: 'pc1', data: offer })).toEqual({
      ok: true,
    });
    await waitFor(() => v1Signals.length === 1);
    expect(v1Signals[0]).toEqual({ from: b.welcome['id'], pc: 'pc1', data: offer });

    const cand = {
      type: 'candidate',
      candidate: {
        candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host',
        sdpMid: '0',
        sdpMLineIndex: 0,
        extra: 'x',
      },
    };
    await v1.socket.emitWithAck('signal', { pc: 'pc1', data: cand });
    await waitFor(() => bSignals.length === 1);
    expect(bSignals[0]).toEqual({
      from: v1.welcome['id'],
      pc: 'pc1',
      data: {
        type: 'candidate',
        candidate: { candidate: cand.candidate.candidate, sdpMid: '0', sdpMLineIndex: 0 },
      },
    });
    // A viewer cannot address another viewer; the broadcaster cannot address unknown sockets.
    expect(await v1.socket.emitWithAck('signal', { to: v2.welcome['id'], pc: 'pc1', data: offer })).toEqual({
      ok: false,
      error: 'not_allowed',
    });
    expect(await b.socket.emitWithAck('signal', { to: 'nobody', pc: 'pc1', data: offer })).toEqual({
      ok: false,
      error: 'unknown_target',
    });
    await sleep(100);
    expect(v2Signals).toHaveLength(0);
    expect(bSignals).toHaveLength(1);
    expect(await metric(server.metricsUrl, 'streamroom_signaling_messages_total')).toBe(2);
  });
});

describe('chat', () => {
  it('delivers messages with server timestamps and sends the last N to newcomers', async () => {
    server = await start({ CHAT_HISTORY_SIZE: '3', CHAT_MESSAGES_PER_MINUTE: '100' });
    const a = await connect(server.url, { role: 'viewer', name: 'Alice' });
    const b = await connect(server.url, { role: 'viewer', name: 'Bob' });
    const received = collectChat<{ name: string; text: string; ts: number }>(b.socket);
    const before = Date.now();
    for (let i = 1; i <= 5; i++) {
      const ack = (await a.socket.emitWithAck('chat:send', { text: `  hello <b>${i}</b>  ` })) as Ack;
      expect(ack.ok).toBe(true);
    }
    await waitFor(() => received.length === 5);
    expect(received[0]).toMatchObject({ name: 'Alice', text: 'hello <b>1</b>' });
    expect(received[0]!.ts).toBeGreaterThanOrEqual(before);
    expect(received[0]!.ts).toBeLessThanOrEqual(Date.now());
    const c = await connect(server.url, { role: 'viewer' });
    const history = (c.welcome['chat'] as { history: { text: string }[] }).history;
    expect(history.map((m) => m.text)).toEqual(['hello <b>3</b>', 'hello <b>4</b>', 'hello <b>5</b>']);
    expect(await metric(server.metricsUrl, 'streamroom_chat_messages_total')).toBe(5);
  });

  it('rate-limits each user and enforces the maximum length', async () => {
    server = await start({ CHAT_MESSAGES_PER_MINUTE: '3', CHAT_MAX_MESSAGE_LENGTH: '10' });
    const a = await connect(server.url, { role: 'viewer' });
    const b = await connect(server.url, { role: 'viewer' });
    const seenByB = collectChat(b.socket);
    const results: Ack[] = [];
    for (let i = 0; i < 5; i++)
      results.push((await a.socket.emitWithAck('chat:send', { text: `m${i}` })) as Ack);
    expect(results.map((r) => r.ok)).toEqual([true, true, true, false, false]);
    expect(results[3]!.error).toBe('rate_limited');
    // Another user has their own budget.
    expect(((await b.socket.emitWithAck('chat:send', { text: 'hi' })) as Ack).ok).toBe(true);
    expect(await b.socket.emitWithAck('chat:send', { text: '12345678901' })).toEqual({
      ok: false,
      error: 'too_large',
    });
    expect(((await b.socket.emitWithAck('chat:send', { text: '1234567890' })) as Ack).ok).toBe(true);
    await sleep(100);
    expect(seenByB).toHaveLength(5);
    expect(await metric(server.metricsUrl, 'streamroom_rejected_messages_total{reason="rate_limited"}')).toBe(
      2,
    );
    expect(await metric(server.metricsUrl, 'streamroom_rejected_messages_total{reason="too_large"}')).toBe(1);
  });

  it('validates display names and refuses chat when disabled', async () => {
    server = await start({ CHAT_ENABLED: 'false' });
    expect(await refusal(connect(server.url, { role: 'viewer', name: '<script>' }))).toMatchObject({
      reason: 'invalid_name',
    });
    const a = await connect(server.url, { role: 'viewer', name: 'José María' });
    expect(a.welcome['name']).toBe('José María');
    expect(await a.socket.emitWithAck('name:set', { name: 'x'.repeat(33) })).toEqual({
      ok: false,
      error: 'invalid_name',
    });
    expect(await a.socket.emitWithAck('name:set', { name: 'a\u0000b' })).toEqual({
      ok: false,
      error: 'invalid_name',
    });
    expect(await a.socket.emitWithAck('name:set', { name: '  Grace   Hopper ' })).toEqual({
      ok: true,
      name: 'Grace Hopper',
    });
    expect(await a.socket.emitWithAck('chat:send', { text: 'hi' })).toEqual({
      ok: false,
      error: 'chat_disabled',
    });
  });
});

describe('hostile input', () => {
  it('rejects and counts bad payloads of many kinds without affecting others', async () => {
    server = await start({ CHAT_MESSAGES_PER_MINUTE: '1000' });
    const bad = await connect(server.url, { role: 'viewer', name: 'Mallory' });
    const good = await connect(server.url, { role: 'viewer', name: 'Carol' });
    const seenByGood = collectChat(good.socket);
    const rejected = collect<{ event: string; reason: string }>(bad.socket, 'rejected');
    const payloads: unknown[] = [
      undefined,
      null,
      42,
      'text',
      [],
      [{ text: 'hi' }],
      { text: 42 },
      { text: null },
      { text: ['a'] },
      { text: { toString: 'x' } },
      { text: '' },
      { text: '\u0000\u0001' },
      { text: 'x'.repeat(200_000) },
      { text: Buffer.from('binary') },
    ];
    for (const p of payloads) {
      const r = (await bad.socket.emitWithAck('chat:send', p)) as Ack;
      expect(r.ok).toBe(false);
    }
    const badSignals: unknown[] = [
      null,
      { pc: 'x', data: null },
      { pc: 'bad id!', data: { type: 'offer', sdp: 'v=0' } },
      { pc: 'p', data: { type: 'offer', sdp: 5 } },
      { pc: 'p', data: { type: 'offer', sdp: 'x'.repeat(100_000) } },
      { pc: 'p', data: { type: 'candidate', candidate: { candidate: 'c', sdpMLineIndex: -1 } } },
      { pc: 'p', data: { type: 'transceiverRequest', transceiverRequest: { kind: 'video' } } },
      { pc: 'p', data: { type: '__proto__' } },
    ];
    for (const p of badSignals) {
      const r = (await bad.socket.emitWithAck('signal', p)) as Ack;
      expect(r.ok).toBe(false);
    }
    // Extra arguments, unknown events, events without an ack.
    expect(await bad.socket.emitWithAck('chat:send', { text: 'a' }, 'extra')).toEqual({
      ok: false,
      error: 'invalid_payload',
    });
    expect(await bad.socket.emitWithAck('admin:kick', { id: good.welcome['id'] })).toEqual({
      ok: false,
      error: 'unknown_event',
    });
    bad.socket.emit('presence', { viewers: 9999 });
    bad.socket.emit('chat:send', 'not an object');
    await waitFor(() => rejected.length === 2);
    expect(rejected).toEqual([
      { event: 'presence', reason: 'unknown_event' },
      { event: 'chat:send', reason: 'invalid_payload' },
    ]);

    expect(bad.socket.connected).toBe(true);
    expect(seenByGood).toHaveLength(0);
    expect(((await good.socket.emitWithAck('chat:send', { text: 'still fine' })) as Ack).ok).toBe(true);
    const total = async (): Promise<number> => {
      let sum = 0;
      for (const r of ['invalid_payload', 'too_large', 'unknown_event', 'not_allowed', 'unknown_target']) {
        sum += await metric(server!.metricsUrl, `streamroom_rejected_messages_total{reason="${r}"}`);
      }
      return sum;
    };
    expect(await total()).toBe(payloads.length + badSignals.length + 4);
    expect(await metric(server.metricsUrl, 'streamroom_rejected_messages_total{reason="too_large"}')).toBe(2);
  });

  it('drops a message bigger than the transport limit by closing only that connection', async () => {
    server = await start();
    const bad = await connect(server.url, { role: 'viewer' });
    const good = await connect(server.url, { role: 'viewer' });
    const gone = nextEvent(bad.socket, 'disconnect');
    bad.socket.emit('chat:send', { text: 'x'.repeat(1_000_000) });
    await gone;
    expect(good.socket.connected).toBe(true);
    expect(((await good.socket.emitWithAck('chat:send', { text: 'ok' })) as Ack).ok).toBe(true);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it('throttles floods and disconnects a socket that keeps flooding', async () => {
    server = await start({}, { flood: { burst: 20, perSecond: 5, disconnectAfter: 200 } });
    const bad = await connect(server.url, { role: 'viewer' });
    const good = await connect(server.url, { role: 'viewer' });
    const seenByGood = collectChat(good.socket);
    const notices = collect(bad.socket, 'rejected');
    const gone = nextEvent(bad.socket, 'disconnect', 5000);
    for (let i = 0; i < 400 && bad.socket.connected; i++) bad.socket.emit('chat:send', { text: `spam ${i}` });
    await gone;
    // At most the burst (plus a little refill) got through; chat's own limit (20/min) caps it further.
    await sleep(100);
    expect(seenByGood.length).toBeLessThanOrEqual(20);
    expect(
      await metric(server.metricsUrl, 'streamroom_rejected_messages_total{reason="flood"}'),
    ).toBeGreaterThanOrEqual(200);
    expect(good.socket.connected).toBe(true);
    // Dropped packets are not answered one by one (no amplification).
    expect(notices.length).toBeLessThan(10);
  });
});

describe('shutdown', () => {
  it('announces the restart, fails readiness, refuses new sockets and closes', async () => {
    server = await start({}, { drainMs: 300 });
    const { url } = server;
    const v = await connect(url, { role: 'viewer' });
    const shutdown = nextEvent<{ reconnect: boolean }>(v.socket, 'server:shutdown');
    const disconnected = nextEvent<string>(v.socket, 'disconnect');
    const closed = server.close();
    expect(await shutdown).toMatchObject({ reconnect: true });
    expect((await fetch(`${url}/readyz`)).status).toBe(503);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect(await refusal(connect(url, { role: 'viewer' }))).toMatchObject({ reason: 'shutting_down' });
    expect(await disconnected).toBe('io server disconnect');
    await closed;
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    server = undefined;
  });
});
