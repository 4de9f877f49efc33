/**
 * Batched chat fan-out (chat-fanout.ts), with real socket.io clients: the messages of a tick reach
 * every client as one `chat:batch` frame, in order; a client joining mid-tick gets its history and
 * then exactly the messages it lacks; across replicas (real Redis, separate processes) each replica
 * publishes one batch per tick and everybody gets everything once, in order per sender; a client
 * that stops reading is dropped and, back, gets the history.
 */
import { execFileSync } from 'node:child_process';
import type { Socket as TcpSocket } from 'node:net';
import type { Socket } from 'socket.io-client';
import { MAX_FRAMES_PER_SECOND, MAX_TICK_MS, tickFor } from '../src/server/chat-fanout.js';
import type { RunningServer } from '../src/server/server.js';
import { closeAllClients, collectChat, connect, metric, sleep, start, waitFor } from './helpers.js';
import { startRedis, startReplicas, type RedisProcess, type RoomProcess } from './processes.js';

type Message = { id: string; name: string; text: string; seq: number };
type Ack = { ok: boolean; error?: string; message?: Message };
type ChatWelcome = { history: Message[] };

let server: RunningServer | undefined;
let redis: RedisProcess | undefined;
let rooms: RoomProcess[] = [];

afterEach(async () => {
  closeAllClients();
  await server?.close();
  server = undefined;
  await Promise.all(rooms.map((r) => r.crash()));
  rooms = [];
  await redis?.stop();
  redis = undefined;
});

/** Many clients from 127.0.0.1, each its own user, chatting as fast as the room lets them. */
const CROWD = {
  ROOM_MAX_VIEWERS_PER_ADDRESS: '0',
  ROOM_NEW_USERS_PER_ADDRESS_PER_MINUTE: '0',
  CHAT_MESSAGES_PER_MINUTE: '6000',
  CHAT_HISTORY_SIZE: '1000',
};

interface Listener {
  socket: Socket;
  history: Message[];
  messages: Message[];
  batches: Message[][];
}

/** Connects with the chat collected from the very first frame (it may follow the welcome at once). */
async function listener(url: string, name: string): Promise<Listener> {
  const batches: Message[][] = [];
  const messages: Message[] = [];
  const { socket, welcome } = await connect(
    url,
    { role: 'viewer', name },
    {},
    {
      'chat:batch': (batch: Message[]) => {
        batches.push(batch);
        messages.push(...batch);
      },
    },
  );
  return { socket, history: (welcome['chat'] as ChatWelcome).history, messages, batches };
}

const send = async (socket: Socket, text: string): Promise<Message> => {
  const ack = (await socket.emitWithAck('chat:send', { text })) as Ack;
  if (!ack.ok || !ack.message) throw new Error(`refused: ${ack.error}`);
  return ack.message;
};

const ids = (messages: { id: string }[]): string[] => messages.map((m) => m.id);
const texts = (messages: { text: string }[]): string[] => messages.map((m) => m.text);

/** Every client got every message once, and each sender's messages in the order sent. */
function expectAllInOrder(received: Message[], senders: number, perSender: number): void {
  expect(received).toHaveLength(senders * perSender);
  expect(new Set(ids(received)).size).toBe(received.length);
  for (let s = 0; s < senders; s++) {
    const own = texts(received).filter((t) => t.startsWith(`s${s}.`));
    expect(own).toEqual(Array.from({ length: perSender }, (_, i) => `s${s}.${i}`));
  }
}

describe('the tick', () => {
  it('is CHAT_BATCH_MS in a small room and grows in a large one to bound the frames written', () => {
    expect(tickFor(0, 50)).toBe(50);
    expect(tickFor(200, 50)).toBe(50);
    expect(tickFor(500, 50)).toBe(125);
    expect(tickFor(500, 200)).toBe(200);
    for (const sockets of [300, 500, 800, 1000]) {
      expect((sockets * 1000) / tickFor(sockets, 50)).toBeLessThanOrEqual(MAX_FRAMES_PER_SECOND);
    }
    expect(tickFor(5000, 50)).toBe(MAX_TICK_MS);
  });
});

