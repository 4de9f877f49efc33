/**
 * The shared state's limits in a real Redis, with two RedisRoomStates standing for two replicas of
 * one room: chat history bounded by bytes, viewer seats per client address and new user ids per
 * address, all room-wide.
 */
import { createClient } from '@redis/client';
import { chatStreamName, RedisRoomState } from '../src/server/redis-state.js';
import { messageBytes, type ChatMessage, type NewChatMessage } from '../src/server/state.js';
import { sleep } from './helpers.js';
import { startRedis, type RedisProcess } from './processes.js';

let redis: RedisProcess;
const clients: { close(): Promise<unknown> }[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});

let room = 0;
/** Two replicas of a new room; members count for `ttlMs` without a heartbeat. */
async function replicas(ttlMs = 8000): Promise<[RedisRoomState, RedisRoomState, string]> {
  const prefix = `test:${++room}:`;
  const make = async (): Promise<RedisRoomState> => {
    const client = createClient({ url: redis.url });
    clients.push(client);
    await client.connect();
    return new RedisRoomState(client, prefix, ttlMs);
  };
  return [await make(), await make(), prefix];
}

const message = (i: number, characters: number): NewChatMessage => ({
  id: `m${i}`,
  name: 'Ann',
  role: 'viewer',
  text: '\u{1D11E}'.repeat(characters),
  ts: 1_700_000_000_000 + i,
});

