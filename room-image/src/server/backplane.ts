/**
 * The Redis backplane of a multi-replica room: node-redis clients with capped-backoff reconnects,
 * the socket.io Redis Streams adapter (broadcasts and `io.to(socketId)` reach every replica), the
 * shared RedisRoomState, and the membership heartbeat. Redis being down never stops the process:
 * the backplane reports itself unavailable and reconnects by itself.
 */
import { createClient } from '@redis/client';
import { createAdapter } from '@socket.io/redis-streams-adapter';
import type { RedisConfig } from './config.js';
import type { Log } from './log.js';
import type { CommandClient } from './redis-scripts.js';
import { RedisRoomState, streamName, type TickResult } from './redis-state.js';

/** How often a replica refreshes its members (and sweeps expired ones). */
export const TICK_MS = 2000;
/** How long a member counts without a refresh: bounds how long a dead replica's ghosts remain. */
export const MEMBER_TTL_MS = 8000;
const MAX_BACKOFF_MS = 5000;
/** A state command that gets no answer within this fails (the socket event then fails cleanly). */
const COMMAND_TIMEOUT_MS = 2000;

/** Capped exponential backoff with jitter: 0.2 s, 0.4 s, 0.8 s, ... 5 s. */
export function backoffMs(retries: number): number {
  const base = Math.min(MAX_BACKOFF_MS, 200 * 2 ** Math.min(retries, 10));
  return Math.round(base * (0.8 + Math.random() * 0.2));
}

export interface Backplane {
  readonly state: RedisRoomState;
  /** The state's Redis connection (fails fast while disconnected), for other room-wide keys. */
  readonly client: CommandClient;
  /** The socket.io adapter factory (`new Server({ adapter })`). */
  readonly adapter: ReturnType<typeof createAdapter>;
  /** Why the backplane is not usable right now, or undefined when it is. */
  unavailableReason(): string | undefined;
  /** Starts the heartbeat; `onTick` gets what changed after each successful tick. */
  start(onTick: (r: TickResult) => void): void;
  /** Stops the heartbeat and gives up this replica's members at once (shutdown). */
  release(): Promise<void>;
  /** Closes the connections. */
  close(): Promise<void>;
}

/** host:port/db of the URL, for logs (never the password). */
function endpoint(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}

export function createBackplane(config: RedisConfig, log: Log): Backplane {
  // State commands fail fast while disconnected (no offline queue): a chat message then gets a
  // clear error instead of hanging. Each failed connection attempt is logged once.
  const stateClient = createClient({
    url: config.url,
    disableOfflineQueue: true,
    commandOptions: { timeout: COMMAND_TIMEOUT_MS },
    socket: {
      connectTimeout: 3000,
      reconnectStrategy: (retries, cause) => {
        const retryInMs = backoffMs(retries);
        log.warn({ attempt: retries + 1, retryInMs, error: cause.message }, 'redis connection failed');
        return retryInMs;
      },
    },
  });
  // The adapter's client keeps node-redis's offline queue: the adapter's stream reader loops on
  // XREAD and must wait for the connection rather than fail in a tight loop. Its commands still
  // time out (node-redis default, 5 s), so a local broadcast is never held longer than that.
  const adapterClient = createClient({
    url: config.url,
    socket: { connectTimeout: 3000, reconnectStrategy: (retries) => backoffMs(retries) },
  });
  const adapter = createAdapter(adapterClient, {
    streamName: streamName(config.keyPrefix),
    channelPrefix: streamName(config.keyPrefix),
    sessionKeyPrefix: `${streamName(config.keyPrefix)}:session:`,
    // Below the client's command timeout, so an idle read is never reported as timed out.
    blockTimeInMs: 2000,
    // Everything the room emits is JSON (validators rebuild every payload from strings/numbers).
    onlyPlaintext: true,
  });
  const state = new RedisRoomState(stateClient, config.keyPrefix, MEMBER_TTL_MS);

  let connectedSince: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  let ticking = false;
  let onTick: ((r: TickResult) => void) | undefined;
  const isConnected = (): boolean => stateClient.isReady && adapterClient.isReady;

  const tick = async (): Promise<void> => {
    if (ticking || !onTick || connectedSince === undefined) return;
    ticking = true;
    try {
      // Sweeping others' expired members is safe only once every live replica has had time to
      // refresh its own after a common outage.
      const sweep = Date.now() - connectedSince >= MEMBER_TTL_MS;
      onTick(await state.tick(sweep));
    } catch (err) {
      log.warn({ err }, 'backplane heartbeat failed');
    } finally {
      ticking = false;
    }
  };

  const onReady = (): void => {
    if (!isConnected() || connectedSince !== undefined) return;
    connectedSince = Date.now();
    log.info({ redis: endpoint(config.url), keyPrefix: config.keyPrefix }, 'redis connected');
    void tick(); // re-register own members at once after an outage
  };
  const onDown = (): void => {
    if (connectedSince === undefined || isConnected()) return;
    connectedSince = undefined;
    log.warn('redis connection lost, serving local sockets only until it is back');
  };
  for (const client of [stateClient, adapterClient]) {
    client.on('ready', onReady);
    client.on('reconnecting', onDown);
    client.on('end', onDown);
    client.on('error', () => undefined); // the cause is logged by the reconnect strategy
    client.connect().catch(() => undefined); // retries forever; failures are logged above
  }

  return {
    state,
    client: stateClient,
    adapter,
    // Said on /readyz, which anyone may read: the cause (it names the Redis host) goes to the log only.
    unavailableReason: () => (isConnected() ? undefined : 'redis not connected'),
    start(fn) {
      onTick = fn;
      timer = setInterval(() => void tick(), TICK_MS);
      timer.unref();
      void tick();
    },
    async release() {
      clearInterval(timer);
      onTick = undefined;
      await state.release().catch((err: unknown) => {
        log.warn({ err }, 'could not release members, they will expire');
      });
    },
    async close() {
      clearInterval(timer);
      onTick = undefined;
      for (const client of [stateClient, adapterClient]) {
        client.off('end', onDown);
        if (client.isReady) await client.close().catch(() => undefined);
        else if (client.isOpen) client.destroy(); // still reconnecting: stop trying
      }
    },
  };
}