describe('batched chat, one replica', () => {
  it('delivers a burst from many senders in one order to everybody, a few frames each', async () => {
    server = await start(CROWD, { flood: { burst: 1000, perSecond: 1000, disconnectAfter: 10_000 } });
    const senders = 30;
    const perSender = 20;
    const clients: Listener[] = [];
    for (let i = 0; i < senders + 3; i++) clients.push(await listener(server.url, `Client ${i}`));
    // Everybody at once, without waiting for acks: 600 messages interleaved by the server.
    const acks = clients
      .slice(0, senders)
      .flatMap((c, s) =>
        Array.from({ length: perSender }, (_, i) =>
          c.socket.emitWithAck('chat:send', { text: `s${s}.${i}` }),
        ),
      );
    expect(((await Promise.all(acks)) as Ack[]).every((a) => a.ok)).toBe(true);
    await waitFor(() => clients.every((c) => c.messages.length >= senders * perSender), 10_000);
    await sleep(200); // nothing more (no duplicates) comes
    const order = ids(clients[0]!.messages);
    for (const c of clients) {
      expectAllInOrder(c.messages, senders, perSender);
      expect(ids(c.messages)).toEqual(order); // the same order everywhere: the room's
      const seqs = c.messages.map((m) => m.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      // Batched: one frame per tick, not per message.
      expect(c.batches.length).toBeLessThanOrEqual((senders * perSender) / 10);
    }
    console.log(`600 messages reached each client in ${clients[0]!.batches.length} frames`);
  }, 30_000);

  it('gives a client that joins mid-tick its history and then exactly the later messages', async () => {
    server = await start({ ...CROWD, CHAT_BATCH_MS: '1000' });
    const sender = await listener(server.url, 'Sender');
    const observer = await listener(server.url, 'Observer');
    const m1 = await send(sender.socket, 'one');
    const m2 = await send(sender.socket, 'two');
    const joiner = await listener(server.url, 'Joiner'); // m1 and m2 still wait for the tick
    const m3 = await send(sender.socket, 'three');
    const m4 = await send(sender.socket, 'four');
    await waitFor(() => observer.messages.length === 4 && joiner.messages.length >= 2, 5000);
    // It was mid-tick: the observer got the messages from before and after the join in one frame.
    expect(observer.batches.map(ids)).toEqual([ids([m1, m2, m3, m4])]);
    expect(ids(joiner.history)).toEqual(ids([m1, m2]));
    expect(ids(joiner.messages)).toEqual(ids([m3, m4]));
    // And from then on everything, once.
    const m5 = await send(observer.socket, 'five');
    await waitFor(() => joiner.messages.length >= 3 && sender.messages.length >= 5, 5000);
    await sleep(300);
    expect(ids(joiner.messages)).toEqual(ids([m3, m4, m5]));
    expect(ids(sender.messages)).toEqual(ids([m1, m2, m3, m4, m5]));
  }, 20_000);

  it('drops a client that stops reading; it reconnects and gets the history', async () => {
    server = await start(
      {
        ...CROWD,
        CHAT_MAX_MESSAGE_LENGTH: '5000',
        CHAT_HISTORY_SIZE: '20',
        CHAT_HISTORY_MAX_BYTES: '1048576',
      },
      { flood: { burst: 10_000, perSecond: 10_000, disconnectAfter: 100_000 } },
    );
    const welcomes: ChatWelcome[] = [];
    const slow = await connect(
      server.url,
      { role: 'viewer', name: 'Slow' },
      { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200 },
      { welcome: (w: { chat: ChatWelcome }) => welcomes.push(w.chat) },
    );
    const reader = await listener(server.url, 'Reader');
    // The slow client's TCP connection stops being read (as a stuck tab's would).
    const tcp = (slow.socket.io.engine.transport as unknown as { ws: { _socket: TcpSocket } }).ws._socket;
    tcp.pause();
    const sockets = (): number => server!.io.of('/').sockets.size;
    const text = '\u{1D11E}'.repeat(5000); // about 20 KB a message
    const sent: Message[] = [];
    const deadline = Date.now() + 20_000;
    while (sockets() === 2 && Date.now() < deadline && sent.length < 2000)
      sent.push(await send(reader.socket, text));
    expect(sockets()).toBe(1);
    console.log(`the slow client was dropped after ${sent.length} messages of 20 KB`);
    expect(await metric(server.metricsUrl, 'streamroom_slow_clients_disconnected_total')).toBe(1);
    await waitFor(() => reader.messages.length === sent.length, 10_000);
    expect(ids(reader.messages)).toEqual(ids(sent)); // the readers got everything
    // Reading again, it finds the connection gone, reconnects, and the welcome has the history.
    tcp.resume();
    await waitFor(() => welcomes.length === 2 && slow.socket.connected, 10_000);
    expect(ids(welcomes[1]!.history)).toEqual(ids(sent.slice(-20)));
    const after = await send(reader.socket, 'welcome back');
    await waitFor(() => reader.messages.length === sent.length + 1, 5000);
    const back = collectChat<Message>(slow.socket);
    const next = await send(reader.socket, 'and on');
    await waitFor(() => back.length >= 1, 5000);
    expect(ids(back)).toEqual(ids([next]));
    expect(after.seq).toBe(next.seq - 1);
  }, 60_000);
});

describe('batched chat, three replicas sharing one Redis', () => {
  const redisCli = (...args: string[]): string =>
    execFileSync('/usr/bin/redis-cli', ['-p', String(redis!.port), ...args], { encoding: 'utf8' }).trim();
  const STREAM = 'streamroom:default:test-room:chat:stream';
  /** Entries ever added to the room's chat stream (one per publish of any replica). */
  const published = (): number => {
    const info = redisCli('XINFO', 'STREAM', STREAM).split('\n');
    const at = info.indexOf('entries-added');
    return at < 0 ? 0 : Number(info[at + 1]); // no stream yet: nothing published
  };

  it('publish one batch per tick per replica; every client gets everything, in order per sender', async () => {
    redis = await startRedis();
    const started = await startReplicas(3, redis.url, { ...CROWD, CHAT_BATCH_MS: '200' });
    rooms = started.rooms;
    const clients: Listener[] = [];
    for (let i = 0; i < 24; i++) clients.push(await listener(started.urls[i % 3]!, `Client ${i}`));
    const senders = 18; // six on each replica
    const perSender = 15; // within the flood guard's burst
    await sleep(500);
    const before = published();
    const acks = clients
      .slice(0, senders)
      .flatMap((c, s) =>
        Array.from({ length: perSender }, (_, i) =>
          c.socket.emitWithAck('chat:send', { text: `s${s}.${i}` }),
        ),
      );
    expect(((await Promise.all(acks)) as Ack[]).every((a) => a.ok)).toBe(true);
    await waitFor(() => clients.every((c) => c.messages.length >= senders * perSender), 15_000);
    await sleep(500);
    for (const c of clients) {
      expectAllInOrder(c.messages, senders, perSender);
      expect(c.batches.length).toBeLessThanOrEqual((senders * perSender) / 10);
    }
    const publishes = published() - before;
    console.log(
      `${senders * perSender} messages: ${publishes} publishes on the stream, ` +
        `${clients[0]!.batches.length} frames to a client`,
    );
    expect(publishes).toBeLessThanOrEqual((senders * perSender) / 5);
  }, 60_000);

  it('give clients joining while others chat exactly their history plus the rest, across replicas', async () => {
    redis = await startRedis();
    const started = await startReplicas(3, redis.url, CROWD);
    rooms = started.rooms;
    const [u0, u1, u2] = started.urls as [string, string, string];

    // Mid-tick, deterministically: replica 0 holds m1 and m2 for a long tick while a client joins
    // on replica 1 (its history has them); they reach replica 1 after that client's welcome.
    // (A separate room: its own replicas with a tick of a second.)
    const slowTick = await startReplicas(2, redis.url, {
      ...CROWD,
      ROOM_NAME: 'slow-tick',
      CHAT_BATCH_MS: '1000',
    });
    rooms.push(...slowTick.rooms);
    const [s0, s1] = slowTick.urls as [string, string];
    const sender = await listener(s0, 'Sender');
    const m1 = await send(sender.socket, 'one');
    const m2 = await send(sender.socket, 'two');
    const joiner = await listener(s1, 'Joiner');
    const m3 = await send(sender.socket, 'three');
    await waitFor(() => sender.messages.length === 3 && joiner.messages.length >= 1, 5000);
    await sleep(2500); // the other replica's batch (with m1, m2) has long arrived
    expect(ids(sender.batches[0]!)).toEqual(ids([m1, m2, m3])); // it was mid-tick
    expect(ids(joiner.history)).toEqual(ids([m1, m2]));
    expect(ids(joiner.messages)).toEqual(ids([m3]));

    // Under way: four senders on replicas 0 and 2 chat steadily while twenty clients join on
    // replica 1, one every 60 ms. Each must get all messages: those up to its join in its
    // history, the others live, none twice.
    const chatters = await Promise.all([u0, u0, u2, u2].map((u, i) => listener(u, `Chatter ${i}`)));
    const sent: Message[] = [];
    let chatting = true;
    const chat = chatters.map(async (c, s) => {
      for (let i = 0; chatting; i++) {
        sent.push(await send(c.socket, `s${s}.${i}`));
        await sleep(70);
      }
    });
    const joiners: Listener[] = [];
    for (let i = 0; i < 20; i++) {
      joiners.push(await listener(u1, `Joiner ${i}`));
      await sleep(60);
    }
    chatting = false;
    await Promise.all(chat);
    const all = new Set(ids(sent));
    const count = (j: Listener): number => j.history.filter((m) => all.has(m.id)).length + j.messages.length;
    await waitFor(() => joiners.every((j) => count(j) >= sent.length), 10_000);
    await sleep(500);
    let live = 0;
    for (const j of joiners) {
      const history = j.history.filter((m) => all.has(m.id));
      const got = [...ids(history), ...ids(j.messages)];
      expect(new Set(got).size).toBe(got.length); // nothing twice
      expect(new Set(got)).toEqual(all); // nothing missing
      // The history is what came before the join: the messages with the lowest `seq`.
      const cutoff = Math.max(0, ...history.map((m) => m.seq));
      expect(j.messages.every((m) => m.seq > cutoff)).toBe(true);
      live += j.messages.length;
    }
    console.log(`${sent.length} messages; the joiners got ${live} of theirs live, the rest in their history`);
    expect(live).toBeGreaterThan(0);
    expect(sent.length).toBeGreaterThan(40);
  }, 60_000);
});
