/**
 * Several room-server processes sharing one real Redis behave as one room: chat, history,
 * presence, seats, rate limits and signaling cross replicas; a replica that is killed leaves no
 * ghosts and its clients carry on elsewhere; Redis outages make a replica unready, never dead.
 */
import { execFileSync } from 'node:child_process';
import { io as ioClient, type Socket } from 'socket.io-client';
import {
  BROADCASTER_KEY,
  collect,
  collectChat,
  connect,
  closeAllClients,
  metric,
  nextEvent,
  waitFor,
} from './helpers.js';
import {
  freePort,
  RoundRobinProxy,
  startRedis,
  startReplicas,
  startRoom,
  waitReady,
  type RedisProcess,
  type RoomProcess,
} from './processes.js';

type Ack = { ok: boolean; error?: string };
type Presence = { viewers: number; broadcasterOnline: boolean; live: boolean };
type Message = { id: string; name: string; text: string };
type Welcome = { id: string; name: string; user: string; chat: { history: Message[] } };

let redis: RedisProcess | undefined;
let rooms: RoomProcess[] = [];
const proxies: RoundRobinProxy[] = [];
const members: Member[] = [];

afterEach(async () => {
  closeAllClients();
  for (const m of members.splice(0)) m.socket.close();
  for (const p of proxies.splice(0)) await p.close();
  await Promise.all(rooms.map((r) => r.crash()));
  rooms = [];
  await redis?.stop();
  redis = undefined;
});

const lastPresence = (items: Presence[]): Presence | undefined => items.at(-1);

function refusal(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(
    () => {
      throw new Error('expected the connection to be refused');
    },
    (err: Error & { data?: { reason?: string } }) => err.data?.reason,
  );
}

/**
 * A client that behaves like the room page: reconnects by itself and sends back its name and
 * user token, so it stays the same person on whichever replica it lands.
 */
interface Member {
  socket: Socket;
  welcomes: Welcome[];
  presence: Presence[];
  messages: Message[];
  disconnects: string[];
}

function member(
  url: string,
  auth: { role: 'viewer' | 'broadcaster'; name: string; key?: string },
): Promise<Member> {
  let user: string | undefined;
  const socket = ioClient(url, {
    auth: (cb) => cb({ ...auth, ...(user ? { user } : {}) }),
    transports: ['websocket'],
    forceNew: true,
    reconnectionDelay: 200,
    reconnectionDelayMax: 1000,
  });
  const m: Member = {
    socket,
    welcomes: [],
    presence: collect<Presence>(socket, 'presence'),
    messages: collectChat<Message>(socket),
    disconnects: [],
  };
  members.push(m);
  socket.on('welcome', (w: Welcome) => {
    user = w.user;
    m.welcomes.push(w);
  });
  socket.on('disconnect', (reason) => m.disconnects.push(reason));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no welcome')), 5000);
    socket.once('welcome', () => {
      clearTimeout(timer);
      resolve(m);
    });
  });
}

/** Starts `n` replicas sharing a new Redis; resolves with their URLs and their metrics URLs. */
async function cluster(
  n: number,
  env: Record<string, string> = {},
): Promise<{ urls: string[]; metricsUrls: string[] }> {
  redis = await startRedis();
  const started = await startReplicas(n, redis.url, env);
  rooms = started.rooms;
  return started;
}

