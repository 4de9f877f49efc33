/**
 * Presence (viewer count, broadcaster online, live) pushed to the sockets of this replica. The
 * numbers always come from the shared state, so they are room-wide. A replica where something
 * changed tells the others (`notifyPeers`), and each one re-reads the state and pushes to its own
 * sockets: the last read on every replica follows the last change, so no replica keeps a stale
 * count. The heartbeat also asks for a refresh, which heals a lost notification within seconds.
 */
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
  /** A change happened here: push to local sockets (even if unchanged) and notify the peers. */
  publish(): void;
  /** Re-read and push to local sockets if the presence differs from the last push. */
  refresh(): void;
  /** Cancels a pending push (shutdown). */
  stop(): void;
}

/** Changes are coalesced so that a wave of joins costs one read and one push, not one per join. */
export function presencePublisher(
  ctx: Pick<RoomContext, 'io' | 'state' | 'metrics' | 'log' | 'isShuttingDown'>,
  notifyPeers: () => void = () => undefined,
): PresencePublisher {
  let timer: NodeJS.Timeout | undefined;
  let notify = false;
  let force = false;
  let last = '';

  const run = async (): Promise<void> => {
    timer = undefined;
    if (notify) notifyPeers();
    const forced = force;
    notify = force = false;
    if (ctx.isShuttingDown()) return;
    const p = await ctx.state.presence();
    recordPresence(ctx.metrics, p);
    const key = JSON.stringify(p);
    if (forced || key !== last) {
      last = key;
      ctx.io.local.emit('presence', p);
    }
  };
  const schedule = (): void => {
    if (timer) return;
    timer = setTimeout(() => {
      run().catch((err: unknown) => ctx.log.warn({ err }, 'presence failed'));
    }, PRESENCE_COALESCE_MS);
    timer.unref();
  };
  return {
    publish: () => {
      notify = force = true;
      schedule();
    },
    refresh: schedule,
    stop: () => {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
