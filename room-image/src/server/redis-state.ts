/**
 * Room state shared by the replicas of a room, in one Redis.
 *
 * Keys (all under the room's prefix P):
 *   P + viewers             sorted set: viewer socket id → expiry (ms, Redis clock)
 *   P + seats:<address>     sorted set: the viewer socket ids of one client address → expiry
 *   P + broadcaster         hash: id, exp (ms), live ('0' | '1')
 *   P + chat                list of message JSON, the last messages within the count and bytes
 *   P + chat:meta           hash: `bytes`, the size of those JSON strings (`tail`: see ADD_MESSAGE)
 *   P + rate:<user>         sorted set of the user's chat timestamps within the last minute
 *   P + newusers:<address>  sorted set of the times new user ids went to an address, last minute
 *   P + chat:stream         stream of chat batches, one entry per replica and tick (chat-relay.ts)
 *   P + sio                 the socket.io adapter's stream (its pub/sub channels start with P + sio)
 *
 * Every key expires a day after the last replica of the room stopped (see TICK); rate keys a
 * minute after their last use, an address's seats with its last seat.
 *
 * A replica owns the members whose sockets it holds and refreshes their expiry every tick. If it
 * dies, its members stop counting after `ttlMs` and the next sweep removes them, so the room never
 * keeps ghosts. `tick` also re-adds own members that expired while this replica could not reach
 * Redis, and reports what changed so the server can tell the broadcaster and the viewers.
 */
import { randomUUID } from 'node:crypto';
import * as lua from './redis-scripts.js';
import type { CommandClient } from './redis-scripts.js';
import type {
  ChatHistory,
  ChatMessage,
  HistoryLimits,
  NewChatMessage,
  Presence,
  RoomState,
  SeatLimits,
  SeatResult,
} from './state.js';

export interface TickResult {
  /** Own viewers that had expired (e.g. after a long Redis outage) and were seated again. */
  readded: string[];
  /** Other replicas' viewers whose seats expired and were removed. */
  swept: string[];
  /** This replica's broadcaster socket, registered again after it had expired (Redis outage). */
  restored: string | undefined;
  /** This replica's broadcaster socket whose place another broadcaster took meanwhile. */
  lost: string | undefined;
  /** An expired broadcaster (of a dead replica) was removed. */
  sweptBroadcaster: boolean;
}

/** A stored or relayed chat message (from another replica; an older one's lacks `seq`: 0). */
export function chatMessage(v: unknown): ChatMessage | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const m = v as Record<string, unknown>;
  const { id, name, role, text, ts } = m;
  const seq = m['seq'] ?? 0;
  if (
    typeof id === 'string' &&
    typeof name === 'string' &&
    (role === 'broadcaster' || role === 'viewer') &&
    typeof text === 'string' &&
    typeof ts === 'number' &&
    typeof seq === 'number'
  ) {
    return { id, name, role, text, ts, seq };
  }
  return undefined;
}

/** The socket.io adapter's stream (and pub/sub channel prefix) of the room with this prefix. */
export const streamName = (prefix: string): string => `${prefix}sio`;

/** The stream of chat batches between the replicas of the room with this prefix. */
export const chatStreamName = (prefix: string): string => `${prefix}chat:stream`;

/** About how many batches the chat stream keeps (for a replica that was briefly away). */
const CHAT_STREAM_LENGTH = 1000;

/** How long a room's keys outlive its last replica. */
const IDLE_ROOM_MS = 24 * 3600 * 1000;

const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];

const SEAT_RESULTS: Record<number, SeatResult> = { 0: 'room_full', 1: 'seated', 2: 'address_full' };

export class RedisRoomState implements RoomState {
  /** This replica's viewers: socket id → the key of its address's seats. */
  private readonly ownViewers = new Map<string, string>();
  private own: { id: string; live: boolean } | undefined;
  /** The last chat append, which the next one waits for. */
  private publishing: Promise<unknown> = Promise.resolve();
  private readonly keys: {
    viewers: string;
    broadcaster: string;
    chat: string;
    chatMeta: string;
    chatStream: string;
    stream: string;
  };

  constructor(
    private readonly client: CommandClient,
    private readonly prefix: string,
    /** How long a member counts without a refresh from its replica. */
    readonly ttlMs: number,
  ) {
    this.keys = {
      viewers: `${prefix}viewers`,
      broadcaster: `${prefix}broadcaster`,
      chat: `${prefix}chat`,
      chatMeta: `${prefix}chat:meta`,
      chatStream: chatStreamName(prefix),
      stream: streamName(prefix),
    };
  }

