// A cache of one kind of object kept current by @kubernetes/client-node's ListWatch informer, made
// resilient: the client's informer stops on any watch error other than 410 Gone, so it is restarted with
// exponential backoff; and a watch can go silent without closing, so a watchdog relists (a fresh
// ListWatch) when nothing has arrived for a while.
import {
  ListWatch,
  Watch,
  type KubeConfig,
  type KubernetesObject,
  type ListPromise,
} from '@kubernetes/client-node';
import { errorMessage, type Logger } from './log.js';

export type Handler<T> = (obj: T) => void;

export interface InformerOptions {
  /** Relist when no event has arrived for this long. */
  idleTimeoutMs: number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  log: Logger;
  name: string;
}

const objectKey = (o: KubernetesObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class ResilientInformer<T extends KubernetesObject> {
  private lw: ListWatch<T> | undefined;
  private readonly handlers: { add: Handler<T>[]; update: Handler<T>[]; delete: Handler<T>[] } = {
    add: [],
    update: [],
    delete: [],
  };
  private lastActivity = Date.now();
  private failures = 0;
  private stopped = true;
  private restartTimer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private synced = false;
  private syncWaiters: (() => void)[] = [];
  /** Times the informer was restarted after an error, and relisted by the watchdog (for metrics and tests). */
  restarts = 0;
  relists = 0;

  constructor(
    private readonly kc: KubeConfig,
    private readonly path: string,
    private readonly listFn: ListPromise<T>,
    private readonly labelSelector: string | undefined,
    private readonly options: InformerOptions,
  ) {}

  on(verb: 'add' | 'update' | 'delete', handler: Handler<T>): void {
    this.handlers[verb].push(handler);
  }

  get(name: string, namespace: string): T | undefined {
    return this.lw?.get(name, namespace);
  }

  list(namespace?: string): T[] {
    return [...(this.lw?.list(namespace) ?? [])];
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once the first list has filled the cache. */
  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  start(): void {
    this.stopped = false;
    this.connect();
    const check = Math.max(1000, Math.min(this.options.idleTimeoutMs / 4, 30_000));
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastActivity > this.options.idleTimeoutMs) {
        this.options.log.info('watch silent, relisting', { informer: this.options.name });
        this.relists++;
        this.connect();
      }
    }, check);
    this.watchdog.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.watchdog);
    clearTimeout(this.restartTimer);
    await this.lw?.stop();
  }

  /** Replaces the ListWatch with a fresh one, which lists, then watches. */
  private connect(): void {
    let previous = this.lw;
    void previous?.stop();
    this.lastActivity = Date.now();
    const listFn: ListPromise<T> = async () => {
      const list = await this.listFn();
      this.failures = 0;
      this.lastActivity = Date.now();
      // The ListWatch fills its cache right after this promise resolves; report sync after that.
      const replaced = previous;
      previous = undefined;
      setImmediate(() => this.afterList(lw, replaced, list.items));
      return list;
    };
    const lw = new ListWatch<T>(this.path, new Watch(this.kc), listFn, false, this.labelSelector);
    const touch = (verb: 'add' | 'update' | 'delete') => (obj: T) => {
      if (this.lw !== lw) return;
      this.lastActivity = Date.now();
      this.handlers[verb].forEach((h) => h(obj));
    };
    lw.on('add', touch('add'));
    lw.on('update', touch('update'));
    lw.on('delete', touch('delete'));
    lw.on('connect', () => {
      this.lastActivity = Date.now();
    });
    lw.on('error', (err?: unknown) => {
      if (this.lw !== lw || this.stopped) return;
      this.failures++;
      const delay = Math.min(
        (this.options.baseBackoffMs ?? 500) * 2 ** (this.failures - 1),
        this.options.maxBackoffMs ?? 30_000,
      );
      this.options.log.warn('watch failed, restarting', {
        informer: this.options.name,
        error: errorMessage(err),
        retryInMs: delay,
      });
      clearTimeout(this.restartTimer);
      this.restartTimer = setTimeout(() => {
        if (this.stopped || this.lw !== lw) return;
        this.restarts++;
        // Resumes the watch from the last resource version; a 410 Gone makes it relist.
        void lw.start();
      }, delay);
    });
    this.lw = lw;
    void lw.start();
  }

  /** After a relist, objects the old cache had and the new list lacks were deleted while unseen. */
  private afterList(lw: ListWatch<T>, previous: ListWatch<T> | undefined, items: T[]): void {
    if (this.lw !== lw) return;
    if (previous) {
      const present = new Set(items.map(objectKey));
      for (const old of previous.list()) {
        if (!present.has(objectKey(old))) this.handlers.delete.forEach((h) => h(old));
      }
    }
    if (!this.synced) {
      this.synced = true;
      this.syncWaiters.forEach((w) => w());
      this.syncWaiters = [];
    }
  }
}
