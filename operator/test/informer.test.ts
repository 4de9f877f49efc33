// The resilient informer against a small HTTP server that speaks the list/watch protocol and
// misbehaves on purpose: a failing watch must be restarted, a silent one replaced by a relist.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from '@jest/globals';
import { KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { ResilientInformer } from '../src/informer.js';
import { createLogger } from '../src/log.js';

type Obj = KubernetesObject & { metadata: { name: string; namespace: string; resourceVersion: string } };

class FakeApi {
  objects = new Map<string, Obj>();
  rv = 1;
  watches = 0;
  /** When each watch request arrived (ms since the epoch). */
  watchTimes: number[] = [];
  /**
   * What the next watch requests do: fail with a status, answer 410 Gone, answer and then stay silent,
   * never answer at all (a stopped API server), or stream events.
   */
  watchMode: 'fail' | 'gone' | 'silent' | 'hang' | 'stream' = 'stream';
  /** The query of the last watch request. */
  lastQuery = new URLSearchParams();
  private streams = new Set<http.ServerResponse>();
  private hanging = new Set<http.ServerResponse>();
  /** Serves watch requests only; the informer's list function reads `list()` directly. */
  server = http.createServer((req, res) => {
    this.watches++;
    this.watchTimes.push(Date.now());
    this.lastQuery = new URL(req.url ?? '/', 'http://x').searchParams;
    if (this.watchMode === 'fail' || this.watchMode === 'gone') {
      res.statusCode = this.watchMode === 'fail' ? 500 : 410;
      res.end('{}');
      return;
    }
    if (this.watchMode === 'hang') {
      this.hanging.add(res);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.flushHeaders();
    if (this.watchMode === 'stream') this.streams.add(res);
    req.on('close', () => this.streams.delete(res));
  });

  list(): KubernetesListObject<Obj> {
    return {
      apiVersion: 'v1',
      kind: 'ConfigMapList',
      metadata: { resourceVersion: String(this.rv) },
      items: [...this.objects.values()].map((o) => structuredClone(o)),
    };
  }

  put(name: string, type: 'ADDED' | 'MODIFIED' = 'ADDED', announce = true): void {
    const obj: Obj = {
      metadata: {
        name,
        namespace: 'ns',
        resourceVersion: String(++this.rv),
        managedFields: [{ manager: 'kubectl', operation: 'Apply', fieldsV1: { 'f:data': {} } }],
      },
    };
    this.objects.set(name, obj);
    if (announce) this.streams.forEach((s) => s.write(`${JSON.stringify({ type, object: obj })}\n`));
  }

  remove(name: string, announce = true): void {
    const obj = this.objects.get(name);
    this.objects.delete(name);
    this.rv++;
    if (obj && announce)
      this.streams.forEach((s) => s.write(`${JSON.stringify({ type: 'DELETED', object: obj })}\n`));
  }

  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  endStreams(): void {
    this.streams.forEach((s) => s.end());
    this.streams.clear();
  }

  close(): void {
    this.streams.forEach((s) => s.destroy());
    this.hanging.forEach((s) => s.destroy());
    this.server.closeAllConnections();
    this.server.close();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

let api: FakeApi;
let informer: ResilientInformer<Obj> | undefined;
let logs: { level: string; msg: string; [k: string]: unknown }[] = [];

async function setup(
  idleTimeoutMs: number,
  options: { list?: () => Promise<KubernetesListObject<Obj>>; maxBackoffMs?: number } = {},
) {
  api = new FakeApi();
  const server = await api.start();
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser({ name: 'fake', server, skipTLSVerify: true }, { name: 'u' });
  const path = '/api/v1/namespaces/ns/configmaps';
  const events: string[] = [];
  logs = [];
  informer = new ResilientInformer<Obj>(kc, path, options.list ?? (async () => api.list()), undefined, {
    idleTimeoutMs,
    baseBackoffMs: 50,
    maxBackoffMs: options.maxBackoffMs ?? 200,
    log: createLogger('debug', (line) => logs.push(JSON.parse(line) as (typeof logs)[number])),
    name: 'test',
  });
  informer.on('add', (o) => events.push(`add ${o.metadata.name}`));
  informer.on('update', (o) => events.push(`update ${o.metadata.name}`));
  informer.on('delete', (o) => events.push(`delete ${o.metadata.name}`));
  return events;
}

afterEach(async () => {
  await informer?.stop();
  api?.close();
});

describe('ResilientInformer', () => {
  it('lists, syncs, then follows the watch; keeps objects without managedFields', async () => {
    const events = await setup(60_000);
    api.put('a');
    informer?.start();
    await informer?.waitForSync();
    expect(informer?.get('a', 'ns')?.metadata.name).toBe('a');
    expect(informer?.get('a', 'ns')?.metadata).not.toHaveProperty('managedFields'); // (listed)
    await until('watch open', () => api.watches > 0);
    api.put('b');
    api.remove('a');
    await until('events', () => events.length === 3);
    expect(events).toEqual(['add a', 'add b', 'delete a']);
    expect(informer?.list().map((o) => o.metadata.name)).toEqual(['b']);
    expect(informer?.get('b', 'ns')?.metadata).not.toHaveProperty('managedFields'); // (watched)
  });

  it('restarts a failed watch with backoff and resumes', async () => {
    const events = await setup(60_000);
    api.watchMode = 'fail';
    informer?.start();
    await informer?.waitForSync();
    await until('a few failed watches', () => api.watches >= 3);
    expect(informer?.restarts).toBeGreaterThanOrEqual(2);
    api.watchMode = 'stream';
    const watches = api.watches;
    await until('a working watch', () => api.watches > watches);
    await sleep(50);
    api.put('c');
    await until('event after recovery', () => events.includes('add c'));
  });

  it('relists when the watch goes silent, and reports what was deleted unseen', async () => {
    const events = await setup(1000);
    api.put('keep');
    api.put('gone');
    api.watchMode = 'silent';
    informer?.start();
    await informer?.waitForSync();
    // Changes the silent watch never delivers.
    api.remove('gone', false);
    api.put('new', 'ADDED', false);
    await until('relist', () => (informer?.relists ?? 0) >= 1, 5000);
    await until('cache caught up', () => events.includes('delete gone') && events.includes('add new'));
    expect(
      informer
        ?.list()
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(['keep', 'new']);
  });

  it('asks for bookmarks and a server-side timeout, and resumes from the last resourceVersion', async () => {
    await setup(60_000);
    api.put('a');
    informer?.start();
    await until('watch open', () => api.watches > 0);
    expect(api.lastQuery.get('allowWatchBookmarks')).toBe('true');
    expect(Number(api.lastQuery.get('timeoutSeconds'))).toBeGreaterThanOrEqual(300);
    expect(api.lastQuery.get('resourceVersion')).toBe(String(api.rv));
    api.put('b');
    await until('b', () => informer?.get('b', 'ns') !== undefined);
    api.endStreams(); // the server ends the watch: resumed at once from b's version, no relist
    await until('second watch', () => api.watches >= 2);
    expect(api.lastQuery.get('resourceVersion')).toBe(String(api.rv));
    expect(informer?.relists).toBe(0);
  });

  it('keeps serving the old cache during a relist, reports unsynced, then emits only the differences', async () => {
    let release: (() => void) | undefined;
    let lists = 0;
    const events = await setup(1000, {
      list: async () => {
        lists++;
        if (lists > 1) await new Promise<void>((r) => (release = r));
        return api.list();
      },
    });
    api.put('same');
    api.put('changed');
    api.put('gone');
    api.watchMode = 'silent';
    informer?.start();
    await informer?.waitForSync();
    events.length = 0;
    api.put('changed', 'MODIFIED', false);
    api.remove('gone', false);
    api.put('new', 'ADDED', false);
    await until('relist started', () => release !== undefined, 5000);
    // while the list is out: unsynced, and the cache is the previous one, never empty
    expect(informer?.hasSynced).toBe(false);
    expect(
      informer
        ?.list()
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(['changed', 'gone', 'same']);
    release?.();
    await informer?.waitForSync();
    expect(events.sort()).toEqual(['add new', 'delete gone', 'update changed']);
    const relist = logs.find((l) => l.msg === 'relisted');
    expect(relist).toMatchObject({ level: 'info', reason: 'watch silent for 1 s', objects: 3, changed: 3 });
  });

  it('relists after 410 Gone', async () => {
    const events = await setup(60_000);
    api.put('a');
    api.watchMode = 'gone';
    informer?.start();
    await informer?.waitForSync();
    api.put('b', 'ADDED', false);
    await until('relist', () => (informer?.relists ?? 0) >= 1);
    await until('b', () => events.includes('add b'));
    expect(logs.find((l) => l.msg === 'relisted')?.reason).toBe('watch expired (410 Gone)');
  });

  it('times out a watch that never answers (a stopped API server) and tries again', async () => {
    await setup(500);
    api.watchMode = 'hang';
    informer?.start();
    await informer?.waitForSync();
    await until('three watch attempts', () => api.watches >= 3, 5000);
    expect(informer?.state.failing).toBe(true);
    expect(informer?.state.lastError).toMatch(/no response within 500 ms/);
  });

  it('resets its backoff once a watch succeeds', async () => {
    await setup(60_000, { maxBackoffMs: 60_000 });
    api.watchMode = 'fail';
    informer?.start();
    await informer?.waitForSync();
    // 50, 100, 200, 400 ms: the gaps between attempts grow
    await until('five failed watches', () => api.watches >= 5, 5000);
    const t = api.watchTimes;
    expect((t[4] ?? 0) - (t[3] ?? 0)).toBeGreaterThanOrEqual(350);
    api.watchMode = 'stream';
    await until('a working watch', () => informer?.state.failing === false, 5000);
    expect(logs.some((l) => l.msg === 'connected again')).toBe(true);
    api.watchMode = 'fail';
    await sleep(1100); // (a watch that ends within a second counts as failing)
    const before = api.watches;
    api.endStreams();
    await sleep(300);
    // back to the base delay: several attempts within 300 ms, not one 800 ms later
    expect(api.watches - before).toBeGreaterThanOrEqual(2);
  });

  it('logs the first failure as a warning, not every retry, and nothing when stopped', async () => {
    await setup(60_000);
    api.watchMode = 'fail';
    informer?.start();
    await informer?.waitForSync();
    await until('four failed watches', () => api.watches >= 4, 5000);
    expect(logs.filter((l) => l.level === 'warn')).toHaveLength(1);
    api.watchMode = 'stream';
    await until('connected', () => informer?.state.failing === false, 5000);
    const n = logs.length;
    await informer?.stop();
    expect(logs.slice(n).filter((l) => l.level !== 'debug')).toEqual([]);
  });
});
