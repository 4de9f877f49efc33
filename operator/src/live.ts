// The rooms' live facts in their status (status.live, status.viewers, status.lastActivityTime): the
// operator asks each serving room's GET /live (room server, metrics port 9090; room-wide across
// replicas, so one pod answers for the room) every --live-poll-interval seconds with jitter, and
// patches the three fields only when `live` or `viewers` changed, or when an empty room's last
// activity moved; at most once per --live-status-interval seconds per room. Changes within that
// interval are coalesced into one write of the latest values, so a room whose audience churns costs
// at most 60 / interval writes a minute, and a quiet room none.

import http from 'node:http';
import type { Logger } from './log.js';

/** What a room's GET /live answers (room-image/src/server/live.ts). */
export interface LiveFacts {
  live: boolean;
  viewers: number;
  lastActivityTime: string;
}

/** The status fields the poller owns (the reconcile never writes them). */
export interface LiveStatus {
  live?: boolean;
  viewers?: number;
  lastActivityTime?: string;
}

/** A time as the status keeps it: RFC 3339, whole seconds. */
export function statusTime(t: string | number | Date): string {
  return new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Validates a /live answer; undefined when it is not one. */
export function parseLive(body: unknown): LiveFacts | undefined {
  if (!body || typeof body !== 'object') return undefined;
  const b = body as Record<string, unknown>;
  if (typeof b.live !== 'boolean') return undefined;
  if (typeof b.viewers !== 'number' || !Number.isInteger(b.viewers) || b.viewers < 0) return undefined;
  if (typeof b.lastActivityTime !== 'string' || Number.isNaN(Date.parse(b.lastActivityTime)))
    return undefined;
  return { live: b.live, viewers: b.viewers, lastActivityTime: statusTime(b.lastActivityTime) };
}

/**
 * The fields to write for what was observed, or undefined when the status already says enough.
 * `live` and `viewers` are written when they differ; `lastActivityTime` goes along with every write,
 * and alone only when the room is empty (while somebody is there it is "now" at every poll, which
 * would be a write per poll): an empty room's status so says when it was last visited.
 * `minor`: only the count of a room with viewers moved, by less than a tenth (500 -> 510), which
 * waits longer (MINOR_FACTOR times the write interval) to be written.
 */
export function liveChange(
  status: LiveStatus | undefined,
  observed: LiveFacts,
): { fields: LiveStatus; minor: boolean } | undefined {
  const empty = observed.viewers === 0 && !observed.live;
  const changed =
    status?.live !== observed.live ||
    status?.viewers !== observed.viewers ||
    (empty && status?.lastActivityTime !== observed.lastActivityTime) ||
    status?.lastActivityTime === undefined;
  if (!changed) return undefined;
  const before = status?.viewers;
  const minor =
    status?.live === observed.live &&
    status?.lastActivityTime !== undefined &&
    before !== undefined &&
    before > 0 &&
    observed.viewers > 0 &&
    Math.abs(observed.viewers - before) < Math.max(before, observed.viewers) / 10;
  return { fields: { ...observed }, minor };
}

/** How many write intervals a minor change (see liveChange) waits. */
export const MINOR_FACTOR = 4;

/** What a room that runs no pods shows (suspended, hibernating): nobody there. */
export function idleLive(status: LiveStatus | undefined): LiveStatus | undefined {
  if (status?.live !== true && !status?.viewers) return undefined;
  return { live: false, viewers: 0 };
}

export interface LivePollerOptions {
  /** Seconds between two polls of a room (each one jittered by up to ±20 %). */
  pollSeconds: number;
  /** Least seconds between two writes of a room's live fields. */
  minWriteSeconds: number;
  /** Polls in flight at once, over all rooms. */
  concurrency: number;
  /** One poll's time limit. */
  timeoutMs: number;
}

export const DEFAULT_LIVE_OPTIONS: LivePollerOptions = {
  pollSeconds: 10,
  minWriteSeconds: 15,
  concurrency: 32,
  timeoutMs: 3000,
};

export interface LiveRoom {
  key: string;
  /** The room's status as the cache has it. */
  status: LiveStatus | undefined;
  /** Whether the room serves (its pods are to be asked); otherwise it shows nobody there. */
  serving: boolean;
  /** Where to ask, or undefined while no pod of the room is ready. */
  url: string | undefined;
}

export interface LivePollerDeps {
  /** The room as the caches have it now, or undefined when it is gone. */
  room(key: string): LiveRoom | undefined;
  /** Every room key to consider. */
  keys(): string[];
  /** Patches the room's live fields. */
  write(key: string, fields: LiveStatus): Promise<void>;
  /** Called with every successful poll (hibernation reads the facts from here). */
  observed?(key: string, facts: LiveFacts): void;
  /** GETs a URL's JSON body (rejects on a non-200 answer, a timeout, or no JSON). */
  getJson?: (url: string, timeoutMs: number) => Promise<unknown>;
  now?: () => number;
  random?: () => number;
  log?: Pick<Logger, 'warn'>;
}

interface RoomState {
  timer?: NodeJS.Timeout;
  flushTimer?: NodeJS.Timeout;
  flushAt?: number;
  facts?: LiveFacts;
  lastWriteAt?: number;
  /** What was last written, until the cache shows it (a lagging cache does not cause a second write). */
  written?: LiveStatus;
  failures: number;
}

/** Polls the rooms' /live and writes their live fields (see the top of this file). */
export class LivePoller {
  private readonly rooms = new Map<string, RoomState>();
  private readonly opts: LivePollerOptions;
  private readonly getJson: (url: string, timeoutMs: number) => Promise<unknown>;
  private readonly now: () => number;
  private readonly random: () => number;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];
  private syncTimer: NodeJS.Timeout | undefined;
  private running = false;
  readonly stats = { polls: 0, pollErrors: 0, writes: 0 };

  constructor(
    private readonly deps: LivePollerDeps,
    options: Partial<LivePollerOptions> = {},
  ) {
    this.opts = { ...DEFAULT_LIVE_OPTIONS, ...options };
    this.getJson = deps.getJson ?? httpGetJson;
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? Math.random;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.sync();
    // rooms that come and go: checked every second (cheap: no request unless a room is new)
    this.syncTimer = setInterval(() => this.sync(), 1000);
    this.syncTimer.unref();
  }

  stop(): void {
    this.running = false;
    clearInterval(this.syncTimer);
    for (const s of this.rooms.values()) {
      clearTimeout(s.timer);
      clearTimeout(s.flushTimer);
    }
    this.rooms.clear();
  }

  /** The facts last polled of a room. */
  facts(key: string): LiveFacts | undefined {
    return this.rooms.get(key)?.facts;
  }

  /** Starts polling new rooms, forgets rooms that are gone. */
  sync(): void {
    if (!this.running) return;
    const keys = new Set(this.deps.keys());
    for (const [key, s] of this.rooms) {
      if (!keys.has(key)) {
        clearTimeout(s.timer);
        clearTimeout(s.flushTimer);
        this.rooms.delete(key);
      }
    }
    for (const key of keys) {
      if (this.rooms.has(key)) continue;
      const s: RoomState = { failures: 0 };
      this.rooms.set(key, s);
      // the first poll anywhere in the first interval: 1,000 rooms do not all ask at once
      this.schedule(key, s, this.random() * this.opts.pollSeconds * 1000);
    }
  }

  private schedule(key: string, s: RoomState, delayMs?: number): void {
    if (!this.running) return;
    const base = this.opts.pollSeconds * 1000;
    // failures back off (doubling, up to 8 intervals)
    const backoff = Math.min(2 ** s.failures, 8);
    const ms = delayMs ?? base * backoff * (0.8 + 0.4 * this.random());
    s.timer = setTimeout(() => void this.poll(key), ms);
    s.timer.unref();
  }

  /** One poll of one room (also called by tests). */
  async poll(key: string): Promise<void> {
    const s = this.rooms.get(key);
    if (!s) return;
    try {
      const room = this.deps.room(key);
      if (!room) return;
      if (!room.serving) {
        s.facts = undefined;
        const idle = idleLive(room.status);
        if (idle) await this.maybeWrite(key, s, room, idle);
        return;
      }
      if (!room.url) return;
      const facts = await this.ask(room.url);
      this.stats.polls++;
      if (!facts) {
        s.failures++;
        this.stats.pollErrors++;
        return;
      }
      s.failures = 0;
      s.facts = facts;
      this.deps.observed?.(key, facts);
      const fresh = this.deps.room(key);
      if (!fresh?.serving) return;
      const status = this.effectiveStatus(s, fresh.status);
      const change = liveChange(status, facts);
      if (change) await this.maybeWrite(key, s, fresh, change.fields, change.minor);
    } catch (err) {
      s.failures++;
      this.deps.log?.warn({ room: key, err }, 'could not write live status');
    } finally {
      if (this.rooms.get(key) === s) this.schedule(key, s);
    }
  }

  /** The status as written: the cache's, or what this poller wrote when the cache has not caught up. */
  private effectiveStatus(s: RoomState, status: LiveStatus | undefined): LiveStatus | undefined {
    if (!s.written) return status;
    const shows =
      status?.live === s.written.live &&
      status?.viewers === s.written.viewers &&
      status?.lastActivityTime === s.written.lastActivityTime;
    if (shows) {
      s.written = undefined;
      return status;
    }
    return { ...status, ...s.written };
  }

  /** Writes now, or at the end of the room's write interval with the latest facts then. */
  private async maybeWrite(
    key: string,
    s: RoomState,
    room: LiveRoom,
    fields: LiveStatus,
    minor = false,
  ): Promise<void> {
    const interval = this.opts.minWriteSeconds * 1000 * (minor ? MINOR_FACTOR : 1);
    const wait = (s.lastWriteAt ?? -Infinity) + interval - this.now();
    if (wait > 0) {
      // one pending write per room, at the earliest time any change waiting for it may be written
      const at = this.now() + wait;
      if (!s.flushTimer || (s.flushAt ?? Infinity) > at) {
        clearTimeout(s.flushTimer);
        s.flushAt = at;
        s.flushTimer = setTimeout(() => {
          s.flushTimer = undefined;
          s.flushAt = undefined;
          void this.flush(key, s);
        }, wait);
        s.flushTimer.unref();
      }
      return;
    }
    s.lastWriteAt = this.now();
    await this.deps.write(room.key, fields);
    s.written = { ...s.written, ...fields };
    this.stats.writes++;
  }

  /** The coalesced write: whatever the latest poll says, if it still differs. */
  private async flush(key: string, s: RoomState): Promise<void> {
    if (this.rooms.get(key) !== s) return;
    const room = this.deps.room(key);
    if (!room) return;
    const status = this.effectiveStatus(s, room.status);
    const change = room.serving
      ? s.facts
        ? liveChange(status, s.facts)
        : undefined
      : ((f) => (f ? { fields: f, minor: false } : undefined))(idleLive(status));
    if (!change) return;
    try {
      await this.maybeWrite(key, s, room, change.fields, change.minor);
    } catch (err) {
      this.deps.log?.warn({ room: key, err }, 'could not write live status');
    }
  }

  private async ask(url: string): Promise<LiveFacts | undefined> {
    while (this.inFlight >= this.opts.concurrency) await new Promise<void>((r) => this.waiting.push(r));
    this.inFlight++;
    try {
      return parseLive(await this.getJson(url, this.opts.timeoutMs));
    } catch {
      return undefined;
    } finally {
      this.inFlight--;
      this.waiting.shift()?.();
    }
  }
}

/** Kept-alive connections to the rooms' pods (a poll every 10 s reuses its connection). */
const agent = new http.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 256, timeout: 30_000 });
/** An answer larger than this is no /live answer. */
const MAX_BODY = 16 * 1024;

/**
 * GET with node:http (several times cheaper in CPU than fetch, which counts at 100 polls a second),
 * bounded in time and size.
 */
export function httpGetJson(url: string, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let body = '';
    const req = http.get(url, { agent, headers: { accept: 'application/json' } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return fail(new Error(`HTTP ${res.statusCode}`));
      }
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
        if (body.length > MAX_BODY) req.destroy(new Error('answer too large'));
      });
      res.on('end', () => {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(body));
        } catch (err) {
          reject(err as Error);
        }
      });
      res.on('error', fail);
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    function fail(err: Error): void {
      clearTimeout(timer);
      reject(err);
    }
    req.on('error', fail);
  });
}
