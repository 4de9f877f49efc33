/**
 * SFU rooms: the bridge between this replica's sockets and its media relay. The broadcaster's page
 * publishes one stream to the relay; every viewer's page gets an offer from the relay as soon as it
 * joins, and keeps that connection while the broadcaster comes and goes (reload, camera restart,
 * takeover): the relay switches its source underneath. Signals between a page and the relay travel
 * as `signal` events with `from: 'relay'`; a page may only signal on the peer connection it holds
 * with the relay. When the relay restarts, the broadcaster is asked to publish again and every viewer
 * gets a new offer.
 */
import { randomBytes } from 'node:crypto';
import { RELAY_PEER, type RejectReason, type SignalData, type SignalEnvelope } from '../protocol.js';
import type { RoomContext, RoomSocket } from './context.js';
import { RelayError, RelayProcess } from './relay.js';
import { createMesh, type Mesh } from './upstream.js';

/** Re-offers to a viewer whose connection failed: 1 s, doubling to 30 s, reset once connected. */
const RESUBSCRIBE_MIN_MS = 1000;
const RESUBSCRIBE_MAX_MS = 30_000;

export interface Media {
  /** A socket joined this replica (after its welcome). */
  join(socket: RoomSocket): Promise<void>;
  leave(socket: RoomSocket): void;
  /** A validated signal from a socket; a reason when it is refused. */
  signal(socket: RoomSocket, env: SignalEnvelope): Promise<RejectReason | undefined>;
  /** Why the room cannot carry video now (the relay is not running), or undefined. */
  unavailableReason(): string | undefined;
  /** Presence changed (the broadcaster may have moved to another replica). */
  presenceChanged(): void;
  relay: RelayProcess;
  close(): Promise<void>;
}

const peerOf = (socketId: string, pc: string) => `${socketId}/${pc}`;
const newPc = () => randomBytes(6).toString('base64url');