describe('two replicas sharing one Redis', () => {
  it('share chat, history, presence, metrics and signaling', async () => {
    const { urls, metricsUrls } = await cluster(2, { CHAT_MESSAGES_PER_MINUTE: '100' });
    const [a, b] = urls as [string, string];
    const [ma, mb] = metricsUrls as [string, string];
    const host = await connect(a, { role: 'broadcaster', key: BROADCASTER_KEY });
    const joined = collect<{ id: string }>(host.socket, 'viewer:joined');
    const left = collect<{ id: string }>(host.socket, 'viewer:left');
    const hostPresence = collect<Presence>(host.socket, 'presence');
    const v1 = await connect(a, { role: 'viewer', name: 'Ann' });
    const v2 = await connect(b, { role: 'viewer', name: 'Bea' });
    const p1 = collect<Presence>(v1.socket, 'presence');
    const p2 = collect<Presence>(v2.socket, 'presence');
    const m1 = collectChat<Message>(v1.socket);
    const m2 = collectChat<Message>(v2.socket);
    const mh = collectChat<Message>(host.socket);
    await waitFor(() => joined.length === 2);

    // Presence is room-wide on both replicas, and follows changes made on the other one.
    expect(await host.socket.emitWithAck('stream:state', { live: true })).toEqual({ ok: true });
    const everywhere = (f: (p: Presence | undefined) => boolean): Promise<void> =>
      waitFor(() => [hostPresence, p1, p2].every((list) => f(lastPresence(list))));
    await everywhere((p) => p?.viewers === 2 && p.broadcasterOnline && p.live);

    // Chat both ways, to everyone, once.
    expect(((await v1.socket.emitWithAck('chat:send', { text: 'hello from A' })) as Ack).ok).toBe(true);
    expect(((await v2.socket.emitWithAck('chat:send', { text: 'hello from B' })) as Ack).ok).toBe(true);
    const texts = (l: Message[]): string[] => l.map((m) => m.text).sort();
    await waitFor(() => [m1, m2, mh].every((l) => l.length === 2));
    for (const l of [m1, m2, mh]) expect(texts(l)).toEqual(['hello from A', 'hello from B']);

    // A newcomer on either replica gets the same history.
    const late = await connect(b, { role: 'viewer', name: 'Cy' });
    const lateHistory = (late.welcome['chat'] as { history: Message[] }).history;
    expect(lateHistory.map((m) => m.name)).toEqual(['Ann', 'Bea']);
    expect(lateHistory.map((m) => m.id)).toEqual(m1.map((m) => m.id));
    await everywhere((p) => p?.viewers === 3);

    // Metrics: room-wide counts on every replica, own sockets per replica, backplane up.
    for (const m of [ma, mb]) {
      expect(await metric(m, 'streamroom_viewers_connected')).toBe(3);
      expect(await metric(m, 'streamroom_broadcasters_connected')).toBe(1);
      expect(await metric(m, 'streamroom_backplane_connected')).toBe(1);
    }
    expect(await metric(ma, 'streamroom_replica_sockets{role="viewer"}')).toBe(1);
    expect(await metric(ma, 'streamroom_replica_sockets{role="broadcaster"}')).toBe(1);
    expect(await metric(mb, 'streamroom_replica_sockets{role="viewer"}')).toBe(2);

    // Signaling: the broadcaster on A reaches a viewer on B and back; targets are checked room-wide.
    const v2Signals = collect(v2.socket, 'signal');
    const hostSignals = collect<{ from: string }>(host.socket, 'signal');
    const offer = { type: 'offer', sdp: 'v=0\r\n' };
    expect(await host.socket.emitWithAck('signal', { to: v2.welcome['id'], pc: 'pc1', data: offer })).toEqual(
      {
        ok: true,
      },
    );
    await waitFor(() => v2Signals.length === 1);
    expect(v2Signals[0]).toEqual({ from: host.welcome['id'], pc: 'pc1', data: offer });
    const answer = { type: 'answer', sdp: 'v=0\r\n' };
    expect(await v2.socket.emitWithAck('signal', { pc: 'pc1', data: answer })).toEqual({ ok: true });
    await waitFor(() => hostSignals.length === 1);
    expect(hostSignals[0]).toMatchObject({ from: v2.welcome['id'], pc: 'pc1', data: answer });
    expect(await host.socket.emitWithAck('signal', { to: 'nobody', pc: 'pc1', data: offer })).toEqual({
      ok: false,
      error: 'unknown_target',
    });

    // Leaving on B frees the seat room-wide and tells the broadcaster on A.
    v2.socket.close();
    await waitFor(() => left.some((l) => l.id === v2.welcome['id']));
    await waitFor(() => [hostPresence, p1].every((list) => lastPresence(list)?.viewers === 2));
  }, 40_000);

  it('enforce maxViewers room-wide and let a broadcaster on another replica take over', async () => {
    const { urls, metricsUrls } = await cluster(2, { ROOM_MAX_VIEWERS: '2' });
    const [a, b] = urls as [string, string];
    const [ma, mb] = metricsUrls as [string, string];
    const v1 = await connect(a, { role: 'viewer' });
    await connect(b, { role: 'viewer' });
    expect(await refusal(connect(a, { role: 'viewer' }))).toBe('room_full');
    expect(await refusal(connect(b, { role: 'viewer' }))).toBe('room_full');
    v1.socket.close();
    await waitFor(async () => (await metric(mb, 'streamroom_viewers_connected')) === 1);
    await connect(b, { role: 'viewer' });
    expect(await refusal(connect(a, { role: 'viewer' }))).toBe('room_full');

    const b1 = await connect(a, { role: 'broadcaster', key: BROADCASTER_KEY });
    const replaced = nextEvent(b1.socket, 'replaced');
    const gone = nextEvent(b1.socket, 'disconnect');
    const b2 = await connect(b, { role: 'broadcaster', key: BROADCASTER_KEY });
    await replaced;
    expect(await gone).toBe('io server disconnect');
    expect(b2.socket.connected).toBe(true);
    expect(await metric(ma, 'streamroom_broadcasters_connected')).toBe(1);
    expect(await b2.socket.emitWithAck('stream:state', { live: true })).toEqual({ ok: true });
  }, 30_000);

  it('rate-limit a user on every replica, also after they move to another one', async () => {
    const { urls, metricsUrls } = await cluster(2, { CHAT_MESSAGES_PER_MINUTE: '3' });
    const [a, b] = urls as [string, string];
    const [ma, mb] = metricsUrls as [string, string];
    const first = await connect(a, { role: 'viewer', name: 'Quick' });
    const results: Ack[] = [];
    for (let i = 0; i < 4; i++)
      results.push((await first.socket.emitWithAck('chat:send', { text: `m${i}` })) as Ack);
    expect(results.map((r) => r.ok)).toEqual([true, true, true, false]);
    expect(results[3]!.error).toBe('rate_limited');
    first.socket.close();

    // Same user (token from welcome) on the other replica: still over the limit.
    const token = first.welcome['user'] as string;
    const again = await connect(b, { role: 'viewer', name: 'Quick', user: token });
    expect(again.welcome['user']).toBe(token);
    expect(await again.socket.emitWithAck('chat:send', { text: 'm4' })).toEqual({
      ok: false,
      error: 'rate_limited',
    });
    // A forged token is not that user: a new id is issued, with its own budget.
    const forged = `${token.split('.')[0]}.${'A'.repeat(22)}`;
    const other = await connect(b, { role: 'viewer', user: forged });
    expect(other.welcome['user']).not.toBe(token);
    expect(((await other.socket.emitWithAck('chat:send', { text: 'fresh' })) as Ack).ok).toBe(true);
    expect(await metric(ma, 'streamroom_rejected_messages_total{reason="rate_limited"}')).toBe(1);
    expect(await metric(mb, 'streamroom_rejected_messages_total{reason="rate_limited"}')).toBe(1);
  }, 30_000);

  it('bound the history by bytes and the viewer seats of an address room-wide', async () => {
    const { urls } = await cluster(2, {
      CHAT_HISTORY_MAX_BYTES: '65536',
      CHAT_MAX_MESSAGE_LENGTH: '5000',
      CHAT_MESSAGES_PER_MINUTE: '100',
      ROOM_MAX_VIEWERS_PER_ADDRESS: '2',
    });
    const [a, b] = urls as [string, string];
    const onA = await connect(a, { role: 'viewer' });
    const onB = await connect(b, { role: 'viewer' });
    for (const url of [a, b])
      expect(await refusal(connect(url, { role: 'viewer' }))).toBe('too_many_from_address');
    const sent: Message[] = [];
    for (let i = 0; i < 12; i++) {
      const ack = (await (i % 2 ? onA : onB).socket.emitWithAck('chat:send', {
        text: '\u{1D11E}'.repeat(2000),
      })) as Ack & { message: Message };
      expect(ack.ok).toBe(true);
      sent.push(ack.message);
    }
    onA.socket.close();
    await waitFor(async () => {
      try {
        const late = await connect(b, { role: 'viewer' });
        const history = (late.welcome['chat'] as { history: Message[] }).history;
        const bytes = history.reduce((sum, m) => sum + Buffer.byteLength(JSON.stringify(m)), 0);
        expect(bytes).toBeLessThanOrEqual(65536);
        expect(history.map((m) => m.id)).toEqual(sent.slice(-history.length).map((m) => m.id));
        expect(history.length).toBe(8);
        return true;
      } catch (err) {
        if ((err as { data?: { reason?: string } }).data?.reason === 'too_many_from_address') return false;
        throw err;
      }
    });
  }, 30_000);

  it('refuse HTTP long-polling (no sticky sessions) and say so in config.json', async () => {
    const [a] = (await cluster(1)).urls as [string];
    const polling = await fetch(`${a}/socket.io/?EIO=4&transport=polling`);
    expect(polling.status).toBe(400);
    await polling.text();
    const cfg = (await (await fetch(`${a}/config.json`)).json()) as { transports: string[] };
    expect(cfg.transports).toEqual(['websocket']);
  }, 20_000);
});

