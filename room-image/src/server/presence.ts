import type { RoomContext } from './context.js';
import type { RoomMetrics } from './metrics.js';
import type { Presence } from './state.js';

const PRESENCE_COALESCE_MS = 100;

/** Updates the presence gauges. */
export function recordPresence(metrics: RoomMetrics, p: Presence): void {
  metrics.viewers.set(p.viewers);
  metrics.broadcasters.set(p.broadcasterOnline ? 1 : 0);
}

export interface PresencePublisher {
  publish(): void;
  /** Cancels a pending broadcast (shutdown). */
  stop(): void;
}

/** Presence changes are coalesced so that a wave of joins costs one broadcast, not one per join. */
export function presencePublisher(
  ctx: Pick<RoomContext, 'io' | 'state' | 'metrics' | 'log' | 'isShuttingDown'>,
): PresencePublisher {
  let timer: NodeJS.Timeout | undefined;
  return {
    publish: () => {
      if (timer || ctx.isShuttingDown()) return;
      timer = setTimeout(() => {
        timer = undefined;
        ctx.state.presence().then(
          (p) => {
            recordPresence(ctx.metrics, p);
            ctx.io.emit('presence', p);
          },
          (err: unknown) => ctx.log('error', 'presence failed', { error: String(err) }),
        );
      }, PRESENCE_COALESCE_MS);
      timer.unref();
    },
    stop: () => clearTimeout(timer),
  };
}
