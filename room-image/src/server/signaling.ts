/**
 * WebRTC signaling. SFU rooms: every page talks to this replica's media relay (media.ts). PeerToPeer
 * rooms, a star: the broadcaster talks to each viewer, viewers only to the broadcaster. Also the
 * join/leave side of it: broadcaster takeover and (PeerToPeer) viewer:joined/left.
 */
import type { RoomContext, RoomSocket } from './context.js';
import type { RejectReason, SignalData, SignalMessage, Welcome } from '../protocol.js';
import type { SocketHandlers } from './guard.js';
import type { TickResult } from './redis-state.js';
import { signalEnvelope, streamStatePayload } from './validate.js';

/** How many of the broadcaster's peer connections a PeerToPeer viewer remembers (the newest). */
const OFFERS_KEPT = 8;

/**
 * PeerToPeer: the peer connections the broadcaster offered to one viewer, seen as the offers go out
 * to it (on the viewer's replica, wherever the broadcaster is). The viewer may signal only on those,
 * and answer each offer once: nothing unsolicited reaches the broadcaster's browser.
 */
class Offered {
  /** `<broadcaster socket>/<pc>` → whether an offer waits for its answer; oldest first. */
  private readonly pcs = new Map<string, boolean>();

  offer(from: string, pc: string): void {
    const key = `${from}/${pc}`;
    this.pcs.delete(key);
    this.pcs.set(key, true);
    if (this.pcs.size > OFFERS_KEPT) this.pcs.delete(this.pcs.keys().next().value!);
  }

  /** Why the viewer may not send `type` to `broadcaster` on `pc`, or undefined (an answer is used up). */
  refuse(broadcaster: string, pc: string, type: SignalData['type']): RejectReason | undefined {
    const key = `${broadcaster}/${pc}`;
    const awaitingAnswer = this.pcs.get(key);
    if (awaitingAnswer === undefined) return 'unknown_target';
    if (type !== 'answer') return undefined;
    if (!awaitingAnswer) return 'not_allowed';
    this.pcs.set(key, false);
    return undefined;
  }
}

/** Handles `signal` (relayed to exactly one socket) and `stream:state` (broadcaster only). */
export function registerSignaling(ctx: RoomContext, socket: RoomSocket, h: SocketHandlers): void {
  const { state, metrics, io, media } = ctx;
  const data = socket.data;
  const offered = !media && data.role === 'viewer' ? new Offered() : undefined;
  if (offered) {
    socket.onAnyOutgoing((event: string, message: SignalMessage) => {
      if (event === 'signal' && message.data.type === 'offer') offered.offer(message.from, message.pc);
    });
  }

  h.handle('signal', async (payload, ack) => {
    const env = h.check(signalEnvelope(payload), 'signal', ack);
    if (!env) return;
    if (media) {
      const refused = await media.signal(socket, env);
      if (refused) return h.reject(refused, 'signal', ack);
      metrics.signalingMessages.add(1);
      return ack?.({ ok: true });
    }
    let target: string | undefined;
    if (data.role === 'broadcaster') {
      if (env.to === undefined || !(await state.hasViewer(env.to)))
        return h.reject('unknown_target', 'signal', ack);
      target = env.to;
    } else {
      // Viewers answer; only the broadcaster offers.
      if (env.to !== undefined || env.data.type === 'offer') return h.reject('not_allowed', 'signal', ack);
      target = await state.broadcaster();
      if (target === undefined) return h.reject('unknown_target', 'signal', ack);
      const refused = offered?.refuse(target, env.pc, env.data.type);
      if (refused) return h.reject(refused, 'signal', ack);
    }
    metrics.signalingMessages.add(1);
    io.to(target).emit('signal', { from: socket.id, pc: env.pc, data: env.data });
    ack?.({ ok: true });
  });

  h.handle('stream:state', async (payload, ack) => {
    const live = h.check(streamStatePayload(payload), 'stream:state', ack);
    if (live === undefined) return;
    if (data.role !== 'broadcaster' || !(await state.setLive(socket.id, live))) {
      return h.reject('not_allowed', 'stream:state', ack);
    }
    ctx.publishPresence();
    ack?.({ ok: true });
  });
}

/**
 * Sends `welcome` and announces the socket: a broadcaster replaces (and disconnects) the previous
 * one and also gets the viewer ids; a viewer is announced to the broadcaster.
 */
export async function joinRoom(
  ctx: RoomContext,
  socket: RoomSocket,
  welcome: Welcome,
  /** Runs right after the welcome went out. */
  welcomed: () => void = () => undefined,
): Promise<void> {
  const { state, io, media } = ctx;
  if (socket.data.role === 'broadcaster') {
    const previous = await state.setBroadcaster(socket.id);
    if (previous !== undefined) {
      io.to(previous).emit('replaced', {});
      io.in(previous).disconnectSockets(true);
    }
    socket.emit('welcome', media ? welcome : { ...welcome, viewers: await state.viewerIds() });
    welcomed();
    await media?.join(socket);
    ctx.log.info('broadcaster connected');
  } else {
    socket.emit('welcome', welcome);
    welcomed();
    if (media) await media.join(socket);
    else {
      const b = await state.broadcaster();
      if (b !== undefined) io.to(b).emit('viewer:joined', { id: socket.id });
    }
  }
  ctx.publishPresence();
}

/** Frees a viewer's seat and tells the broadcaster, or clears the broadcaster if still current. */
export async function leaveRoom(ctx: RoomContext, socket: RoomSocket): Promise<void> {
  const { state, io, media } = ctx;
  media?.leave(socket);
  if (socket.data.role === 'viewer') {
    await state.removeViewer(socket.id);
    const b = media ? undefined : await state.broadcaster();
    if (b !== undefined) io.to(b).emit('viewer:left', { id: socket.id });
    ctx.publishPresence();
  } else if (await state.clearBroadcaster(socket.id)) {
    ctx.publishPresence();
  }
}

/**
 * Applies what the backplane heartbeat found: the broadcaster forgets viewers whose replica died
 * and re-offers to own viewers that had expired; a broadcaster replaced meanwhile is told so, and
 * one that had expired (the others took it for gone) re-offers to every viewer without a working
 * connection. Returns whether presence changed.
 */
export async function applyTick(ctx: RoomContext, r: TickResult): Promise<boolean> {
  const { io, state } = ctx;
  if (r.lost !== undefined) {
    io.local.to(r.lost).emit('replaced', {});
    io.local.in(r.lost).disconnectSockets(true);
  }
  if (r.restored !== undefined && !ctx.media) {
    for (const id of await state.viewerIds()) io.local.to(r.restored).emit('viewer:joined', { id });
  }
  if (!ctx.media && (r.swept.length > 0 || r.readded.length > 0)) {
    const b = await state.broadcaster();
    if (b !== undefined) {
      for (const id of r.swept) io.to(b).emit('viewer:left', { id });
      for (const id of r.readded) io.to(b).emit('viewer:joined', { id });
    }
  }
  const seatsChanged = r.swept.length > 0 || r.readded.length > 0;
  return seatsChanged || r.restored !== undefined || r.lost !== undefined || r.sweptBroadcaster;
}
