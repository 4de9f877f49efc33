// A cache of one kind of object, kept current by list + watch, in the manner of client-go's reflector:
// - a relist (first start, 410 Gone, a watch silent for too long) replaces the cache in place, once the
//   new list has landed: readers never see an empty cache, and only real differences become events;
//   while a relist is under way the informer reports unsynced, so the controller's workers wait;
// - a watch that fails is resumed from the last resourceVersion after a backoff (200 ms doubling to
//   3 s), which resets as soon as a list or a watch succeeds, so the operator is back within seconds of
//   the API server;
// - every watch asks the server to end it after a few minutes (timeoutSeconds) and sends bookmarks,
//   and is aborted here when no byte at all has arrived for the idle timeout (a half-open connection
//   or a stopped API server), which client-node 1.4's Watch never does (its timeout signal is
//   overwritten by its own abort signal);
// - objects are kept without metadata.managedFields (nothing here reads them; controller-runtime's
//   caches drop them too): with 1,000 rooms they were a third of the operator's peak memory.
import http from 'node:http';
import https from 'node:https';
import { createInterface } from 'node:readline';
import type { KubeConfig, KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import { errorMessage, type Logger } from './log.js';

export type Handler<T> = (obj: T) => void;
export type Verb = 'add' | 'update' | 'delete';

export interface InformerOptions<T> {
  /** Abort a watch (and relist) when nothing, not even a bookmark, has arrived for this long. */
  idleTimeoutMs: number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** A list that has not answered after this long counts as failed. */
  listTimeoutMs?: number;
  /** Server-side watch timeout; a random value in [n, 2n) spreads reconnects (client-go: 5..10 min). */
  watchTimeoutSeconds?: number;
  log: Logger;
  name: string;
  /**
   * Turns an object as the watch delivers it (JSON) into the form the list gives (client-node's
   * models, whose field names differ where JSON's are reserved words, e.g. a NetworkPolicy's `from`).
   */
  fromJson?: (obj: T) => T;
}

/** How the informer stands with the API server, for readiness and metrics. */
export interface InformerHealth {
  synced: boolean;
  /** The last list or watch failed and nothing has succeeded since. */
  failing: boolean;
  lastError?: string;
  /** When the current run of failures started (ms since the epoch). */
  failingSince?: number;
}

type WatchEnd =
  | { kind: 'closed' } // the server ended it (timeoutSeconds) or the connection closed cleanly
  | { kind: 'gone' } // 410: the resourceVersion is too old, relist
  | { kind: 'idle' } // nothing arrived for idleTimeoutMs
  | { kind: 'stopped' } // stop() was called
  | { kind: 'error'; error: unknown };

const CONNECT_TIMEOUT_MS = 30_000;
const keyOf = (o: KubernetesObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
/** The object as the cache keeps it: without metadata.managedFields. */
function slim<T extends KubernetesObject>(obj: T): T {
  if (obj.metadata?.managedFields) delete obj.metadata.managedFields;
  return obj;
}
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export class ResilientInformer<T extends KubernetesObject> {
  private cache = new Map<string, T>();
  private resourceVersion = '';
  private readonly handlers: Record<Verb, Handler<T>[]> = { add: [], update: [], delete: [] };
  private stopped = true;
  private synced = false;
  private syncWaiters: (() => void)[] = [];
  private failures = 0;
  private health: InformerHealth = { synced: false, failing: false };
  private abortWatch: (() => void) | undefined;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  /** Watches resumed after a failure, and relists (for metrics and tests). */
  restarts = 0;
  relists = 0;

  constructor(
    private readonly kc: KubeConfig,
    private readonly path: string,
    private readonly listFn: () => Promise<KubernetesListObject<T>>,
    private readonly labelSelector: string | undefined,
    private readonly options: InformerOptions<T>,
  ) {}

  get name(): string {
    return this.options.name;
  }

  on(verb: Verb, handler: Handler<T>): void {
    this.handlers[verb].push(handler);
  }

  get(name: string, namespace: string): T | undefined {
    return this.cache.get(`${namespace}/${name}`);
  }

  list(namespace?: string): T[] {
    const all = [...this.cache.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  /** The cache reflects a completed list (false until the first list lands and during a relist). */
  get hasSynced(): boolean {
    return this.synced;
  }

  get state(): InformerHealth {
    return { ...this.health, synced: this.synced };
  }

  /** Resolves once the cache is synced (at once when it is). */
  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abortWatch?.();
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    let relistReason = 'start';
    while (!this.stopped) {
      if (relistReason) {
        if (!(await this.relist(relistReason))) {
          await this.backoff();
          continue;
        }
        relistReason = '';
      }
      const startedAt = Date.now();
      const end = await this.watch();
      if (end.kind === 'stopped') return;
      if (end.kind === 'gone') relistReason = 'watch expired (410 Gone)';
      else if (end.kind === 'idle') {
        relistReason = `watch silent for ${Math.round(this.options.idleTimeoutMs / 1000)} s`;
      } else if (end.kind === 'error' || Date.now() - startedAt < 1000) {
        // (a watch that ends at once, even cleanly, must not spin)
        if (end.kind === 'error') this.failed('watch', end.error);
        this.restarts++;
        await this.backoff();
      }
    }
  }

  /** Lists and replaces the cache in place; false when the list failed. */
  private async relist(reason: string): Promise<boolean> {
    const first = this.relists === 0 && this.cache.size === 0 && reason === 'start';
    this.setSynced(false);
    const started = Date.now();
    let list: KubernetesListObject<T>;
    try {
      list = await withTimeout(this.listFn(), this.options.listTimeoutMs ?? 60_000, 'list');
    } catch (err) {
      this.failed('list', err);
      return false;
    }
    if (this.stopped) return false;
    if (!first) this.relists++;
    const fresh = new Map<string, T>();
    for (const obj of list.items) fresh.set(keyOf(obj), slim(obj));
    const previous = this.cache;
    this.cache = fresh;
    this.resourceVersion = list.metadata?.resourceVersion ?? '';
    this.succeeded();
    this.setSynced(true);
    let changed = 0;
    for (const [key, obj] of fresh) {
      const old = previous.get(key);
      if (!old) this.emit('add', obj);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.emit('update', obj);
      else continue;
      changed++;
    }
    for (const [key, old] of previous) {
      if (!fresh.has(key)) {
        this.emit('delete', old);
        changed++;
      }
    }
    this.options.log.info(
      {
        informer: this.options.name,
        ...(first ? {} : { reason }),
        objects: fresh.size,
        ...(first ? {} : { changed }),
        ms: Date.now() - started,
      },
      first ? 'listed' : 'relisted',
    );
    return true;
  }

  /** One watch from the current resourceVersion, until it ends. */
  private async watch(): Promise<WatchEnd> {
    const base = this.options.watchTimeoutSeconds ?? 300;
    const opts: https.RequestOptions = { method: 'GET' };
    let url: URL;
    try {
      url = new URL(`${this.kc.getCurrentCluster()?.server ?? ''}${this.path}`);
      const params: Record<string, string> = {
        watch: 'true',
        allowWatchBookmarks: 'true',
        resourceVersion: this.resourceVersion,
        timeoutSeconds: String(base + Math.floor(Math.random() * base)),
        ...(this.labelSelector ? { labelSelector: this.labelSelector } : {}),
      };
      for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
      await this.kc.applyToHTTPSOptions(opts);
    } catch (err) {
      return { kind: 'error', error: err };
    }
    if (this.stopped) return { kind: 'stopped' };
    return new Promise<WatchEnd>((resolve) => {
      let ended = false;
      let timer: NodeJS.Timeout | undefined;
      const end = (result: WatchEnd) => {
        if (ended) return;
        ended = true;
        clearTimeout(timer);
        this.abortWatch = undefined;
        req.destroy();
        resolve(this.stopped ? { kind: 'stopped' } : result);
      };
      const arm = (ms: number, result: WatchEnd) => {
        clearTimeout(timer);
        timer = setTimeout(() => end(result), ms);
        timer.unref();
      };
      const idle = () => arm(this.options.idleTimeoutMs, { kind: 'idle' });
      const req = (url.protocol === 'https:' ? https : http).request(url, opts, (res) => {
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            if (res.statusCode === 410) return end({ kind: 'gone' });
            const body = Buffer.concat(chunks).toString().slice(0, 300);
            const error = Object.assign(new Error(`HTTP ${res.statusCode}: ${body}`), {
              code: res.statusCode,
            });
            end({ kind: 'error', error });
          });
          return;
        }
        this.succeeded();
        idle();
        res.on('data', idle);
        res.on('error', (error) => end({ kind: 'error', error }));
        res.on('close', () => end({ kind: 'closed' }));
        const lines = createInterface({ input: res, crlfDelay: Infinity });
        lines.on('error', (error) => end({ kind: 'error', error }));
        lines.on('line', (line) => {
          if (ended || !line.trim()) return;
          const result = this.onWatchLine(line);
          if (result) end(result);
        });
      });
      req.on('error', (error) => end({ kind: 'error', error }));
      this.abortWatch = () => end({ kind: 'stopped' });
      // until the response starts, a connect timeout; then the idle timeout
      const connectMs = Math.min(CONNECT_TIMEOUT_MS, this.options.idleTimeoutMs);
      arm(connectMs, { kind: 'error', error: new Error(`no response within ${connectMs} ms`) });
      req.end();
    });
  }

  /** Applies one watch event to the cache; a result ends the watch. */
  private onWatchLine(line: string): WatchEnd | undefined {
    let event: { type?: string; object?: T & { code?: number; message?: string } };
    try {
      event = JSON.parse(line) as typeof event;
    } catch {
      return { kind: 'error', error: new Error(`watch: unparsable event: ${line.slice(0, 200)}`) };
    }
    if (!event.object) return undefined;
    if (event.type === 'ERROR') {
      if (event.object.code === 410) return { kind: 'gone' };
      return { kind: 'error', error: new Error(`watch: ${event.object.message ?? line.slice(0, 200)}`) };
    }
    const obj = slim(this.options.fromJson ? this.options.fromJson(event.object) : event.object);
    const rv = obj.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
    const key = keyOf(obj);
    if (event.type === 'ADDED' || event.type === 'MODIFIED') {
      const old = this.cache.get(key);
      this.cache.set(key, obj);
      if (!old) this.emit('add', obj);
      else if (old.metadata?.resourceVersion !== rv) this.emit('update', obj);
    } else if (event.type === 'DELETED') {
      if (this.cache.delete(key)) this.emit('delete', obj);
    }
    return undefined;
  }

  private emit(verb: Verb, obj: T): void {
    for (const h of this.handlers[verb]) h(obj);
  }

  private setSynced(synced: boolean): void {
    this.synced = synced;
    if (!synced) return;
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    waiters.forEach((w) => w());
  }

  private failed(what: 'list' | 'watch', err: unknown): void {
    this.failures++;
    const error = errorMessage(err);
    const failingSince = this.health.failingSince ?? Date.now();
    this.health = { synced: this.synced, failing: true, lastError: `${what}: ${error}`, failingSince };
    // the first failure of a run, then every tenth (an outage must not flood the log)
    const level = this.failures % 10 === 1 ? 'warn' : 'debug';
    this.options.log[level](
      { informer: this.options.name, error, retryInMs: this.backoffMs(), failures: this.failures },
      `${what} failed`,
    );
  }

  private succeeded(): void {
    if (this.health.failing) {
      this.options.log.info(
        {
          informer: this.options.name,
          afterMs: Date.now() - (this.health.failingSince ?? Date.now()),
        },
        'connected again',
      );
    }
    this.failures = 0;
    this.health = { synced: this.synced, failing: false };
  }

  private backoffMs(): number {
    const base = this.options.baseBackoffMs ?? 200;
    return Math.min(base * 2 ** Math.max(0, this.failures - 1), this.options.maxBackoffMs ?? 3000);
  }

  /** Waits out the backoff (stop() cuts it short). */
  private async backoff(): Promise<void> {
    await Promise.race([sleep(this.backoffMs()), new Promise<void>((r) => (this.wake = r))]);
    this.wake = undefined;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
