// A work queue keyed by string (namespace/name), in the manner of client-go's workqueue:
// - a key waiting in the queue is held once however often it is added (de-duplication);
// - a key is never handled by two workers at once: added while being handled, it runs again after;
// - a failed key is retried with exponential backoff; success resets its backoff;
// - up to `workers` keys are handled at the same time.

import type { QueueObserver } from './metrics.js';

export interface WorkQueueOptions {
  workers: number;
  handler: (key: string) => Promise<void>;
  /** First retry delay after a failure, doubled on each further failure. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  onError?: (key: string, err: unknown, retryInMs: number) => void;
  /** Metrics: adds, waits, work durations, retries. */
  observer?: QueueObserver;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  /** Keys waiting to be handled (in `queue`, or to be re-queued once their handling ends). */
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  /** When each waiting key was added (for the time it waits). */
  private readonly addedAt = new Map<string, number>();
  private running = false;
  private shuttingDown = false;
  private idleWaiters: (() => void)[] = [];
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(private readonly options: WorkQueueOptions) {
    if (options.workers < 1) throw new Error('workers must be at least 1');
    this.baseDelayMs = options.baseDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 5 * 60_000;
  }

  get length(): number {
    return this.queue.length;
  }

  get active(): number {
    return this.processing.size;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    this.addedAt.set(key, performance.now());
    this.options.observer?.added();
    if (this.processing.has(key)) return;
    this.queue.push(key);
    this.pump();
  }

  /** Adds the key after a delay; of several delayed adds of one key, the earliest wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) return this.add(key);
    const at = Date.now() + delayMs;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** How many times in a row the key has failed. */
  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  backoff(failures: number): number {
    return Math.min(this.baseDelayMs * 2 ** Math.max(0, failures - 1), this.maxDelayMs);
  }

  start(): void {
    this.running = true;
    this.pump();
  }

  /** Stops taking keys, cancels retries, and resolves once the keys being handled are done. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    this.running = false;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.queue.length = 0;
    this.dirty.clear();
    this.addedAt.clear();
    await this.idle();
  }

  /** Resolves when nothing is being handled and nothing waits in the queue. */
  idle(): Promise<void> {
    if (this.processing.size === 0 && (this.queue.length === 0 || !this.running)) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (this.running && this.processing.size < this.options.workers && this.queue.length > 0) {
      const key = this.queue.shift() as string;
      this.dirty.delete(key);
      this.processing.add(key);
      const now = performance.now();
      this.options.observer?.started((now - (this.addedAt.get(key) ?? now)) / 1000);
      this.addedAt.delete(key);
      void this.handle(key, now);
    }
  }

  private async handle(key: string, started: number): Promise<void> {
    try {
      await this.options.handler(key);
      this.failures.delete(key);
    } catch (err) {
      const failures = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, failures);
      const delay = this.backoff(failures);
      this.options.onError?.(key, err, delay);
      this.options.observer?.retried();
      this.addAfter(key, delay);
    } finally {
      this.options.observer?.finished((performance.now() - started) / 1000);
      this.processing.delete(key);
      if (this.dirty.has(key) && !this.shuttingDown) this.queue.push(key);
      this.pump();
      if (this.processing.size === 0 && (this.queue.length === 0 || !this.running)) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        waiters.forEach((w) => w());
      }
    }
  }
}
