/**
 * Per-socket packet guard (token bucket flood limit, unknown-event rejection) and the helpers the
 * feature modules use to register handlers and answer rejections.
 */
import type { Socket } from 'socket.io';
import type { Ack, RoomContext, SocketData } from './context.js';
import type { RejectReason } from './metrics.js';
import type { Result } from './validate.js';

export interface FloodLimits {
  burst: number;
  perSecond: number;
  disconnectAfter: number;
}

export const DEFAULT_FLOOD: FloodLimits = { burst: 60, perSecond: 20, disconnectAfter: 300 };

class TokenBucket {
  private tokens: number;
  private last = Date.now();
  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
  ) {
    this.tokens = burst;
  }
  take(): boolean {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** The acknowledgement callback, if the client asked for one (always the last argument). */
function ackOf(args: unknown[]): Ack | undefined {
  const last = args[args.length - 1];
  return typeof last === 'function' ? (last as Ack) : undefined;
}

export interface SocketHandlers {
  /** Registers the handler of an event (only such events pass the guard); one payload at most. */
  handle(event: string, fn: (payload: unknown, ack: Ack | undefined) => Promise<void>): void;
  /** Counts a rejection and answers it through the ack, or with a `rejected` event. */
  reject(reason: RejectReason, event: string, ack?: Ack): void;
  /** The validated value, or undefined after rejecting with the validator's reason. */
  check<T>(r: Result<T>, event: string, ack: Ack | undefined): T | undefined;
}

export function guardSocket(
  { metrics, log }: Pick<RoomContext, 'metrics' | 'log'>,
  socket: Socket,
  flood: FloodLimits,
): SocketHandlers {
  const { role } = socket.data as SocketData;
  const bucket = new TokenBucket(
    // The broadcaster signals for every viewer (offer + ICE candidates each), so it gets more.
    role === 'broadcaster' ? flood.burst * 40 : flood.burst,
    role === 'broadcaster' ? flood.perSecond * 25 : flood.perSecond,
  );
  const knownEvents = new Set<string>();
  let floodRejections = 0;
  let floodDisconnected = false;

  const reject = (reason: RejectReason, event: string, ack?: Ack): void => {
    metrics.reject(reason);
    if (ack) ack({ ok: false, error: reason });
    else socket.emit('rejected', { event: event.slice(0, 64), reason });
  };

  // Per-packet guard: floods and unknown events never reach a handler.
  socket.use(([event, ...args], next) => {
    // What the flooder had sent before it was disconnected still arrives here: dropped, unanswered.
    if (floodDisconnected) return;
    const ack = ackOf(args);
    const name = typeof event === 'string' ? event : '';
    if (!bucket.take()) {
      floodRejections++;
      if (ack || floodRejections % 50 === 1) reject('flood', name, ack);
      else metrics.reject('flood'); // no reply per dropped packet: a flood must not be amplified
      if (floodRejections >= flood.disconnectAfter) {
        floodDisconnected = true;
        log.warn({ role }, 'disconnecting flooding socket');
        socket.disconnect(true);
      }
      return;
    }
    if (!knownEvents.has(name)) {
      reject('unknown_event', name, ack);
      return;
    }
    next();
  });
  socket.on('error', () => {
    /* rejections are answered in the guard above */
  });

  return {
    handle(event, fn) {
      knownEvents.add(event);
      socket.on(event, (...args: unknown[]) => {
        const ack = ackOf(args);
        const payload = ack ? (args.length > 1 ? args[0] : undefined) : args[0];
        if (args.length > (ack ? 2 : 1)) return reject('invalid_payload', event, ack);
        fn(payload, ack).catch((err: unknown) => {
          // In practice the shared state (Redis) could not be reached: answer, never crash.
          log.warn({ event, err }, 'handler failed');
          reject('unavailable', event, ack);
        });
      });
    },
    reject,
    check(r, event, ack) {
      if (r.ok) return r.value;
      reject(r.reason, event, ack);
      return undefined;
    },
  };
}
