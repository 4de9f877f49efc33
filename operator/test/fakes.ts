// In-memory stand-ins for the API server and the caches, so the controller's decisions can be tested in
// milliseconds. The fake API keeps objects with resourceVersions and enforces what the controller relies
// on: a create fails with 409 when the object exists, an apply carrying metadata.resourceVersion fails
// with 409 when the object has moved on. The caches are filled by the test, so they can lag behind.
import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { Cache, CacheFactory } from '../src/controller.js';
import type { InformerHealth } from '../src/informer.js';
import type { ControllerApi, KindInfo } from '../src/kube.js';
import type { LiveStatus } from '../src/live.js';
import { KIND, type StreamRoom, type StreamRoomStatus } from '../src/types.js';

export type Obj = KubernetesObject & { metadata: NonNullable<KubernetesObject['metadata']> };

const apiError = (code: number, message: string) => Object.assign(new Error(message), { code });
const keyOf = (kind: string, ns: string | undefined, name: string | undefined) =>
  `${kind}/${ns ?? ''}/${name ?? ''}`;
const clone = <T>(o: T): T => structuredClone(o);
const withoutUndefined = <T extends object>(o: T): T =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

export class FakeApi implements ControllerApi {
  readonly objects = new Map<string, Obj>();
  readonly writes = { create: 0, apply: 0, delete: 0, status: 0, live: 0, finalizers: 0, event: 0 };
  readonly events: { type: string; reason: string; message: string }[] = [];
  /** Runs before each API call; may throw to fail it. */
  beforeCall: (verb: string, obj?: KubernetesObject) => void = () => undefined;
  private rv = 100;

  /** Stores an object as the API server would (a new resourceVersion); returns the stored copy. */
  put<T extends KubernetesObject>(obj: T): T {
    const stored = clone(obj) as T & Obj;
    stored.metadata = { ...stored.metadata, resourceVersion: String(++this.rv) };
    stored.metadata.uid ??= `uid-${this.rv}`;
    this.objects.set(keyOf(obj.kind ?? '', obj.metadata?.namespace, obj.metadata?.name), stored);
    return clone(stored);
  }

  get<T extends KubernetesObject>(kind: string, namespace: string, name: string): T | undefined {
    const o = this.objects.get(keyOf(kind, namespace, name));
    return o ? (clone(o) as unknown as T) : undefined;
  }

  async list<T extends KubernetesObject>(k: KindInfo, namespace?: string): Promise<KubernetesListObject<T>> {
    this.beforeCall('list');
    const items = [...this.objects.values()].filter(
      (o) => o.kind === k.kind && (!namespace || o.metadata.namespace === namespace),
    );
    return { apiVersion: 'v1', kind: `${k.kind}List`, metadata: {}, items: clone(items) as unknown as T[] };
  }

  async read<T extends KubernetesObject>(obj: KubernetesObject): Promise<T | undefined> {
    this.beforeCall('read', obj);
    return this.get<T>(obj.kind ?? '', obj.metadata?.namespace ?? '', obj.metadata?.name ?? '');
  }

  async create<T extends KubernetesObject>(obj: T): Promise<T> {
    this.beforeCall('create', obj);
    this.writes.create++;
    if (this.get(obj.kind ?? '', obj.metadata?.namespace ?? '', obj.metadata?.name ?? '')) {
      throw apiError(409, `${obj.kind} ${obj.metadata?.name} already exists`);
    }
    return this.put(obj);
  }

  async apply<T extends KubernetesObject>(obj: T): Promise<T> {
    this.beforeCall('apply', obj);
    this.writes.apply++;
    const current = this.get<Obj>(obj.kind ?? '', obj.metadata?.namespace ?? '', obj.metadata?.name ?? '');
    const precondition = obj.metadata?.resourceVersion;
    if (precondition && precondition !== current?.metadata.resourceVersion) {
      throw apiError(409, `the object has been modified (resourceVersion ${precondition})`);
    }
    const { resourceVersion: _rv, ...metadata } = obj.metadata ?? {};
    return this.put({ ...current, ...obj, metadata: { ...current?.metadata, ...metadata } });
  }

  async delete(obj: KubernetesObject): Promise<void> {
    this.beforeCall('delete', obj);
    this.writes.delete++;
    this.objects.delete(keyOf(obj.kind ?? '', obj.metadata?.namespace, obj.metadata?.name));
  }

