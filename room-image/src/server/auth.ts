/** Socket.io handshake: role, broadcaster/viewer keys, display name, user id and the viewer seat. */
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { ExtendedError, Socket } from 'socket.io';
import { clientKey } from './address.js';
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

export interface UserIds {
  /** A new user id and its token. */
  issue(): { id: string; token: string };
  /** The one user id (and token) that all new users of client `address` share past their limit. */
  shared(address: string): { id: string; token: string };
  /** The user id of a token this room issued (on any replica), or undefined. */
  verify(token: string | undefined): string | undefined;
}

/**
 * Opaque user ids signed with a key derived from the broadcaster key, which every replica of the
 * room shares: a client that reconnects to another replica keeps its id, and with it its chat
 * budget. The id proves nothing beyond "this room handed it out".
 */
export function userIds(broadcasterKey: string): UserIds {
  const key = createHmac('sha256', broadcasterKey).update('streamroom user id v1').digest();
  const mac = (id: string): string => createHmac('sha256', key).update(id).digest('base64url').slice(0, 22);
  const signed = (id: string) => ({ id, token: `${id}.${mac(id)}` });
  return {
    issue: () => signed(randomBytes(12).toString('base64url')),
    shared: (address) =>
      signed(createHmac('sha256', key).update(`address ${address}`).digest('base64url').slice(0, 16)),
    verify(token) {
      const m = token === undefined ? null : /^([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{22})$/.exec(token);
      if (!m) return undefined;
      const [, id, given] = m as unknown as [string, string, string];
      return timingSafeEqual(Buffer.from(given), Buffer.from(mac(id))) ? id : undefined;
    },
  };
}

type HandshakeContext = Pick<
  RoomContext,
  | 'config'
  | 'state'
  | 'metrics'
  | 'log'
  | 'isShuttingDown'
  | 'unavailableReason'
  | 'publishPresence'
  | 'track'
>;

/**
 * Middleware for `io.use`: sets `socket.data` or refuses the connection with
 * `err.data = { reason, message }`. A viewer's seat is reserved here and released when its
 * connection closes. Per client address (address.ts), room-wide: at most
 * `limits.viewersPerAddress` viewer seats, and at most `limits.newUsersPerAddressPerMinute` new
 * user ids a minute for visitors without a valid user token; past that they share one user id,
 * and so one chat budget (a fresh id per connection would be a fresh chat budget per connection).
 */
export function handshake(ctx: HandshakeContext) {
  const { config, state, metrics } = ctx;
  const { limits } = config;
  const users = userIds(config.broadcasterKey);
  const addressOf = clientKey(config.trustedProxies);
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
      if (ctx.unavailableReason() !== undefined) {
        return refuse('unavailable', 'The room is reconnecting, please retry in a moment.');
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
      const known = users.verify(auth.value.user);
      const returning = known !== undefined ? { id: known, token: auth.value.user! } : undefined;
      if (role === 'broadcaster') {
        if (!keysMatch(key, config.broadcasterKey))
          return refuse('bad_broadcaster_key', 'Invalid broadcaster key.');
        const user = returning ?? users.issue();
        socket.data = {
          role,
          name: name ?? 'Host',
          user: user.id,
          userToken: user.token,
        } satisfies SocketData;
        return next();
      }
      if (config.viewerKey !== undefined && !keysMatch(key, config.viewerKey)) {
        return refuse('bad_viewer_key', 'This room is private: a valid viewer key is required.');
      }
      const address = addressOf(socket.handshake.address, socket.handshake.headers['x-forwarded-for']);
      const seat = await state.tryAddViewer(socket.id, address, {
        max: config.maxViewers,
        perAddress: limits.viewersPerAddress,
      });
      if (seat === 'room_full') {
        return refuse(
          'room_full',
          `This room is full (${config.maxViewers} viewers). Please try again later.`,
        );
      }
      if (seat === 'address_full') {
        return refuse(
          'too_many_from_address',
          `There are already ${limits.viewersPerAddress} viewers from your network in this room. Please try again later.`,
        );
      }
      // Free the seat however the connection ends, even if it closes before 'connection'.
      socket.conn.once('close', () => {
        ctx.track(
          state.removeViewer(socket.id).then(ctx.publishPresence, (err: unknown) => {
            if (!ctx.isShuttingDown()) {
              ctx.log.warn({ err }, 'could not free a seat, it will expire');
            }
          }),
        );
      });
      const perMinute = limits.newUsersPerAddressPerMinute;
      const user =
        returning ??
        (perMinute === 0 || (await state.takeNewUserToken(address, perMinute, Date.now()))
          ? users.issue()
          : users.shared(address));
      if (socket.conn.readyState !== 'open') {
        await state.removeViewer(socket.id);
        return next(new Error('connection closed during handshake'));
      }
      socket.data = {
        role,
        name: name ?? `Guest-${randomUUID().slice(0, 4)}`,
        user: user.id,
        userToken: user.token,
      } satisfies SocketData;
      next();
    })().catch((err: unknown) => {
      // The shared state did not answer: the client retries shortly (on any replica).
      ctx.log.warn({ err }, 'handshake failed');
      refuse('unavailable', 'The room is reconnecting, please retry in a moment.');
    });
  };
}
