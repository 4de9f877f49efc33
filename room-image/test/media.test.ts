// SFU rooms at the socket level: the room server with its real media relay, and a swarm of Go WebRTC
// peers (room-image/media) that signal through socket.io like browser pages. One synthetic broadcaster
// reaches 100 viewers without loss; the room survives bad signals, a 50 Mbps broadcaster and a viewer
// that never connects; and a relay killed mid-stream comes back with every viewer's video.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Swarm } from '../src/bench/swarm.js';
import type { RunningServer } from '../src/server/server.js';
import {
  BROADCASTER_KEY,
  closeAllClients,
  connect,
  metric,
  roomImageDir,
  relayBinary,
  start,
  waitFor,
} from './helpers.js';

const SWARM = path.join(roomImageDir, 'media', 'dist', 'streamroom-swarm');
const SFU = { ROOM_MEDIA_MODE: 'SFU', ROOM_MAX_VIEWERS: '500' };

let server: RunningServer | undefined;
let swarm: Swarm | undefined;

beforeAll(() => {
  relayBinary(); // builds both binaries when missing
});

afterEach(async () => {
  closeAllClients();
  await swarm?.close();
  swarm = undefined;
  await server?.close();
  server = undefined;
});

/** Waits until every viewer got packets, then returns the swarm's stats over `ms`. */
async function steadyStats(s: Swarm, viewers: number, ms: number) {
  await waitFor(
    async () => (await s.stats()).perViewer.filter((v) => v.packets > 0).length >= viewers,
    30_000,
    250,
  );
  await s.reset();
  await new Promise((r) => setTimeout(r, ms));
  return s.stats();
}

/** Connects a viewer that never answers; resolves with the pc ids of the offers it gets, as they come. */
async function viewerOffers(url: string): Promise<string[]> {
  const offers: string[] = [];
  await connect(
    url,
    { role: 'viewer' },
    {},
    {
      signal: (s: { pc: string; data: { type: string } }) => {
        if (s.data.type === 'offer') offers.push(s.pc);
      },
    },
  );
  return offers;
}

