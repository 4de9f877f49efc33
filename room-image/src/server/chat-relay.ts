/**
 * The chat between the replicas of a room: each replica appends its chat of a tick to the room's
 * chat stream as one entry (RedisRoomState.publishChat), and reads the others' entries in the
 * stream's order on a connection of its own (XREAD BLOCK). Reading goes on from the last entry
 * read, also after a lost connection, so a replica that was briefly away misses nothing the
 * stream still holds. (The socket.io adapter's server-side emits would go over pub/sub, which
 * forgets what a disconnected replica missed.)
 */
import { randomUUID } from 'node:crypto';
import { createClient } from '@redis/client';
import type { ChatMessage } from '../protocol.js';
import { backoffMs } from './backplane.js';
import type { Log } from './log.js';
import { chatMessage } from './redis-state.js';

export interface ChatRelay {
  /** This replica's id in the stream's entries (its own entries are skipped when read). */
  readonly origin: string;
  /**
   * Whether the relay knows where in the stream it starts. Until then a message another replica
   * publishes could fall before that point and never reach this replica's clients, so the replica
   * takes no clients meanwhile (it is not ready).
   */
  positioned(): boolean;
  close(): Promise<void>;
}

const BLOCK_MS = 2000;

/** Reads the stream's entries from other replicas and hands their (checked) messages to `onBatch`. */
export function startChatRelay(options: {
  url: string;
  stream: string;
  log: Log;
  onBatch: (messages: ChatMessage[]) => void;
}): ChatRelay {
  const { url, stream, log, onBatch } = options;
  const origin = randomUUID();
  const client = createClient({
    url,
    socket: { connectTimeout: 3000, reconnectStrategy: (retries) => backoffMs(retries) },
  });
  client.on('error', () => undefined); // the backplane logs the connection's troubles
  let running = true;
  let last: string | undefined; // the id of the last entry read

  const read = async (): Promise<void> => {
    let failures = 0;
    while (running) {
      try {
        if (!client.isReady) await new Promise((r) => setTimeout(r, 200));
        if (!client.isReady) continue;
        if (last === undefined) {
          // From now on: the newest entry so far (or none: from the start).
          const newest = (await client.sendCommand(['XREVRANGE', stream, '+', '-', 'COUNT', '1'])) as unknown;
          last = Array.isArray(newest) && Array.isArray(newest[0]) ? String(newest[0][0]) : '0-0';
        }
        const reply = (await client.sendCommand([
          'XREAD',
          'COUNT',
          '100',
          'BLOCK',
          String(BLOCK_MS),
          'STREAMS',
          stream,
          last,
        ])) as unknown;
        failures = 0;
        const read = entries(reply);
        for (const [id, fields] of read) {
          last = id;
          const batch = parse(fields, origin);
          if (batch.length > 0) onBatch(batch);
        }
        // An answer without entries it could read: never ask again at once.
        if (reply !== null && read.length === 0) throw new Error('unexpected XREAD answer');
      } catch (err) {
        if (!running) return;
        if (failures++ === 0) log.warn({ err }, 'reading the chat stream failed');
        await new Promise((r) => setTimeout(r, backoffMs(failures)));
      }
    }
  };

  client.connect().catch(() => undefined); // retries by itself
  const reading = read();
  return {
    origin,
    positioned: () => last !== undefined,
    async close() {
      running = false;
      client.destroy(); // also ends a blocked XREAD
      await reading;
    },
  };
}

/** The [id, fields] of an XREAD reply of one stream (RESP3: a map by stream name; RESP2: pairs). */
function entries(reply: unknown): [string, unknown[]][] {
  let list: unknown;
  if (Array.isArray(reply)) list = Array.isArray(reply[0]) ? reply[0][1] : undefined;
  else if (reply instanceof Map) list = [...reply.values()][0];
  else if (typeof reply === 'object' && reply !== null) list = Object.values(reply)[0];
  if (!Array.isArray(list)) return [];
  return list
    .filter((e): e is [unknown, unknown[]] => Array.isArray(e) && Array.isArray(e[1]))
    .map((e) => [String(e[0]), e[1]]);
}

/** The checked messages of an entry from another replica (none from this one, or from garbage). */
function parse(fields: unknown[], self: string): ChatMessage[] {
  const value = (name: string): unknown => fields[fields.indexOf(name) + 1];
  if (fields.indexOf('origin') < 0 || value('origin') === self) return [];
  try {
    const list: unknown = JSON.parse(String(value('messages')));
    if (!Array.isArray(list)) return [];
    return list.map(chatMessage).filter((m): m is ChatMessage => m !== undefined);
  } catch {
    return [];
  }
}
