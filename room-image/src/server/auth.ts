/** Socket.io handshake: role, broadcaster/viewer keys, display name and the viewer seat. */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { ExtendedError, Socket } from 'socket.io';
import type { RoomContext, SocketData } from './context.js';
import type { ConnectionRejectReason } from './metrics.js';
import { authPayload, displayName } from './validate.js';

/** Compares secrets in constant time regardless of their lengths. */
export function keysMatch(given: string | undefined, expected: string): boolean {
  const a = createHash('sha256')
    .update(given ?? '')
    .digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b) && given !== undefined;
}

type HandshakeContext = Pick<
  RoomContext,
  'config' | 'state' | 'metrics' | 'log' | 'isShuttingDown' | 'publishPresence'
>;

/**
 * Middleware for `io.use`: sets `socket.data` or refuses the connection with
 * `err.data = { reason, message }`. A viewer's seat is reserved here and released when its
 * connection closes.
 */
export function handshake(ctx: HandshakeContext) {
  const { config, state, metrics } = ctx;
  return (socket: Socket, next: (err?: ExtendedError) => void): void => {
    const refuse = (reason: ConnectionRejectReason, message: string): void => {
      metrics.rejectedConnections.add(1, { reason });
      const err = new Error(message) as Error & { data?: unknown };
      err.data = { reason, message };
      next(err);
    };
    void (async () => {
      if (ctx.isShuttingDown()) {
        return refuse('shutting_down', 'The room is restarting, please retry in a moment.');
      }
      const rawAuth: unknown = socket.handshake.auth;
      const rawName =
        typeof rawAuth === 'object' && rawAuth !== null
          ? (rawAuth as Record<string, unknown>)['name']
          : undefined;
      if (rawName !== undefined && rawName !== '' && !displayName(rawName).ok) {
        return refuse('invalid_name', 'That display name is not allowed.');
      }
      const auth = authPayload(rawAuth);
      if (!auth.ok) return refuse('bad_auth', 'Malformed connection request.');
      const { role, key, name } = auth.value;
      if (role === 'broadcaster') {
        if (!keysMatch(key, config.broadcasterKey))
          return refuse('bad_broadcaster_key', 'Invalid broadcaster key.');
        socket.data = { role, name: name ?? 'Host' } satisfies SocketData;
        return next();
      }
      if (config.viewerKey !== undefined && !keysMatch(key, config.viewerKey)) {
        return refuse('bad_viewer_key', 'This room is private: a valid viewer key is required.');
      }
      if (!(await state.tryAddViewer(socket.id, config.maxViewers))) {
        return refuse(
          'room_full',
          `This room is full (${config.maxViewers} viewers). Please try again later.`,
        );
      }
      // Free the seat however the connection ends, even if it closes before 'connection'.
      socket.conn.once('close', () => {
        void state.removeViewer(socket.id).then(ctx.publishPresence);
      });
      if (socket.conn.readyState !== 'open') {
        await state.removeViewer(socket.id);
        return next(new Error('connection closed during handshake'));
      }
      socket.data = {
        role,
        name: name ?? `Guest-${randomUUID().slice(0, 4)}`,
      } satisfies SocketData;
      next();
    })().catch((err: unknown) => {
      ctx.log('error', 'handshake failed', { error: String(err) });
      next(new Error('Internal error'));
    });
  };
}
