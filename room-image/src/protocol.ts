/**
 * The room's socket.io protocol, shared by the server (`Server<ClientToServer, ServerToClient, …>`)
 * and the browser client (`io<ServerToClient, ClientToServer>()`): every event, its payload, and the
 * reasons a connection or a message is refused. The server still validates every payload it receives
 * (validate.ts): these types describe well-behaved clients, not what arrives on the wire.
 */

/** How the room's video travels: through the room pod's relay, or from the broadcaster's browser. */
export const MEDIA_MODES = ['SFU', 'PeerToPeer'] as const;
export type MediaMode = (typeof MEDIA_MODES)[number];

/** The `from` of signals the relay sends (in SFU rooms every peer connection ends at the relay). */
export const RELAY_PEER = 'relay';

export type Role = 'broadcaster' | 'viewer';

export interface ChatMessage {
  id: string;
  name: string;
  role: Role;
  text: string;
  /** Server timestamp, milliseconds since the epoch. */
  ts: number;
  /**
   * The room's order of acceptance (the history's), increasing across the room's replicas. Clients
   * need not use it; the server uses it to give a joining client exactly what its history lacks.
   */
  seq: number;
}

export interface Presence {
  viewers: number;
  broadcasterOnline: boolean;
  live: boolean;
}

export interface ChatWelcome {
  enabled: boolean;
  historySize: number;
  maxMessageLength: number;
  messagesPerMinute: number;
  history: ChatMessage[];
}

export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export interface Welcome {
  id: string;
  role: Role;
  name: string;
  /** Signed user id: sent back on reconnect to stay the same user on any replica. */
  user: string;
  title: string;
  iceServers: IceServer[];
  media: { mode: MediaMode };
  chat: ChatWelcome;
  /** PeerToPeer broadcasters only: the viewers to offer a connection to. */
  viewers?: string[];
}

/** What simple-peer emits and accepts (`peer.on('signal')` / `peer.signal()`), as the server allows it. */
export type SignalData =
  | { type: 'offer' | 'answer'; sdp: string }
  | {
      type: 'candidate';
      candidate: { candidate: string; sdpMid: string | null; sdpMLineIndex: number | null };
    }
  | { type: 'renegotiate'; renegotiate: true };

/** Client → server. `to`: the viewer a PeerToPeer broadcaster signals; absent otherwise. */
export interface SignalEnvelope {
  to?: string;
  /** The peer connection this belongs to (chosen by whoever created it). */
  pc: string;
  data: SignalData;
}

/** Server → client: from the broadcaster or a viewer (PeerToPeer) or from the relay (SFU). */
export interface SignalMessage {
  from: string;
  pc: string;
  data: SignalData;
}

/** Why a message was refused (in an ack's `error`, or in a `rejected` event). */
export const REJECT_REASONS = [
  'invalid_payload',
  'unknown_event',
  'too_large',
  'rate_limited',
  'flood',
  'not_allowed',
  'chat_disabled',
  'unknown_target',
  'unavailable',
  'media_unavailable',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** Why a connection was refused (`connect_error` with `err.data = { reason, message }`). */
export const CONNECTION_REJECT_REASONS = [
  'bad_auth',
  'bad_broadcaster_key',
  'bad_viewer_key',
  'invalid_name',
  'room_full',
  /** Too many viewers from the client's address (its network) are in the room: retry later. */
  'too_many_from_address',
  'shutting_down',
  'unavailable',
] as const;
export type ConnectionRejectReason = (typeof CONNECTION_REJECT_REASONS)[number];

export type Ack<T extends object = object, E extends string = RejectReason> = (
  response: ({ ok: true } & T) | { ok: false; error: E },
) => void;

export interface ClientToServerEvents {
  signal(envelope: SignalEnvelope, ack?: Ack): void;
  'stream:state'(state: { live: boolean }, ack?: Ack): void;
  'chat:send'(message: { text: string }, ack?: Ack<{ message: ChatMessage }>): void;
  /** Refused with `invalid_name` whatever the detail (the `rejected` metric keeps it). */
  'name:set'(request: { name: string }, ack?: Ack<{ name: string }, 'invalid_name' | RejectReason>): void;
}

export interface ServerToClientEvents {
  welcome(welcome: Welcome): void;
  presence(presence: Presence): void;
  /**
   * The chat messages accepted in the last tick (CHAT_BATCH_MS), in order: one frame for many
   * messages. A joining client gets its first batch after its `welcome`, with exactly the messages
   * its history lacks.
   */
  'chat:batch'(messages: ChatMessage[]): void;
  signal(message: SignalMessage): void;
  /** PeerToPeer broadcasters only. */
  'viewer:joined'(viewer: { id: string }): void;
  'viewer:left'(viewer: { id: string }): void;
  /** SFU broadcasters only: the relay lost the stream (it restarted): publish again. */
  'media:republish'(info: Record<string, never>): void;
  rejected(rejection: { event: string; reason: RejectReason }): void;
  /** A newer broadcaster session took over; this one is disconnected. */
  replaced(info: Record<string, never>): void;
  'server:shutdown'(info: { reconnect: true; retryInMs: number }): void;
}

/** Handshake `auth`. */
export interface HandshakeAuth {
  role: Role;
  key?: string;
  name?: string;
  /** The `user` token of a previous welcome. */
  user?: string;
}
