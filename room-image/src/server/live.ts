/**
 * `GET /live` on the metrics port: the room's live facts for the operator, which shows them in the
 * StreamRoom's status and puts an idle room to sleep (hibernation):
 *
 *   { "live": boolean, "viewers": number, "broadcasterOnline": boolean, "lastActivityTime": RFC 3339 }
 *
 * All room-wide: presence comes from the shared state, and the time of the last activity is kept in
 * the room's Redis (key `<prefix>activity`, a hash written by a script that reads the Redis clock) when
 * the room has one, so every replica answers the same. `lastActivityTime` is now while anybody
 * (viewer or broadcaster) is connected, else when the last one left (recorded when a socket joins
 * or leaves, and every ACTIVITY_TICK_MS while anybody is there, which also covers a replica that
 * died with its sockets), or when the server started if nobody came since: a replica that starts
 * counts as activity, so a room that was just woken up is not idle from the past.
 */
import type { Request, Response } from 'express';
import type { Log } from './log.js';
import { Script, type CommandClient } from './redis-scripts.js';
import type { RoomState } from './state.js';

/** How often a replica records that somebody is in the room. */
export const ACTIVITY_TICK_MS = 2000;
/** How long the room's activity key outlives the last replica that wrote it. */
const ACTIVITY_TTL_MS = 24 * 3600 * 1000;

export interface LiveFacts {
  live: boolean;
  viewers: number;
  broadcasterOnline: boolean;
  lastActivityTime: string;
}

/** Where the time of the room's last activity is kept (ms since the epoch). */
export interface ActivityStore {
  /** Records activity now; never moves the time back. */
  touch(): Promise<void>;
  /** The last activity recorded, or undefined when none is. */
  last(): Promise<number | undefined>;
}

/** A single replica's: in this process. */
export class MemoryActivity implements ActivityStore {
  private at: number | undefined;
  constructor(private readonly now: () => number = Date.now) {}
  async touch(): Promise<void> {
    this.at = Math.max(this.at ?? 0, this.now());
  }
  async last(): Promise<number | undefined> {
    return this.at;
  }
}

/** KEYS activity; ARGV ttlMs → the time recorded (the later of the stored one and Redis' clock). */
const TOUCH = new Script(`local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = tonumber(redis.call('HGET', KEYS[1], 'at') or '0')
if cur < now then redis.call('HSET', KEYS[1], 'at', now) else now = cur end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return now`);

/** A multi-replica room's: in its Redis, under its key prefix (which its Redis user may use). */
export class RedisActivity implements ActivityStore {
  private readonly key: string;
  constructor(
    private readonly client: CommandClient,
    prefix: string,
  ) {
    this.key = `${prefix}activity`;
  }
  async touch(): Promise<void> {
    await TOUCH.run(this.client, [this.key], [ACTIVITY_TTL_MS]);
  }
  async last(): Promise<number | undefined> {
    const at = Number(await this.client.sendCommand(['HGET', this.key, 'at']));
    return Number.isFinite(at) && at > 0 ? at : undefined;
  }
}

/** What live.ts needs of the socket.io server: its connections and their ends. */
export interface Connections {
  on(
    event: 'connection',
    listener: (socket: { on(event: 'disconnect', fn: () => void): void }) => void,
  ): unknown;
}

export interface RoomLive {
  /** The express handler of `GET /live`. */
  handler(req: Request, res: Response): void;
  /** Records activity whenever a visitor joins or leaves (a visit shorter than a tick counts too). */
  attach(io: Connections): void;
  /** The facts as the handler answers them (for tests). */
  facts(): Promise<LiveFacts>;
  start(): void;
  stop(): void;
}

export function createLive(ctx: {
  state: Pick<RoomState, 'presence'>;
  activity: ActivityStore;
  log: Log;
  now?: () => number;
}): RoomLive {
  const now = ctx.now ?? Date.now;
  const startedAt = now();
  let timer: NodeJS.Timeout | undefined;
  let recorded = false;
  let warned = false;

  const occupied = (p: { viewers: number; broadcasterOnline: boolean }) =>
    p.viewers > 0 || p.broadcasterOnline;
  /** The server's start counts once; then every tick where somebody is there. */
  const tick = async (): Promise<void> => {
    try {
      if (!recorded || occupied(await ctx.state.presence())) {
        await ctx.activity.touch();
        recorded = true;
      }
      warned = false;
    } catch (err) {
      // Redis unreachable: the backplane logs the cause; say it once here
      if (!warned) ctx.log.warn({ err }, 'could not record room activity');
      warned = true;
    }
  };

  const record = (): void => {
    ctx.activity.touch().then(
      () => (recorded = true),
      (err: unknown) => {
        if (!warned) ctx.log.warn({ err }, 'could not record room activity');
        warned = true;
      },
    );
  };

  const facts = async (): Promise<LiveFacts> => {
    const p = await ctx.state.presence();
    const at = occupied(p) ? now() : Math.max((await ctx.activity.last()) ?? 0, startedAt);
    return {
      live: p.live,
      viewers: p.viewers,
      broadcasterOnline: p.broadcasterOnline,
      lastActivityTime: new Date(at).toISOString(),
    };
  };

  return {
    facts,
    handler(_req, res) {
      res.setHeader('Cache-Control', 'no-store');
      facts().then(
        (f) => res.json(f),
        () => res.status(503).json({ error: 'unavailable' }),
      );
    },
    attach(io) {
      io.on('connection', (socket) => {
        record();
        socket.on('disconnect', record);
      });
    },
    start() {
      timer = setInterval(() => void tick(), ACTIVITY_TICK_MS);
      timer.unref();
      void tick();
    },
    stop() {
      clearInterval(timer);
    },
  };
}
