/**
 * Room state behind a small asynchronous interface. `MemoryRoomState` serves a single replica;
 * `RedisRoomState` (redis-state.ts) shares the same state between the replicas of a room.
 */

import type { ChatMessage, Presence } from '../protocol.js';

export type { ChatMessage, Presence };

/** Seat limits (0 = unlimited): the room's, and those of one client address, both room-wide. */
export interface SeatLimits {
  max: number;
  perAddress: number;
}

export type SeatResult = 'seated' | 'room_full' | 'address_full';

/** The history keeps the last `size` messages that fit in `bytes` (UTF-8 of their JSON). */
export interface HistoryLimits {
  size: number;
  bytes: number;
}

/** A message before the state gave it its place (`seq`) in the room's order. */
export type NewChatMessage = Omit<ChatMessage, 'seq'>;

/** The history at one point of the room's order: its messages, and the last `seq` given so far. */
export interface ChatHistory {
  messages: ChatMessage[];
  seq: number;
}

/** What a message costs in the history (and in every welcome): its JSON in UTF-8 bytes. */
export const messageBytes = (message: NewChatMessage): number => Buffer.byteLength(JSON.stringify(message));

export interface RoomState {
  /** Seats viewer `id` of client `address` unless the room or the address is at its limit. */
  tryAddViewer(id: string, address: string, limits: SeatLimits): Promise<SeatResult>;
  removeViewer(id: string): Promise<void>;
  hasViewer(id: string): Promise<boolean>;
  viewerIds(): Promise<string[]>;
  /** Sets the broadcaster and returns the previous one's socket id, if any. */
  setBroadcaster(id: string): Promise<string | undefined>;
  /** Clears the broadcaster if it is still `id`; returns whether it was. */
  clearBroadcaster(id: string): Promise<boolean>;
  broadcaster(): Promise<string | undefined>;
  setLive(id: string, live: boolean): Promise<boolean>;
  presence(): Promise<Presence>;
  /**
   * Appends a message to the history and gives it the next `seq` of the room (atomically: every
   * message has a place in the room's order, even one the history cannot keep).
   */
  addMessage(message: NewChatMessage, limits: HistoryLimits): Promise<ChatMessage>;
  /** The history and the last `seq` given, read at one instant. */
  history(): Promise<ChatHistory>;
  /**
   * Records one chat message for `userId`; false when over `perMinute` within the last minute.
   * A user's record is dropped a minute after their last message.
   */
  takeChatToken(userId: string, perMinute: number, now: number): Promise<boolean>;
  /** Records one new user id handed to client `address`; false when over `perMinute` in the last minute. */
  takeNewUserToken(address: string, perMinute: number, now: number): Promise<boolean>;
}

/** Events per key in a sliding minute; a key is forgotten a minute after its last event. */
class MinuteWindow {
  private readonly times = new Map<string, number[]>();
  private lastPrune = 0;

  take(key: string, perMinute: number, now: number): boolean {
    if (now - this.lastPrune > 60_000) this.prune(now);
    const times = (this.times.get(key) ?? []).filter((t) => now - t < 60_000);
    if (times.length >= perMinute) {
      this.times.set(key, times);
      return false;
    }
    times.push(now);
    this.times.set(key, times);
    return true;
  }
  private prune(now: number): void {
    this.lastPrune = now;
    for (const [key, times] of this.times) {
      if (now - (times.at(-1) ?? 0) >= 60_000) this.times.delete(key);
    }
  }
}

export class MemoryRoomState implements RoomState {
  /** Seated viewers: socket id → client address. */
  private readonly viewers = new Map<string, string>();
  private readonly seatsByAddress = new Map<string, number>();
  private broadcasterId: string | undefined;
  private live = false;
  private readonly messages: { message: ChatMessage; bytes: number }[] = [];
  private historyBytes = 0;
  private seq = 0;
  private readonly chatTimes = new MinuteWindow();
  private readonly newUserTimes = new MinuteWindow();

  async tryAddViewer(id: string, address: string, limits: SeatLimits): Promise<SeatResult> {
    if (this.viewers.has(id)) return 'seated';
    if (limits.max > 0 && this.viewers.size >= limits.max) return 'room_full';
    const seats = this.seatsByAddress.get(address) ?? 0;
    if (limits.perAddress > 0 && seats >= limits.perAddress) return 'address_full';
    this.viewers.set(id, address);
    this.seatsByAddress.set(address, seats + 1);
    return 'seated';
  }
  async removeViewer(id: string): Promise<void> {
    const address = this.viewers.get(id);
    if (address === undefined) return;
    this.viewers.delete(id);
    const seats = (this.seatsByAddress.get(address) ?? 1) - 1;
    if (seats > 0) this.seatsByAddress.set(address, seats);
    else this.seatsByAddress.delete(address);
  }
  async hasViewer(id: string): Promise<boolean> {
    return this.viewers.has(id);
  }
  async viewerIds(): Promise<string[]> {
    return [...this.viewers.keys()];
  }
  async setBroadcaster(id: string): Promise<string | undefined> {
    const prev = this.broadcasterId;
    this.broadcasterId = id;
    this.live = false;
    return prev === id ? undefined : prev;
  }
  async clearBroadcaster(id: string): Promise<boolean> {
    if (this.broadcasterId !== id) return false;
    this.broadcasterId = undefined;
    this.live = false;
    return true;
  }
  async broadcaster(): Promise<string | undefined> {
    return this.broadcasterId;
  }
  async setLive(id: string, live: boolean): Promise<boolean> {
    if (this.broadcasterId !== id) return false;
    this.live = live;
    return true;
  }
  async presence(): Promise<Presence> {
    return {
      viewers: this.viewers.size,
      broadcasterOnline: this.broadcasterId !== undefined,
      live: this.live,
    };
  }
  async addMessage(fresh: NewChatMessage, limits: HistoryLimits): Promise<ChatMessage> {
    const message: ChatMessage = { ...fresh, seq: ++this.seq };
    const bytes = messageBytes(message);
    this.messages.push({ message, bytes });
    this.historyBytes += bytes;
    while (this.messages.length > limits.size || this.historyBytes > limits.bytes) {
      this.historyBytes -= this.messages.shift()!.bytes;
    }
    return message;
  }
  async history(): Promise<ChatHistory> {
    return { messages: this.messages.map((m) => m.message), seq: this.seq };
  }
  async takeChatToken(userId: string, perMinute: number, now: number): Promise<boolean> {
    return this.chatTimes.take(userId, perMinute, now);
  }
  async takeNewUserToken(address: string, perMinute: number, now: number): Promise<boolean> {
    return this.newUserTimes.take(address, perMinute, now);
  }
}