  async patchRoomStatus(room: StreamRoom, status: StreamRoomStatus): Promise<void> {
    this.beforeCall('status', room);
    this.writes.status++;
    const current = this.get<StreamRoom>(room.kind, room.metadata.namespace, room.metadata.name);
    // a merge patch: the live poller's fields stay
    const { live, viewers, lastActivityTime } = current?.status ?? {};
    if (current)
      this.put({ ...current, status: withoutUndefined({ live, viewers, lastActivityTime, ...status }) });
  }

  async patchRoomLive(
    room: { metadata: { name: string; namespace: string } },
    live: LiveStatus,
  ): Promise<void> {
    this.writes.live++;
    const current = this.get<StreamRoom>(KIND, room.metadata.namespace, room.metadata.name);
    if (!current) throw apiError(404, `streamroom ${room.metadata.name} not found`);
    this.put({ ...current, status: { ...current.status, ...live } });
  }

  async setFinalizers(room: StreamRoom, finalizers: string[]): Promise<void> {
    this.beforeCall('finalizers', room);
    this.writes.finalizers++;
    const current = this.get<StreamRoom>(room.kind, room.metadata.namespace, room.metadata.name);
    if (!current) throw apiError(404, `streamroom ${room.metadata.name} not found`);
    if (room.metadata.resourceVersion && room.metadata.resourceVersion !== current.metadata.resourceVersion) {
      throw apiError(409, 'the object has been modified');
    }
    this.put({ ...current, metadata: { ...current.metadata, finalizers } });
  }

  async event(_room: StreamRoom, type: string, reason: string, message: string): Promise<void> {
    this.writes.event++;
    this.events.push({ type, reason, message });
  }

  async nodeAddress(): Promise<string | undefined> {
    return '192.0.2.10';
  }
}

type Verb = 'add' | 'update' | 'delete';

/** A cache the test fills: it shows only what the test put in it, however the API has moved on. */
export class FakeCache<T extends KubernetesObject> implements Cache<T> {
  readonly items = new Map<string, T>();
  private readonly handlers: Record<Verb, ((o: T) => void)[]> = { add: [], update: [], delete: [] };
  private waiters: (() => void)[] = [];
  private isSynced = true;
  health: (InformerHealth & { name: string })[] = [];
  restarts = 0;

  constructor(readonly kind: string) {}

  /** Shows this copy of the object (an event, as a watch would deliver it). */
  set(obj: T): void {
    const key = `${obj.metadata?.namespace}/${obj.metadata?.name}`;
    const verb = this.items.has(key) ? 'update' : 'add';
    this.items.set(key, clone(obj));
    this.handlers[verb].forEach((h) => h(obj));
  }

  remove(obj: T): void {
    if (this.items.delete(`${obj.metadata?.namespace}/${obj.metadata?.name}`)) {
      this.handlers.delete.forEach((h) => h(obj));
    }
  }

  setSynced(synced: boolean): void {
    this.isSynced = synced;
    if (synced) {
      const w = this.waiters;
      this.waiters = [];
      w.forEach((f) => f());
    }
  }

  get synced(): boolean {
    return this.isSynced;
  }

  get(name: string, namespace: string): T | undefined {
    const o = this.items.get(`${namespace}/${name}`);
    return o ? clone(o) : undefined;
  }

  list(): T[] {
    return [...this.items.values()].map(clone);
  }

  on(verb: Verb, handler: (obj: T) => void): void {
    this.handlers[verb].push(handler);
  }

  start(): void {}

  async stop(): Promise<void> {}

  waitForSync(): Promise<void> {
    if (this.isSynced) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }
}

/** One fake cache per kind, and the factory the controller takes. */
export class FakeCaches {
  readonly byKind = new Map<string, FakeCache<KubernetesObject>>();
  readonly factory: CacheFactory = <T extends KubernetesObject>(kind: KindInfo) => {
    const cache = new FakeCache<KubernetesObject>(kind.kind);
    this.byKind.set(kind.kind, cache);
    return cache as unknown as Cache<T>;
  };

  of(kind: string): FakeCache<KubernetesObject> {
    const c = this.byKind.get(kind);
    if (!c) throw new Error(`no cache for ${kind}`);
    return c;
  }

  /** Makes every cache show exactly what the API has (a watch that has caught up). */
  catchUp(api: FakeApi): void {
    for (const [kind, cache] of this.byKind) {
      const wanted = [...api.objects.values()].filter((o) => o.kind === kind);
      for (const o of cache.list()) {
        if (!wanted.some((w) => w.metadata.name === o.metadata?.name)) cache.remove(o);
      }
      for (const o of wanted) {
        const mine = cache.get(o.metadata.name ?? '', o.metadata.namespace ?? '');
        if (mine?.metadata?.resourceVersion !== o.metadata.resourceVersion) cache.set(clone(o));
      }
    }
  }
}