describe('RedisRoomState limits', () => {
  it('keeps the newest messages that fit in the byte bound, whichever replica adds them', async () => {
    const [a, b, prefix] = await replicas();
    const limits = { size: 1000, bytes: 10_000 };
    // As stored: with the `seq` the state gave each (its place in the room's order).
    const sent: (ChatMessage | NewChatMessage)[] = [];
    for (let i = 0; i < 20; i++) {
      const m = message(i, 100 + 50 * (i % 5)); // 400 to 1200 bytes of text
      const stored = await (i % 2 ? a : b).addMessage(m, limits);
      expect(stored).toEqual({ ...m, seq: i + 1 });
      sent.push(stored);
    }
    const expected = (): string[] => {
      let bytes = 0;
      const kept: string[] = [];
      for (const m of [...sent].reverse()) {
        if ((bytes += messageBytes(m)) > limits.bytes) break;
        kept.unshift(m.id);
      }
      return kept;
    };
    const ids = async (r: RedisRoomState): Promise<string[]> => (await r.history()).messages.map((m) => m.id);
    expect(await ids(a)).toEqual(expected());
    expect(await ids(b)).toEqual(expected());
    expect((await a.history()).seq).toBe(20);

    // The count is kept beside the list; without it (an idle room's key expired, an older replica
    // wrote the list) it is counted again from the list.
    const admin = createClient({ url: redis.url });
    clients.push(admin);
    await admin.connect();
    const storedBytes = async (): Promise<number> =>
      (await admin.lRange(`${prefix}chat`, 0, -1)).reduce((sum, m) => sum + Buffer.byteLength(m), 0);
    expect(Number(await admin.hGet(`${prefix}chat:meta`, 'bytes'))).toBe(await storedBytes());
    await admin.del(`${prefix}chat:meta`);
    sent.push(await a.addMessage(message(20, 1000), limits));
    expect(await ids(b)).toEqual(expected());
    // A replica of the previous version appends without counting (and without `seq`): the next
    // count notices.
    sent.push(message(21, 1200));
    await admin.rPush(`${prefix}chat`, JSON.stringify(sent.at(-1)));
    sent.push(await b.addMessage(message(22, 1200), limits));
    expect(await ids(a)).toEqual(expected());
    expect(Number(await admin.hGet(`${prefix}chat:meta`, 'bytes'))).toBe(await storedBytes());

    // The count bound still holds, and a message bigger than the whole bound is not kept, but
    // still gets its place in the room's order, which outlives the emptied history.
    expect(await b.addMessage(message(23, 10), { size: 2, bytes: 10_000 })).toMatchObject({ seq: 3 });
    expect(await ids(a)).toEqual(['m22', 'm23']);
    expect(await b.addMessage(message(24, 3000), limits)).toMatchObject({ seq: 4 });
    expect(await a.history()).toEqual({ messages: [], seq: 4 });
    expect(await admin.exists([`${prefix}chat`])).toBe(0);
    expect(await admin.hGetAll(`${prefix}chat:meta`)).toEqual({ seq: '4' });
  });

  it('counts the viewer seats of an address room-wide, refreshed by the heartbeat and freed on leave', async () => {
    const [a, b] = await replicas(600);
    const limits = { max: 0, perAddress: 2 };
    expect(await a.tryAddViewer('s1', '203.0.113.1', limits)).toBe('seated');
    expect(await b.tryAddViewer('s2', '203.0.113.1', limits)).toBe('seated');
    expect(await b.tryAddViewer('s3', '203.0.113.1', limits)).toBe('address_full');
    expect(await a.tryAddViewer('s3', '203.0.113.2', limits)).toBe('seated');
    expect(await a.tryAddViewer('s4', '203.0.113.2', { max: 3, perAddress: 2 })).toBe('room_full');

    // Heartbeats keep the seats (and their address's count) past the member TTL.
    for (let i = 0; i < 4; i++) {
      await Promise.all([a.tick(false), b.tick(false)]);
      await sleep(250);
    }
    expect(await b.tryAddViewer('s5', '203.0.113.1', limits)).toBe('address_full');
    await a.removeViewer('s1');
    expect(await b.tryAddViewer('s5', '203.0.113.1', limits)).toBe('seated');

    // Replica A dies (no more heartbeats): its seats stop counting for their address too.
    expect(await b.tryAddViewer('s6', '203.0.113.2', limits)).toBe('seated');
    expect(await b.tryAddViewer('s7', '203.0.113.2', limits)).toBe('address_full');
    for (let i = 0; i < 4; i++) {
      await b.tick(false);
      await sleep(250);
    }
    expect(await b.tryAddViewer('s7', '203.0.113.2', limits)).toBe('seated');
    // A graceful shutdown frees them at once.
    await b.release();
    for (const id of ['s8', 's9']) expect(await a.tryAddViewer(id, '203.0.113.2', limits)).toBe('seated');
  });

  it('limits the new user ids of an address room-wide', async () => {
    const [a, b] = await replicas();
    expect(await a.takeNewUserToken('203.0.113.1', 2)).toBe(true);
    expect(await b.takeNewUserToken('203.0.113.1', 2)).toBe(true);
    expect(await a.takeNewUserToken('203.0.113.1', 2)).toBe(false);
    expect(await b.takeNewUserToken('203.0.113.2', 2)).toBe(true);
  });
});

describe('RedisRoomState chat stream', () => {
  it("appends a replica's ticks in the order it published them, even when the first answer is slow", async () => {
    const client = createClient({ url: redis.url });
    clients.push(client);
    await client.connect();
    const prefix = `test:${++room}:`;
    // the first command comes back late (as a NOSCRIPT answer and its EVAL retry would)
    let first = true;
    const slowFirst = {
      async sendCommand(args: string[]): Promise<unknown> {
        if (first) {
          first = false;
          await sleep(200);
        }
        return client.sendCommand(args);
      },
    };
    const state = new RedisRoomState(slowFirst, prefix, 8000);
    const tick = (i: number): ChatMessage[] => [{ ...message(i, 1), seq: i }];
    await Promise.all([state.publishChat('r1', tick(1)), state.publishChat('r1', tick(2))]);
    const entries = (await client.sendCommand(['XRANGE', chatStreamName(prefix), '-', '+'])) as [
      string,
      string[],
    ][];
    const ids = entries.map(
      ([, fields]) => (JSON.parse(fields[fields.indexOf('messages') + 1]!) as ChatMessage[])[0]!.id,
    );
    expect(ids).toEqual(['m1', 'm2']);
  });
});
