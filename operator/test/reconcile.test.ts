// The reconciler's everyday decisions, table by table, against the in-memory API and caches of
// test/fakes.ts (no cluster: the whole file runs in well under a second): what a new room costs, that an
// unchanged room costs nothing (also while the caches lag behind the operator's own writes), name
// conflicts, one Event per problem, children no longer wanted, a child deleted by someone else, a room
// deleted while it is being reconciled, and status written only when it changes.
import { beforeEach, describe, expect, it } from '@jest/globals';
import type { KubernetesObject, V1Deployment } from '@kubernetes/client-node';
import { Controller, ReconcileError } from '../src/controller.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import type { StreamRoom, StreamRoomSpec } from '../src/types.js';
import { FakeApi, FakeCaches } from './fakes.js';

const NS = 'team';
let api: FakeApi;
let caches: FakeCaches;
let controller: Controller;

beforeEach(() => {
  api = new FakeApi();
  caches = new FakeCaches();
  controller = new Controller(
    { api, caches: caches.factory },
    loadConfig(['--default-image', 'room:1', '--health-address', ''], {}),
    createLogger('error'),
  );
});

/** A room as the user applied it, in the API and (as a watch would deliver it) in the cache. */
function apply(name: string, spec: StreamRoomSpec = {}): StreamRoom {
  const existing = api.get<StreamRoom>('StreamRoom', NS, name);
  const room = api.put<StreamRoom>({
    apiVersion: 'streamroom.dev/v1alpha1',
    kind: 'StreamRoom',
    metadata: {
      ...(existing?.metadata ?? { name, namespace: NS }),
      generation: (existing?.metadata.generation ?? 0) + 1,
    },
    spec,
    ...(existing?.status ? { status: existing.status } : {}),
  });
  caches.of('StreamRoom').set(room);
  return room;
}

const reconcile = (name: string) => controller.reconcile(`${NS}/${name}`);
/** What the room's objects are in the API: "Kind/name", sorted. */
const children = (name: string) =>
  [...api.objects.values()]
    .filter((o) => o.metadata.ownerReferences?.some((r) => r.name === name))
    .map((o) => `${o.kind}/${o.metadata.name}`)
    .sort();
const writes = () => ({ ...api.writes });
const delta = (before: Record<string, number>) =>
  Object.fromEntries(
    Object.entries(api.writes)
      .map(([k, v]) => [k, v - (before[k] ?? 0)])
      .filter(([, v]) => v !== 0),
  );

/** The kubelet's part: every Deployment of the room reports its replicas ready. */
function podsReady(): void {
  for (const o of [...api.objects.values()]) {
    if (o.kind !== 'Deployment') continue;
    const d = o as V1Deployment;
    const replicas = d.spec?.replicas ?? 1;
    api.put<KubernetesObject>({
      ...d,
      status: {
        observedGeneration: d.metadata?.generation ?? 1,
        replicas,
        readyReplicas: replicas,
        availableReplicas: replicas,
        updatedReplicas: replicas,
      },
    } as KubernetesObject);
  }
}

describe('a new room', () => {
  it.each([
    [
      'one replica at most: no Redis',
      { replicas: { max: 1 } },
      ['Deployment/a', 'HorizontalPodAutoscaler/a', 'NetworkPolicy/a', 'Secret/a-keys', 'Service/a'],
    ],
    [
      'the default (up to 10 replicas): its own Redis',
      {},
      [
        'Deployment/a',
        'Deployment/a-redis',
        'HorizontalPodAutoscaler/a',
        'NetworkPolicy/a',
        'NetworkPolicy/a-redis',
        'Secret/a-keys',
        'Service/a',
        'Service/a-redis',
      ],
    ],
  ])('%s: every child in one reconcile, one Event naming them all', async (_, spec, expected) => {
    apply('a', spec);
    await reconcile('a');
    expect(children('a')).toEqual(expected);
    // the keys are created (never applied over), the rest applied
    expect(delta({})).toMatchObject({ create: 1, apply: expected.length - 1, event: 1 });
    expect(api.events).toHaveLength(1);
    expect(api.events[0]).toMatchObject({ type: 'Normal', reason: 'Created' });
    for (const c of expected) expect(api.events[0]?.message).toContain(c.replace('/', ' '));
    // on its way (no pod ready yet): no status write yet, it comes when the room settles
    expect(api.writes.status).toBe(0);
    podsReady();
    caches.catchUp(api);
    await reconcile('a');
    expect(api.get<StreamRoom>('StreamRoom', NS, 'a')?.status?.phase).toBe('Ready');
    expect(api.writes.status).toBe(1);
  });
});

describe('an unchanged room costs nothing', () => {
  it.each([
    ['once the caches have caught up', true],
    ['while the caches still lag behind its own writes', false],
  ])('%s', async (_, caughtUp) => {
    apply('b', { replicas: { max: 1 } });
    await reconcile('b');
    podsReady();
    caches.catchUp(api);
    await reconcile('b'); // Ready: status written
    if (caughtUp) caches.catchUp(api);
    const before = writes();
    for (let i = 0; i < 3; i++) await reconcile('b');
    expect(delta(before)).toEqual({});
  });
});