describe('rooms sharing one Redis', () => {
  it('keep apart: every key, stream and channel is under the room prefix', async () => {
    redis = await startRedis();
    const x = await startRoom({ ROOM_REDIS_URL: redis.url, ROOM_NAME: 'x', ROOM_NAMESPACE: 'team' });
    const y = await startRoom({ ROOM_REDIS_URL: redis.url, ROOM_NAME: 'y', ROOM_NAMESPACE: 'team' });
    rooms.push(x, y);
    const [xu, yu] = await Promise.all([x.listening, y.listening]);
    await Promise.all([waitReady(xu), waitReady(yu)]);
    const inX = await connect(xu, { role: 'viewer', name: 'In X' });
    const inY = await connect(yu, { role: 'viewer', name: 'In Y' });
    const seenInY = collectChat(inY.socket);
    const seenInX = collectChat(inX.socket);
    expect(((await inX.socket.emitWithAck('chat:send', { text: 'only for x' })) as Ack).ok).toBe(true);
    await waitFor(() => seenInX.length === 1); // the tick's batch went out (and on x's stream)
    const inY2 = await connect(yu, { role: 'viewer' });
    expect((inY2.welcome['chat'] as { history: unknown[] }).history).toEqual([]);
    expect(await metric(await y.metricsUrl, 'streamroom_viewers_connected')).toBe(2);
    expect(await metric(await x.metricsUrl, 'streamroom_viewers_connected')).toBe(1);
    expect(seenInY).toEqual([]);
    const cli = (...args: string[]): string[] =>
      execFileSync('/usr/bin/redis-cli', ['-p', String(redis!.port), ...args], { encoding: 'utf8' })
        .split('\n')
        .filter(Boolean);
    const keys = cli('--scan');
    expect(keys).toEqual(expect.arrayContaining(['streamroom:team:x:chat', 'streamroom:team:x:chat:stream']));
    const channels = cli('PUBSUB', 'CHANNELS', '*');
    expect(channels.length).toBeGreaterThanOrEqual(4); // public + private channel of each room
    for (const name of [...keys, ...channels]) expect(name).toMatch(/^streamroom:team:[xy]:/);
  }, 30_000);
});