describe('an SFU room', () => {
  it('carries one broadcaster to 100 viewers through its relay with no loss', async () => {
    // the swarm's viewers all come from 127.0.0.1
    server = await start({ ...SFU, ROOM_MAX_VIEWERS_PER_ADDRESS: '0' });
    swarm = new Swarm(SWARM);
    await swarm.publish(server.url, BROADCASTER_KEY);
    await swarm.addViewers(server.url, 100);
    const stats = await steadyStats(swarm, 100, 5000);
    expect(stats.connected).toBe(100);
    expect(stats.perViewer.every((v) => v.packets > 100)).toBe(true);
    expect(stats.aggregate.lossPct).toBeLessThan(0.1);
    expect(await metric(server.metricsUrl, 'streamroom_relay_viewers')).toBe(100);
    expect(await metric(server.metricsUrl, 'streamroom_relay_up')).toBe(1);
  }, 120_000);

  it('refuses bad signals with a reason and keeps serving', async () => {
    server = await start(SFU);
    const b = await connect(server.url, { role: 'broadcaster', key: BROADCASTER_KEY });
    const v = await connect(server.url, { role: 'viewer' });
    const ack = (s: typeof b.socket, env: unknown) =>
      s.emitWithAck('signal', env) as Promise<{ ok: boolean; error?: string }>;
    // malformed SDP
    expect(await ack(b.socket, { pc: 'p1', data: { type: 'offer', sdp: 'v=0\r\nnot an sdp' } })).toEqual({
      ok: false,
      error: 'invalid_payload',
    });
    // an offer with 50 video sections
    const sections = Array.from(
      { length: 50 },
      (_, i) =>
        `m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:${i}\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 ${'AB:'.repeat(31)}AB\r\na=setup:actpass\r\na=rtcp-mux\r\n`,
    ).join('');
    const offer50 = `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE ${Array.from({ length: 50 }, (_, i) => i).join(' ')}\r\n${sections}`;
    const started = Date.now();
    expect(await ack(b.socket, { pc: 'p2', data: { type: 'offer', sdp: offer50 } })).toEqual({
      ok: false,
      error: 'invalid_payload',
    });
    expect(Date.now() - started).toBeLessThan(2000);
    // viewers do not offer, and only signal on the connection the relay opened for them
    expect(await ack(v.socket, { pc: 'x', data: { type: 'offer', sdp: 'v=0' } })).toEqual({
      ok: false,
      error: 'not_allowed',
    });
    expect(await ack(v.socket, { pc: 'not-mine', data: { type: 'answer', sdp: 'v=0' } })).toEqual({
      ok: false,
      error: 'unknown_target',
    });
    expect(
      await ack(b.socket, { to: v.welcome['id'], pc: 'p3', data: { type: 'offer', sdp: 'v=0' } }),
    ).toEqual({
      ok: false,
      error: 'not_allowed',
    });
    expect(await (await fetch(`${server.url}/readyz`)).text()).toBe('ready\n');
    expect(await metric(server.metricsUrl, 'streamroom_relay_restarts_total')).toBe(0);
  }, 30_000);

  it('caps a broadcaster sending 50 Mbps and stays responsive', async () => {
    server = await start(SFU);
    swarm = new Swarm(SWARM);
    await swarm.publish(server.url, BROADCASTER_KEY, 50_000_000);
    await swarm.addViewers(server.url, 5);
    await waitFor(
      async () => (await metric(server!.metricsUrl, 'streamroom_relay_packets_dropped_total')) > 1000,
      30_000,
      250,
    );
    const t = Date.now();
    const chat = await connect(server.url, { role: 'viewer' });
    expect(await chat.socket.emitWithAck('chat:send', { text: 'still here' })).toMatchObject({ ok: true });
    expect(Date.now() - t).toBeLessThan(2000);
    const out = await metric(server.metricsUrl, 'streamroom_relay_bitrate_bits{direction="out"}');
    // what reaches the viewers stays near the cap (4 Mbps each), far below 50 Mbps each
    expect(out).toBeLessThan(5 * 6_000_000);
  }, 60_000);

  it('comes back after its relay is killed mid-stream: every viewer gets video again without reloading', async () => {
    server = await start(SFU);
    swarm = new Swarm(SWARM);
    await swarm.publish(server.url, BROADCASTER_KEY);
    const viewers = await swarm.addViewers(server.url, 10);
    await steadyStats(swarm, 10, 500);
    const pid = server.media?.relay.pid;
    expect(pid).toBeDefined();
    process.kill(pid!, 'SIGKILL');
    await waitFor(async () => (await fetch(`${server!.url}/readyz`)).status === 503, 5000, 20);
    const killedAt = Date.now();
    await waitFor(() => server!.media?.relay.running === true, 10_000, 50);
    // each viewer got a second offer (a new peer connection), and packets flow on it
    await waitFor(() => viewers.every((v) => v.peers.length >= 2), 10_000, 50);
    await swarm.reset();
    await waitFor(
      async () => {
        const s = await swarm!.stats();
        const second = new Set(viewers.map((v) => v.peers[1]));
        return s.perViewer.filter((p) => second.has(p.id) && p.packets > 0).length === 10;
      },
      15_000,
      100,
    );
    const recoveredMs = Date.now() - killedAt;
    expect(recoveredMs).toBeLessThan(10_000);
    expect(await metric(server.metricsUrl, 'streamroom_relay_restarts_total')).toBe(1);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
  }, 60_000);

  it('offers the stream to a viewer who came before the relay was up, once it is', async () => {
    // a relay that takes 2 s to start (a loaded node): the viewer's first subscribe fails
    const dir = await mkdtemp(path.join(os.tmpdir(), 'streamroom-slow-relay-'));
    const slow = path.join(dir, 'relay');
    await writeFile(slow, `#!/bin/sh\nsleep 2\nexec '${relayBinary()}' "$@"\n`);
    await chmod(slow, 0o755);
    try {
      server = await start({ ...SFU, ROOM_RELAY_PATH: slow });
      const offers = await viewerOffers(server.url);
      expect(await metric(server.metricsUrl, 'streamroom_relay_up')).toBe(0);
      await waitFor(() => offers.length === 1, 10_000, 100);
      expect(await metric(server.metricsUrl, 'streamroom_relay_up')).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it('closes a viewer connection that never completes and offers again', async () => {
    server = await start(SFU);
    const offers = await viewerOffers(server.url);
    // never answer: the relay closes the connection after its connect timeout, the server re-offers
    await waitFor(() => offers.length >= 2, 40_000, 200);
    expect(offers[1]).not.toBe(offers[0]);
    expect(await metric(server.metricsUrl, 'streamroom_relay_viewers')).toBe(0);
  }, 60_000);
});
