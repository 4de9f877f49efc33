/**
 * Room state behind a small asynchronous interface. `MemoryRoomState` serves a single replica;
 * `RedisRoomState` (redis-state.ts) shares the same state between the replicas of a room.
 */

import type { ChatMessage, Presence } from '../protocol.js';

export type { ChatMessage, Presence };

export interface RoomState {
  /** Registers a viewer unless the room holds `max` viewers already (0 = unlimited). */
  tryAddViewer(id: string, max: number): Promise<boolean>;
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
  addMessage(message: ChatMessage, historySize: number): Promise<void>;
  history(): Promise<ChatMessage[]>;
  /**
   * Records one chat message for `userId`; false when over `perMinute` within the last minute.
   * A user's record is dropped a minute after their last message.
   */
  takeChatToken(userId: string, perMinute: number, now: number): Promise<boolean>;
}

export class MemoryRoomState implements RoomState {
  private readonly viewers = new Set<string>();
  private broadcasterId: string | undefined;
  private live = false;
  private readonly messages: ChatMessage[] = [];
  private readonly chatTimes = new Map<string, number[]>();
  private lastPrune = 0;

  async tryAddViewer(id: string, max: number): Promise<boolean> {
    if (this.viewers.has(id)) return true;
    if (max > 0 && this.viewers.size >= max) return false;
    this.viewers.add(id);
    return true;
  }
  async removeViewer(id: string): Promise<void> {
    this.viewers.delete(id);
  }
  async hasViewer(id: string): Promise<boolean> {
    return this.viewers.has(id);
  }
  async viewerIds(): Promise<string[]> {
    return [...this.viewers];
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
  async addMessage(message: ChatMessage, historySize: number): Promise<void> {
    this.messages.push(message);
    while (this.messages.length > historySize) this.messages.shift();
  }
  async history(): Promise<ChatMessage[]> {
    return [...this.messages];
  }
  async takeChatToken(userId: string, perMinute: number, now: number): Promise<boolean> {
    if (now - this.lastPrune > 60_000) this.prune(now);
    const times = (this.chatTimes.get(userId) ?? []).filter((t) => now - t < 60_000);
    if (times.length >= perMinute) {
      this.chatTimes.set(userId, times);
      return false;
    }
    times.push(now);
    this.chatTimes.set(userId, times);
    return true;
  }
  /** Forgets users who sent nothing within the last minute (users outlive their sockets). */
  private prune(now: number): void {
    this.lastPrune = now;
    for (const [user, times] of this.chatTimes) {
      if (now - (times.at(-1) ?? 0) >= 60_000) this.chatTimes.delete(user);
    }
  }
}
