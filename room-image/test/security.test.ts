/**
 * What a hostile visitor must not get: a socket from a cross-site page, log lines by the thousand,
 * a channel to the broadcaster it was not offered, internal addresses, the metrics.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { createLogger } from '../src/server/log.js';
import type { RunningServer } from '../src/server/server.js';
import {
  BROADCASTER_KEY,
  closeAllClients,
  collect,
  connect,
  metric,
  nextEvent,
  sleep,
  start,
  waitFor,
} from './helpers.js';
import { freePort, startRoom, type RoomProcess } from './processes.js';

let server: RunningServer | undefined;
let room: RoomProcess | undefined;

afterEach(async () => {
  closeAllClients();
  await server?.close();
  server = undefined;
  await room?.crash();
  room = undefined;
});

/** The status of a socket.io handshake (WebSocket upgrade or long-polling) with these headers. */
function handshakeStatus(url: string, transport: 'websocket' | 'polling', headers: Record<string, string>) {
  return new Promise<number>((resolve, reject) => {
    const upgrade =
      transport === 'websocket'
        ? {
            Connection: 'Upgrade',
            Upgrade: 'websocket',
            'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
            'Sec-WebSocket-Version': '13',
          }
        : {};
    const req = request(`${url}/socket.io/?EIO=4&transport=${transport}`, {
      headers: { ...upgrade, ...headers },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('origin of socket.io handshakes', () => {
  it("accepts the room's own origin and clients without one, refuses other sites with 403", async () => {
    server = await start();
    const { url } = server;
    const host = new URL(url).host;
    const withOrigin = (origin: string) => ({ extraHeaders: { Origin: origin } });

    await connect(url, { role: 'viewer' }); // no Origin: not a browser
    await connect(url, { role: 'viewer' }, withOrigin(`http://${host}`));
    await connect(url, { role: 'viewer' }, withOrigin(`https://${host}`)); // behind a TLS proxy
    for (const origin of [
      'https://evil.example',
      `http://127.0.0.1.evil.example:${new URL(url).port}`,
      'null',
    ]) {
      await expect(connect(url, { role: 'viewer' }, withOrigin(origin))).rejects.toThrow();
    }
    for (const transport of ['websocket', 'polling'] as const) {
      expect(await handshakeStatus(url, transport, { Origin: 'https://evil.example' })).toBe(403);
      expect(await handshakeStatus(url, transport, { Origin: `http://${host}` })).toBe(
        transport === 'websocket' ? 101 : 200,
      );
    }
    expect(
      await metric(server.metricsUrl, 'streamroom_rejected_connections_total{reason="bad_origin"}'),
    ).toBe(5);
  });

  it('accepts the extra origins of ROOM_ALLOWED_ORIGINS', async () => {
    server = await start({ ROOM_ALLOWED_ORIGINS: 'https://embed.example, http://localhost:3000' });
    const viewer = (origin: string) =>
      connect(server!.url, { role: 'viewer' }, { extraHeaders: { Origin: origin } });
    await viewer('https://embed.example');
    await viewer('http://localhost:3000');
    await expect(viewer('https://other.example')).rejects.toThrow();
    await expect(viewer('http://embed.example')).rejects.toThrow();
  });
});

describe('flood disconnects', () => {
  it('log one line per socket, not one per queued packet', async () => {
    const lines: string[] = [];
    server = await start(
      {},
      {
        flood: { burst: 5, perSecond: 1, disconnectAfter: 20 },
        log: createLogger('info', (line) => void lines.push((JSON.parse(line) as { msg: string }).msg)),
      },
    );
    const floods = [
      await connect(server.url, { role: 'viewer' }),
      await connect(server.url, { role: 'viewer' }),
    ];
    for (const f of floods) {
      const gone = nextEvent(f.socket, 'disconnect', 5000);
      for (let i = 0; i < 800; i++) f.socket.emit('chat:send', { text: `spam ${i}` });
      await gone;
    }
    await sleep(200);
    expect(lines.filter((l) => l === 'disconnecting flooding socket')).toHaveLength(2);
  });
});

describe('PeerToPeer signaling from viewers', () => {
  it('only answers what the broadcaster offered, never offers', async () => {
    server = await start();
    const b = await connect(server.url, { role: 'broadcaster', key: BROADCASTER_KEY });
    const joined = collect<{ id: string }>(b.socket, 'viewer:joined');
    const v = await connect(server.url, { role: 'viewer' });
    await waitFor(() => joined.length === 1);
    const toBroadcaster = collect<{ pc: string; data: { type: string } }>(b.socket, 'signal');
    const big = { type: 'offer', sdp: `v=0\r\n${'a=x\r\n'.repeat(6000)}` };
    const candidate = {
      type: 'candidate',
      candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0 },
    };
    const answer = { type: 'answer', sdp: 'v=0\r\n' };

    // Unsolicited: an offer (of any size), or anything on a connection never offered.
    expect(await v.socket.emitWithAck('signal', { pc: 'mine', data: big })).toEqual({
      ok: false,
      error: 'not_allowed',
    });
    expect(await v.socket.emitWithAck('signal', { pc: 'mine', data: candidate })).toEqual({
      ok: false,
      error: 'unknown_target',
    });
    expect(await v.socket.emitWithAck('signal', { pc: 'mine', data: answer })).toEqual({
      ok: false,
      error: 'unknown_target',
    });

    // The broadcaster offers `p1`: the viewer answers it once, and trickles candidates on it.
    const offered = nextEvent(v.socket, 'signal');
    const offer = { type: 'offer', sdp: 'v=0\r\n' };
    expect(await b.socket.emitWithAck('signal', { to: v.welcome['id'], pc: 'p1', data: offer })).toEqual({
      ok: true,
    });
    await offered;
    expect(await v.socket.emitWithAck('signal', { pc: 'p1', data: answer })).toEqual({ ok: true });
    expect(await v.socket.emitWithAck('signal', { pc: 'p1', data: candidate })).toEqual({ ok: true });
    expect(await v.socket.emitWithAck('signal', { pc: 'p1', data: answer })).toEqual({
      ok: false,
      error: 'not_allowed',
    });
    expect(await v.socket.emitWithAck('signal', { pc: 'p1', data: big })).toEqual({
      ok: false,
      error: 'not_allowed',
    });
    // A renegotiation: a new offer on the same connection is answered again.
    const reoffered = nextEvent(v.socket, 'signal');
    await b.socket.emitWithAck('signal', { to: v.welcome['id'], pc: 'p1', data: offer });
    await reoffered;
    expect(await v.socket.emitWithAck('signal', { pc: 'p1', data: answer })).toEqual({ ok: true });
    await sleep(100);
    expect(toBroadcaster.map((s) => `${s.pc}:${s.data.type}`)).toEqual([
      'p1:answer',
      'p1:candidate',
      'p1:answer',
    ]);
  });
});

describe('HTTP', () => {
  it('says why it is not ready without naming internal hosts', async () => {
    const port = await freePort();
    room = await startRoom({ ROOM_REDIS_URL: `redis://127.0.0.1:${port}` });
    const url = await room.listening;
    await waitFor(() => /redis connection failed/.test(room!.output()), 5000);
    const res = await fetch(`${url}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('not ready: redis not connected\n');
  });

  it('serves the metrics on their own port only, and nothing else there', async () => {
    server = await start();
    expect(server.metricsPort).not.toBe(server.port);
    const status = async (url: string): Promise<number> => {
      const res = await fetch(url);
      await res.text();
      return res.status;
    };
    expect(await status(`${server.url}/metrics`)).toBe(404);
    expect(await status(`${server.metricsUrl}/metrics`)).toBe(200);
    for (const p of ['/', '/config.json', '/socket.io/?EIO=4&transport=polling']) {
      expect(await status(`${server.metricsUrl}${p}`)).toBe(404);
    }
  });
});