describe('three replicas, one of them lost', () => {
  it('clients of a killed replica reconnect to survivors as themselves; ghosts disappear', async () => {
    const { urls, metricsUrls } = await cluster(3, { CHAT_MESSAGES_PER_MINUTE: '100' });
    const ports = urls.map((u) => Number(new URL(u).port));
    const proxy = new RoundRobinProxy(ports);
    proxies.push(proxy);
    const service = await proxy.listen();

    // Through the proxy, connection i lands on replica i % 3.
    const host = await member(service, { role: 'broadcaster', name: 'Host', key: BROADCASTER_KEY });
    const viewers: Member[] = [];
    for (let i = 0; i < 5; i++) viewers.push(await member(service, { role: 'viewer', name: `Viewer ${i}` }));
    // One more viewer on the replica that will die, which never comes back (a closed laptop).
    const quitter = ioClient(urls[1]!, {
      auth: { role: 'viewer' },
      transports: ['websocket'],
      reconnection: false,
    });
    const quitterId = (await nextEvent<{ id: string }>(quitter, 'welcome')).id;
    const everyone = [host, ...viewers];
    const leftIds = collect<{ id: string }>(host.socket, 'viewer:left');
    await waitFor(() => everyone.every((m) => lastPresence(m.presence)?.viewers === 6), 5000);

    const said: string[] = [];
    for (const [i, m] of everyone.entries()) {
      const text = `before the crash ${i}`;
      expect(((await m.socket.emitWithAck('chat:send', { text })) as Ack).ok).toBe(true);
      said.push(text);
    }

    // Replica 1 (the host's viewers 0 and 3, and the quitter) is killed; the proxy skips it now.
    const killedAt = Date.now();
    await rooms[1]!.crash();
    const onKilled = [viewers[0]!, viewers[3]!];
    for (const m of onKilled)
      await waitFor(() => m.disconnects.length === 1 && m.welcomes.length === 2, 10_000);
    const reconnectMs = Date.now() - killedAt;
    for (const m of everyone.filter((x) => !onKilled.includes(x))) expect(m.disconnects).toEqual([]);

    for (const m of onKilled) {
      const [before, after] = m.welcomes as [Welcome, Welcome];
      expect(after.name).toBe(before.name);
      expect(after.user).toBe(before.user);
      expect(after.id).not.toBe(before.id);
      expect(after.chat.history.map((x) => x.text)).toEqual(said);
    }
    // The three seats of the dead replica expire and are swept: the count settles at 5 everywhere
    // and the broadcaster is told the old ids left.
    const deadIds = [...onKilled.map((m) => m.welcomes[0]!.id), quitterId];
    await waitFor(() => everyone.every((m) => lastPresence(m.presence)?.viewers === 5), 20_000);
    const ghostMs = Date.now() - killedAt;
    await waitFor(() => deadIds.every((id) => leftIds.some((l) => l.id === id)), 5000);
    for (const i of [0, 2]) expect(await metric(metricsUrls[i]!, 'streamroom_viewers_connected')).toBe(5);

    // Chat still reaches everybody, once.
    const before = everyone.map((m) => m.messages.length);
    expect(((await viewers[0]!.socket.emitWithAck('chat:send', { text: 'after' })) as Ack).ok).toBe(true);
    await waitFor(() => everyone.every((m, i) => m.messages.length === before[i]! + 1));
    console.log(`replica killed: clients back in ${reconnectMs} ms, ghost seats gone after ${ghostMs} ms`);
  }, 60_000);

  it('a replica that shuts down gracefully hands its clients over and frees their seats at once', async () => {
    const { urls } = await cluster(2);
    const stay = await member(urls[0]!, { role: 'viewer', name: 'Stay' });
    const moving = await member(urls[1]!, { role: 'viewer', name: 'Mover' });
    await waitFor(() => lastPresence(stay.presence)?.viewers === 2);
    const shutdown = nextEvent(moving.socket, 'server:shutdown');
    const notice = collect(stay.socket, 'server:shutdown');
    rooms[1]!.child.kill('SIGTERM');
    await shutdown;
    expect(await rooms[1]!.exited).toBe(0);
    // Only the leaving replica's sockets were told; the seat is freed without waiting for expiry.
    expect(notice).toEqual([]);
    await waitFor(() => lastPresence(stay.presence)?.viewers === 1, 3000);
    expect(rooms[1]!.output()).toContain('redis connected');
  }, 30_000);
});

