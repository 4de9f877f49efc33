/**
 * The chat between replicas (chat-relay.ts) against a real Redis: a relay knows where it starts in
 * the room's chat stream only once Redis answers, and from then on it hands over every entry of
 * the other replicas and none of its own. A replica is not ready before that point (server.ts), so
 * no client of it can miss a message another replica publishes in between.
 */
import { createClient } from '@redis/client';
import type { ChatMessage } from '../src/protocol.js';
import { startChatRelay, type ChatRelay } from '../src/server/chat-relay.js';
import { createLogger } from '../src/server/log.js';
import { chatStreamName, RedisRoomState } from '../src/server/redis-state.js';
import { sleep, waitFor } from './helpers.js';
import { freePort, startRedis, type RedisProcess } from './processes.js';

const PREFIX = 'streamroom:test:';
const message = (text: string, seq: number): ChatMessage => ({
  id: 'u1',
  name: 'Ann',
  role: 'viewer',
  text,
  ts: 1_700_000_000_000 + seq,
  seq,
});

let redis: RedisProcess | undefined;
let relay: ChatRelay | undefined;
let publisher: ReturnType<typeof createClient> | undefined;

afterEach(async () => {
  await relay?.close();
  if (publisher?.isOpen) await publisher.close();
  await redis?.stop();
  relay = publisher = redis = undefined;
});

it('is positioned only once Redis answers, then relays every later entry of the other replicas', async () => {
  const port = await freePort();
  const received: ChatMessage[] = [];
  relay = startChatRelay({
    url: `redis://127.0.0.1:${port}`,
    stream: chatStreamName(PREFIX),
    log: createLogger('error', () => undefined),
    onBatch: (batch) => received.push(...batch),
  });
  await sleep(500);
  expect(relay.positioned()).toBe(false); // no Redis yet: the replica must not take clients

  redis = await startRedis(port);
  publisher = createClient({ url: redis.url });
  await publisher.connect();
  const other = new RedisRoomState(publisher, PREFIX, 8000);
  await other.publishChat('other-replica', [message('before', 1)]);
  await waitFor(() => relay!.positioned(), 10_000);

  await other.publishChat('other-replica', [message('after 1', 2), message('after 2', 3)]);
  await other.publishChat(relay.origin, [message('own', 4)]);
  await other.publishChat('other-replica', [message('after 3', 5)]);
  await waitFor(() => received.length >= 3, 5000);
  await sleep(200);
  // 'before' may or may not be read (it was written before the relay knew where to start); the
  // entries after that point all arrive, in order, and the relay's own entry is skipped
  expect(received.map((m) => m.text).filter((t) => t !== 'before')).toEqual([
    'after 1',
    'after 2',
    'after 3',
  ]);
}, 30_000);