describe('names and problems', () => {
  it('reports a name taken by another object once, creates nothing, and recovers when it is freed', async () => {
    api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'c', namespace: NS } });
    apply('c', { replicas: { max: 1 } });
    for (let i = 0; i < 3; i++) {
      const failure = await reconcile('c').catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(ReconcileError);
      expect((failure as ReconcileError).reason).toBe('NameConflict');
      caches.catchUp(api);
    }
    // nothing of the room's, the user's Service untouched, one Warning however often it was retried
    expect(children('c')).toEqual([]);
    expect(api.get<KubernetesObject>('Service', NS, 'c')?.metadata?.ownerReferences).toBeUndefined();
    expect(api.events.filter((e) => e.type === 'Warning')).toEqual([
      expect.objectContaining({ reason: 'NameConflict' }),
    ]);
    const status = api.get<StreamRoom>('StreamRoom', NS, 'c')?.status;
    expect(status?.phase).toBe('Failed');
    expect(status?.conditions?.find((c) => c.type === 'Degraded')).toMatchObject({
      status: 'True',
      reason: 'NameConflict',
    });
    // freed: the room comes up
    await api.delete({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'c', namespace: NS } });
    caches.catchUp(api);
    await reconcile('c');
    expect(children('c')).toContain('Service/c');
  });

  it('records a different problem again, and the same one only once', async () => {
    apply('d', { replicas: { max: 1 } });
    let fail: Error | undefined = new Error('etcd is slow');
    api.beforeCall = (verb) => {
      if (verb === 'apply' && fail) throw fail;
    };
    for (const message of ['etcd is slow', 'etcd is slow', 'etcd is down', 'etcd is down']) {
      fail = new Error(message);
      await expect(reconcile('d')).rejects.toThrow(message);
      caches.catchUp(api);
    }
    expect(api.events.filter((e) => e.type === 'Warning').map((e) => e.message)).toEqual([
      'etcd is slow',
      'etcd is down',
    ]);
    fail = undefined;
    await reconcile('d');
    expect(children('d')).toContain('Deployment/d');
  });
});

describe('children that change hands', () => {
  it('deletes the children a room no longer wants, in one Event', async () => {
    apply('e');
    await reconcile('e');
    caches.catchUp(api);
    expect(children('e')).toContain('Deployment/e-redis');
    apply('e', { replicas: { max: 1 } }); // one replica: no Redis any more
    await reconcile('e');
    expect(children('e')).not.toEqual(expect.arrayContaining(['Deployment/e-redis']));
    expect(children('e').filter((c) => c.endsWith('-redis'))).toEqual([]);
    expect(api.events.at(-1)).toMatchObject({ reason: 'Updated' });
    expect(api.events.at(-1)?.message).toMatch(
      /Deleted .*(Deployment e-redis|Service e-redis|NetworkPolicy e-redis)/,
    );
  });

  it('recreates a child someone else deleted', async () => {
    apply('f', { replicas: { max: 1 } });
    await reconcile('f');
    caches.catchUp(api);
    const uid = api.get<KubernetesObject>('Deployment', NS, 'f')?.metadata?.uid;
    await api.delete({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'f', namespace: NS } });
    caches.catchUp(api); // the watch reports the deletion
    const before = writes();
    await reconcile('f');
    const again = api.get<KubernetesObject>('Deployment', NS, 'f');
    expect(again?.metadata?.uid).not.toBe(uid);
    expect(delta(before)).toEqual({ apply: 1, event: 1 });
    expect(api.events.at(-1)).toMatchObject({ reason: 'Created', message: 'Created Deployment f' });
  });

  it('copes with a room deleted while it is being reconciled, and then leaves it alone', async () => {
    const room = apply('g', { replicas: { max: 1 } });
    let deleted = false;
    api.beforeCall = (verb) => {
      if (verb === 'apply' && !deleted) {
        deleted = true;
        void api.delete(room); // the user deletes the room between two of the operator's writes
      }
    };
    await reconcile('g').catch(() => undefined); // may fail half-way; it must not crash
    caches.of('StreamRoom').remove(room); // the watch reports the deletion
    caches.catchUp(api);
    const before = writes();
    await reconcile('g');
    expect(delta(before)).toEqual({});
    expect(api.get('StreamRoom', NS, 'g')).toBeUndefined();
  });
});

describe('status', () => {
  it('is written when what it says changes, and only then', async () => {
    apply('h', { replicas: { max: 1 } });
    await reconcile('h');
    podsReady();
    caches.catchUp(api);
    await reconcile('h');
    caches.catchUp(api);
    const ready = writes();
    await reconcile('h');
    expect(delta(ready)).toEqual({});
    // the HPA scales to 3, two pods ready so far: the ready count changes
    const d = api.get<V1Deployment>('Deployment', NS, 'h') as V1Deployment;
    api.put({ ...d, status: { ...d.status, replicas: 3, readyReplicas: 2, availableReplicas: 2 } });
    caches.catchUp(api);
    await reconcile('h');
    expect(delta(ready)).toEqual({ status: 1 });
    expect(api.get<StreamRoom>('StreamRoom', NS, 'h')?.status?.readyReplicas).toBe(2);
  });
});