describe('Redis availability', () => {
  it('starts live but not ready without Redis, becomes ready when Redis comes, survives a Redis restart', async () => {
    const port = await freePort();
    const room = await startRoom({ ROOM_REDIS_URL: `redis://:s3cret-pass@127.0.0.1:${port}/0` });
    rooms.push(room);
    const url = await room.listening;
    const metricsUrl = await room.metricsUrl;
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const notReady = await fetch(`${url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.text()).toMatch(/not ready: redis not connected/);
    expect(await refusal(connect(url, { role: 'viewer' }))).toBe('unavailable');
    expect(await metric(metricsUrl, 'streamroom_backplane_connected')).toBe(0);
    await waitFor(() => (room.output().match(/redis connection failed/g) ?? []).length >= 2, 5000);
    const failures = room
      .output()
      .split('\n')
      .filter((l) => l.includes('redis connection failed'))
      .map((l) => JSON.parse(l) as { level: string; attempt: number; retryInMs: number });
    expect(failures[0]).toMatchObject({ level: 'warn', attempt: 1 });
    expect(failures[1]!.attempt).toBe(2);
    expect(failures[1]!.retryInMs).toBeGreaterThan(failures[0]!.retryInMs);

    // Redis appears (requirepass matches the URL): the server gets ready by itself.
    redis = await startRedisWithPassword(port, 's3cret-pass');
    await waitReady(url, 10_000);
    const host = await connect(url, { role: 'broadcaster', key: BROADCASTER_KEY });
    expect(await host.socket.emitWithAck('stream:state', { live: true })).toEqual({ ok: true });
    const v = await connect(url, { role: 'viewer', name: 'Early' });
    expect(((await v.socket.emitWithAck('chat:send', { text: 'one' })) as Ack).ok).toBe(true);

    // Redis goes away: the replica keeps its sockets, answers cleanly, is not ready, stays alive.
    await redis.stop();
    await waitFor(async () => (await fetch(`${url}/readyz`)).status === 503, 5000);
    expect(await v.socket.emitWithAck('chat:send', { text: 'two' })).toEqual({
      ok: false,
      error: 'unavailable',
    });
    expect(v.socket.connected).toBe(true);
    expect(await metric(metricsUrl, 'streamroom_backplane_connected')).toBe(0);

    // And it comes back (empty): ready again, chat works, the replica registers its viewer and its
    // live broadcaster again, and the broadcaster is asked to check its connection to the viewer.
    const joined = collect<{ id: string }>(host.socket, 'viewer:joined');
    redis = await startRedisWithPassword(port, 's3cret-pass');
    await waitReady(url, 15_000);
    expect(((await v.socket.emitWithAck('chat:send', { text: 'three' })) as Ack).ok).toBe(true);
    await waitFor(async () => (await metric(metricsUrl, 'streamroom_viewers_connected')) === 1, 5000);
    expect(await metric(metricsUrl, 'streamroom_broadcasters_connected')).toBe(1);
    await waitFor(() => joined.some((j) => j.id === v.welcome['id']), 5000);
    const after = collect<Presence>(v.socket, 'presence');
    expect(await host.socket.emitWithAck('stream:state', { live: true })).toEqual({ ok: true });
    await waitFor(() => lastPresence(after)?.live === true && lastPresence(after)?.viewers === 1, 5000);
    expect(host.socket.connected).toBe(true);
    expect(room.child.exitCode).toBeNull();
    expect(room.output()).not.toContain('s3cret-pass');
  }, 60_000);
});

/** redis-server with a password, on a given port (the URL above carries the password). */
async function startRedisWithPassword(port: number, password: string): Promise<RedisProcess> {
  return startRedis(port, ['--requirepass', password]);
}
