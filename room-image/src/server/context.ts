/** Types shared by the room server's modules. */
import type { Server } from 'socket.io';
import type { RoomConfig } from './config.js';
import type { LogFn } from './log.js';
import type { RoomMetrics } from './metrics.js';
import type { RoomState } from './state.js';

/** Everything a module may use; one per running server (modules keep no globals). */
export interface RoomContext {
  config: RoomConfig;
  state: RoomState;
  metrics: RoomMetrics;
  io: Server;
  log: LogFn;
  isShuttingDown(): boolean;
  /** Schedules a presence broadcast; calls within a short window are coalesced. */
  publishPresence(): void;
}

/** `socket.data`, set by the handshake. */
export interface SocketData {
  role: 'broadcaster' | 'viewer';
  name: string;
}

export type Ack = (response: { ok: true; [k: string]: unknown } | { ok: false; error: string }) => void;
