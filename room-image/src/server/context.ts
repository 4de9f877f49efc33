/** Types shared by the room server's modules. */
import type { Server, Socket } from 'socket.io';
import type { ClientToServerEvents, Role, ServerToClientEvents } from '../protocol.js';
import type { ChatFanout } from './chat-fanout.js';
import type { RoomConfig } from './config.js';
import type { Media } from './media.js';
import type { MeshEvents } from './upstream.js';
import type { Log } from './log.js';
import type { RoomMetrics } from './metrics.js';
import type { RoomState } from './state.js';

/** Everything a module may use; one per running server (modules keep no globals). */
export interface RoomContext {
  config: RoomConfig;
  state: RoomState;
  metrics: RoomMetrics;
  io: RoomServer;
  log: Log;
  /** SFU rooms: this replica's media relay and the connections of its sockets with it. */
  media: Media | undefined;
  isShuttingDown(): boolean;
  /** Why the shared state cannot be used right now (Redis down), or undefined when it can. */
  unavailableReason(): string | undefined;
  /**
   * Presence changed here: schedules a presence push to this replica's sockets and tells the
   * other replicas to refresh theirs; calls within a short window are coalesced.
   */
  publishPresence(): void;
  /** Lets shutdown wait for a cleanup that is still writing to the shared state. */
  track(work: Promise<unknown>): void;
  /** The chat's batched fan-out. */
  chat: ChatFanout;
}

/** Between replicas (through the adapter): "presence changed, re-read it", and the relays' pulls. */
export interface InterServerEvents extends MeshEvents {
  'streamroom:presence'(): void;
}

export type RoomServer = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
export type RoomSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

/** `socket.data`, set by the handshake. */
export interface SocketData {
  role: Role;
  name: string;
  /** Stable user id (kept across reconnects through a signed token); keys the chat rate limit. */
  user: string;
  /** The signed token of `user`, handed to the client in `welcome`. */
  userToken: string;
}

export type Ack = (response: { ok: true; [k: string]: unknown } | { ok: false; error: string }) => void;
