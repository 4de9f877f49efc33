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
  /** What the next watch requests do: fail with a status, hang silently, or stream events. */
  watchMode: 'fail' | 'silent' | 'stream' = 'stream';
  private streams = new Set<http.ServerResponse>();
  /** Serves watch requests only; the informer's list function reads `list()` directly. */
  server = http.createServer((req, res) => {
    this.watches++;
    if (this.watchMode === 'fail') {
      res.statusCode = 500;
      res.end('{}');
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
      items: [...this.objects.values()],
    };
  }

  put(name: string, type: 'ADDED' | 'MODIFIED' = 'ADDED', announce = true): void {
    const obj: Obj = { metadata: { name, namespace: 'ns', resourceVersion: String(++this.rv) } };
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

  close(): void {
    this.streams.forEach((s) => s.destroy());
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

async function setup(idleTimeoutMs: number) {
  api = new FakeApi();
  const server = await api.start();
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser({ name: 'fake', server, skipTLSVerify: true }, { name: 'u' });
  const path = '/api/v1/namespaces/ns/configmaps';
  const events: string[] = [];
  informer = new ResilientInformer<Obj>(kc, path, async () => api.list(), undefined, {
    idleTimeoutMs,
    baseBackoffMs: 50,
    maxBackoffMs: 200,
    log: createLogger('error'),
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
  it('lists, syncs, then follows the watch', async () => {
    const events = await setup(60_000);
    api.put('a');
    informer?.start();
    await informer?.waitForSync();
    expect(informer?.get('a', 'ns')?.metadata.name).toBe('a');
    await until('watch open', () => api.watches > 0);
    api.put('b');
    api.remove('a');
    await until('events', () => events.length === 3);
    expect(events).toEqual(['add a', 'add b', 'delete a']);
    expect(informer?.list().map((o) => o.metadata.name)).toEqual(['b']);
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
});