export function createMedia(ctx: Pick<RoomContext, 'config' | 'io' | 'log' | 'state'>): Media {
  const { config, io, log, state } = ctx;
  const relay = new RelayProcess(
    config.media.relay,
    log,
    // every viewer seat and the broadcaster, plus room for connections being replaced
    config.maxViewers > 0 ? config.maxViewers * 2 + 4 : 100_000,
  );
  /** Per socket: its connection with the relay (and, for viewers, the re-offer backoff). */
  const peers = new Map<string, { pc: string; retryMs: number; timer?: NodeJS.Timeout }>();
  // Several replicas: their relays forward to each other (upstream.ts).
  const mesh: Mesh | undefined = config.redis ? createMesh({ io, state, relay, log }) : undefined;

  const local = (id: string): RoomSocket | undefined => io.of('/').sockets.get(id) as RoomSocket | undefined;
  const send = (socket: RoomSocket, pc: string, data: SignalData) =>
    socket.emit('signal', { from: RELAY_PEER, pc, data });

  /** Offers the room's stream to a viewer on a new peer connection. */
  const subscribe = async (socket: RoomSocket): Promise<void> => {
    const previous = peers.get(socket.id);
    if (previous) {
      clearTimeout(previous.timer);
      void relay.request('close', { peer: peerOf(socket.id, previous.pc) }).catch(() => undefined);
    }
    const pc = newPc();
    peers.set(socket.id, { pc, retryMs: previous?.retryMs ?? RESUBSCRIBE_MIN_MS });
    try {
      const { sdp } = await relay.request<{ sdp: string }>('subscribe', { peer: peerOf(socket.id, pc) });
      if (peers.get(socket.id)?.pc === pc && socket.connected) send(socket, pc, { type: 'offer', sdp });
    } catch (err) {
      // The relay is down (it says so on restart) or full: the viewer stays without video.
      log.warn({ err }, 'could not offer the stream to a viewer');
    }
  };

  const resubscribeLater = (socketId: string, pc: string): void => {
    const entry = peers.get(socketId);
    if (!entry || entry.pc !== pc || entry.timer) return;
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      const socket = local(socketId);
      if (socket?.connected && peers.get(socketId) === entry) void subscribe(socket);
    }, entry.retryMs);
    entry.retryMs = Math.min(entry.retryMs * 2, RESUBSCRIBE_MAX_MS);
  };

  relay.on('candidate', (peer, candidate) => {
    if (mesh?.onRelayEvent(peer, { candidate })) return;
    const [socketId, pc] = peer.split('/') as [string, string];
    const socket = local(socketId);
    if (socket && peers.get(socketId)?.pc === pc) send(socket, pc, { type: 'candidate', candidate });
  });
  relay.on('state', (peer, state) => {
    if (mesh?.onRelayEvent(peer, { state })) return;
    const [socketId, pc] = peer.split('/') as [string, string];
    const entry = peers.get(socketId);
    if (!entry || entry.pc !== pc) return;
    if (state === 'connected') entry.retryMs = RESUBSCRIBE_MIN_MS;
    else if (local(socketId)?.data.role === 'viewer') resubscribeLater(socketId, pc);
  });
  relay.on('up', () => {
    // A (re)started relay has no peers: the broadcaster publishes again, every viewer gets a new
    // offer (also those who came while it was still starting: their offers failed).
    mesh?.reset();
    for (const socket of io.of('/').sockets.values() as IterableIterator<RoomSocket>) {
      if (socket.data.role === 'broadcaster') {
        peers.delete(socket.id);
        socket.emit('media:republish', {});
      } else {
        void subscribe(socket);
      }
    }
  });
  relay.start();

  return {
    relay,
    async join(socket) {
      if (socket.data.role === 'viewer') await subscribe(socket);
      mesh?.check();
    },
    leave(socket) {
      const entry = peers.get(socket.id);
      if (!entry) return;
      clearTimeout(entry.timer);
      peers.delete(socket.id);
      void relay.request('close', { peer: peerOf(socket.id, entry.pc) }).catch(() => undefined);
      mesh?.check();
    },
    presenceChanged: () => mesh?.check(),
    async signal(socket, env) {
      if (env.to !== undefined) return 'not_allowed';
      const { role } = socket.data;
      const current = peers.get(socket.id);
      const peer = peerOf(socket.id, env.pc);
      try {
        if (env.data.type === 'offer') {
          // Only the broadcaster offers (its stream); a new offer replaces its previous connection.
          if (role !== 'broadcaster') return 'not_allowed';
          if (current && current.pc !== env.pc) {
            void relay.request('close', { peer: peerOf(socket.id, current.pc) }).catch(() => undefined);
          }
          const entry = { pc: env.pc, retryMs: RESUBSCRIBE_MIN_MS };
          peers.set(socket.id, entry);
          try {
            const { sdp } = await relay.request<{ sdp: string }>('publish', { peer, sdp: env.data.sdp });
            if (peers.get(socket.id) === entry) send(socket, env.pc, { type: 'answer', sdp });
          } catch (err) {
            if (peers.get(socket.id) === entry) peers.delete(socket.id);
            throw err;
          }
          return undefined;
        }
        // Everything else belongs to the connection this socket holds with the relay.
        if (!current || current.pc !== env.pc) return 'unknown_target';
        if (env.data.type === 'answer') {
          if (role !== 'viewer') return 'not_allowed';
          await relay.request('answer', { peer, sdp: env.data.sdp });
        } else if (env.data.type === 'candidate') {
          await relay.request('candidate', { peer, candidate: env.data.candidate });
        }
        return undefined;
      } catch (err) {
        if (err instanceof RelayError && ['bad_sdp', 'too_many_tracks', 'bad_request'].includes(err.code)) {
          log.info({ role, code: err.code, error: err.message }, 'the media relay refused a signal');
          return 'invalid_payload';
        }
        if (err instanceof RelayError && err.code === 'unknown_peer') return 'unknown_target';
        log.warn({ role, err }, 'media relay request failed');
        return 'media_unavailable';
      }
    },
    unavailableReason: () => (relay.running ? undefined : 'media relay not running'),
    close: () => {
      mesh?.close();
      return relay.stop();
    },
  };
}