  async tryAddViewer(id: string, address: string, limits: SeatLimits): Promise<SeatResult> {
    const seats = `${this.prefix}seats:${address}`;
    const r = await lua.SEAT.run(
      this.client,
      [this.keys.viewers, seats],
      [id, limits.max, this.ttlMs, limits.perAddress],
    );
    const result = SEAT_RESULTS[Number(r)];
    if (result === undefined) throw new Error(`unexpected answer of the seat script: ${String(r)}`);
    if (result === 'seated') this.ownViewers.set(id, seats);
    return result;
  }
  async removeViewer(id: string): Promise<void> {
    const seats = this.ownViewers.get(id);
    // Forget it first, so that no later heartbeat seats it again.
    this.ownViewers.delete(id);
    if (seats === undefined) await this.client.sendCommand(['ZREM', this.keys.viewers, id]);
    else await lua.UNSEAT.run(this.client, [this.keys.viewers, seats], [id]);
  }
  async hasViewer(id: string): Promise<boolean> {
    return (await lua.HAS_VIEWER.run(this.client, [this.keys.viewers], [id])) === 1;
  }
  async viewerIds(): Promise<string[]> {
    return strings(await lua.VIEWER_IDS.run(this.client, [this.keys.viewers], []));
  }
  async setBroadcaster(id: string): Promise<string | undefined> {
    const prev = await lua.SET_BROADCASTER.run(this.client, [this.keys.broadcaster], [id, this.ttlMs]);
    this.own = { id, live: false };
    return typeof prev === 'string' && prev !== '' ? prev : undefined;
  }
  async clearBroadcaster(id: string): Promise<boolean> {
    if (this.own?.id === id) this.own = undefined;
    return (await lua.CLEAR_BROADCASTER.run(this.client, [this.keys.broadcaster], [id])) === 1;
  }
  async broadcaster(): Promise<string | undefined> {
    const id = await lua.BROADCASTER.run(this.client, [this.keys.broadcaster], []);
    return typeof id === 'string' && id !== '' ? id : undefined;
  }
  async setLive(id: string, live: boolean): Promise<boolean> {
    const ok = (await lua.SET_LIVE.run(this.client, [this.keys.broadcaster], [id, live ? 1 : 0])) === 1;
    if (ok && this.own?.id === id) this.own.live = live;
    return ok;
  }
  async presence(): Promise<Presence> {
    const r = await lua.PRESENCE.run(this.client, [this.keys.viewers, this.keys.broadcaster], []);
    const [viewers, id, live] = Array.isArray(r) ? r : [];
    return {
      viewers: typeof viewers === 'number' ? viewers : 0,
      broadcasterOnline: typeof id === 'string' && id !== '',
      live: live === 1,
    };
  }
  async addMessage(message: NewChatMessage, limits: HistoryLimits): Promise<ChatMessage> {
    const { id, name, role, text, ts } = message; // exactly these fields: the script appends `seq`
    const seq = await lua.ADD_MESSAGE.run(
      this.client,
      [this.keys.chat, this.keys.chatMeta],
      [JSON.stringify({ id, name, role, text, ts }), limits.size, limits.bytes],
    );
    if (typeof seq !== 'number') throw new Error(`unexpected answer of the chat script: ${String(seq)}`);
    return { id, name, role, text, ts, seq };
  }
  async history(): Promise<ChatHistory> {
    const r = await lua.HISTORY.run(this.client, [this.keys.chat, this.keys.chatMeta], []);
    const [seq, raw] = Array.isArray(r) ? r : [];
    const messages: ChatMessage[] = [];
    for (const item of strings(raw)) {
      try {
        const m = chatMessage(JSON.parse(item));
        if (m) messages.push(m);
      } catch {
        // a foreign or damaged entry: skip it
      }
    }
    return { messages, seq: typeof seq === 'number' ? seq : 0 };
  }
  /**
   * Appends one tick's chat of this replica (`origin`) to the room's chat stream, after the ticks
   * before it: two appends in flight could land swapped (the first one's EVALSHA may come back
   * NOSCRIPT and go again as EVAL after the second), and the other replicas read the stream in order.
   */
  publishChat(origin: string, messages: ChatMessage[]): Promise<void> {
    const append = () =>
      lua.PUBLISH_CHAT.run(
        this.client,
        [this.keys.chatStream],
        [origin, JSON.stringify(messages), IDLE_ROOM_MS, CHAT_STREAM_LENGTH],
      );
    const done = this.publishing.then(append, append).then(() => undefined);
    this.publishing = done.catch(() => undefined);
    return done;
  }
  async takeChatToken(userId: string, perMinute: number): Promise<boolean> {
    const key = `${this.prefix}rate:${userId}`;
    return (await lua.RATE_TOKEN.run(this.client, [key], [perMinute, randomUUID()])) === 1;
  }
  async takeNewUserToken(address: string, perMinute: number): Promise<boolean> {
    const key = `${this.prefix}newusers:${address}`;
    return (await lua.RATE_TOKEN.run(this.client, [key], [perMinute, randomUUID()])) === 1;
  }

  /** Refreshes this replica's members; with `sweep`, also removes everybody's expired ones. */
  async tick(sweep: boolean): Promise<TickResult> {
    const own = this.own;
    const { viewers, broadcaster, chat, chatMeta, stream } = this.keys;
    const r = await lua.TICK.run(
      this.client,
      [viewers, broadcaster, chat, chatMeta, stream, ...this.ownViewers.values()],
      [this.ttlMs, sweep ? 1 : 0, own?.id ?? '', own?.live ? 1 : 0, IDLE_ROOM_MS, ...this.ownViewers.keys()],
    );
    const [readded, swept, ownState, sweptBroadcaster] = Array.isArray(r) ? r : [];
    const lost = ownState === 'lost' ? own?.id : undefined;
    if (lost !== undefined && this.own === own) this.own = undefined;
    return {
      readded: strings(readded),
      swept: strings(swept),
      restored: ownState === 'restored' ? own?.id : undefined,
      lost,
      sweptBroadcaster: sweptBroadcaster === 1,
    };
  }

  /** Gives up this replica's members at once (shutdown), instead of letting them expire. */
  async release(): Promise<void> {
    const viewers = [...this.ownViewers];
    this.ownViewers.clear();
    if (viewers.length > 0) {
      await this.client.sendCommand(['ZREM', this.keys.viewers, ...viewers.map(([id]) => id)]);
      const byAddress = new Map<string, string[]>();
      for (const [id, seats] of viewers) byAddress.set(seats, [...(byAddress.get(seats) ?? []), id]);
      for (const [seats, ids] of byAddress) await this.client.sendCommand(['ZREM', seats, ...ids]);
    }
    const own = this.own;
    this.own = undefined;
    if (own) await lua.CLEAR_BROADCASTER.run(this.client, [this.keys.broadcaster], [own.id]);
  }
}
