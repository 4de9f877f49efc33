import { describe, expect, it } from '@jest/globals';
import { WorkQueue } from '../src/workqueue.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('WorkQueue', () => {
  it('de-duplicates a key added many times while it waits', async () => {
    const seen: string[] = [];
    const q = new WorkQueue({ workers: 1, handler: async (k) => void seen.push(k) });
    for (let i = 0; i < 5; i++) q.add('ns/a');
    q.add('ns/b');
    q.add('ns/a');
    q.start();
    await q.idle();
    expect(seen).toEqual(['ns/a', 'ns/b']);
  });

  it('never runs one key twice at once, and runs it again when added while running', async () => {
    let running = 0;
    let maxRunning = 0;
    let runs = 0;
    const gate = deferred();
    const q = new WorkQueue({
      workers: 4,
      handler: async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        runs++;
        if (runs === 1) await gate.promise;
        running--;
      },
    });
    q.start();
    q.add('k');
    await sleep(5);
    q.add('k');
    q.add('k');
    await sleep(5);
    expect(runs).toBe(1);
    gate.resolve();
    await q.idle();
    expect(maxRunning).toBe(1);
    expect(runs).toBe(2);
  });

  it('runs different keys concurrently up to the worker count', async () => {
    let running = 0;
    let maxRunning = 0;
    const q = new WorkQueue({
      workers: 3,
      handler: async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await sleep(20);
        running--;
      },
    });
    q.start();
    for (let i = 0; i < 10; i++) q.add(`k${i}`);
    await q.idle();
    expect(maxRunning).toBe(3);
  });

  it('retries a failing key with exponential backoff and resets it on success', async () => {
    const times: number[] = [];
    const q = new WorkQueue({
      workers: 1,
      baseDelayMs: 20,
      maxDelayMs: 1000,
      handler: async () => {
        times.push(Date.now());
        if (times.length < 4) throw new Error('boom');
      },
    });
    q.start();
    q.add('k');
    const deadline = Date.now() + 3000;
    while (times.length < 4 && Date.now() < deadline) await sleep(10);
    expect(times).toHaveLength(4);
    const gaps = times.slice(1).map((t, i) => t - (times[i] ?? 0));
    expect(gaps[0]).toBeGreaterThanOrEqual(18);
    expect(gaps[1]).toBeGreaterThanOrEqual(38);
    expect(gaps[2]).toBeGreaterThanOrEqual(78);
    expect(q.retries('k')).toBe(0);
    await q.shutdown();
  });

  it('caps the backoff', () => {
    const q = new WorkQueue({
      workers: 1,
      baseDelayMs: 100,
      maxDelayMs: 1000,
      handler: async () => undefined,
    });
    expect([1, 2, 3, 4, 5, 10].map((n) => q.backoff(n))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it('reports errors with the retry delay', async () => {
    const errors: [string, number][] = [];
    const q = new WorkQueue({
      workers: 1,
      baseDelayMs: 50,
      handler: async () => {
        throw new Error('nope');
      },
      onError: (key, _err, delay) => errors.push([key, delay]),
    });
    q.start();
    q.add('x');
    await sleep(30);
    expect(errors).toEqual([['x', 50]]);
    await q.shutdown();
  });

  it('shutdown waits for running keys and drops the rest', async () => {
    const done: string[] = [];
    const q = new WorkQueue({
      workers: 1,
      handler: async (k) => {
        await sleep(20);
        done.push(k);
      },
    });
    q.start();
    q.add('a');
    q.add('b');
    await sleep(5);
    await q.shutdown();
    expect(done).toEqual(['a']);
    q.add('c');
    await sleep(30);
    expect(done).toEqual(['a']);
  });
});
