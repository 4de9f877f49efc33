// spec.hibernation: what a sleeping room wants (builders), how its status reads (status), the waker's
// answers (waker.ts), and the controller's decisions to put a room to sleep and wake it (fakes).
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeEach, describe, expect, it } from '@jest/globals';
import type {
  KubernetesObject,
  V1Deployment,
  V1EndpointSlice,
  V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';
import { desiredChildren, wakerSliceName, type BuildOptions } from '../src/builders.js';
import { loadConfig } from '../src/config.js';
import { Controller } from '../src/controller.js';
import { resolveSpec } from '../src/defaults.js';
import { createLogger } from '../src/log.js';
import { computeStatus } from '../src/status.js';
import type { StreamRoom } from '../src/types.js';
import {
  lookupHost,
  roomHosts,
  WAKE_PATH,
  WAKER_HEADER,
  wakerHandler,
  type WakeState,
  type WakerRooms,
} from '../src/waker.js';
import { FakeApi, FakeCaches } from './fakes.js';

const NS = 'team';
const WAKER = { address: '10.1.2.3', port: 8082 };

const roomOf = (spec: StreamRoom['spec'], status?: StreamRoom['status']): StreamRoom => ({
  apiVersion: 'streamroom.dev/v1alpha1',
  kind: 'StreamRoom',
  metadata: { name: 'nap', namespace: NS, uid: 'u-1', generation: 1 },
  spec,
  ...(status ? { status } : {}),
});

const kinds = (objs: KubernetesObject[]) => objs.map((o) => `${o.kind}/${o.metadata?.name}`);
const build = (spec: StreamRoom['spec'], hibernation?: BuildOptions['hibernation']) =>
  desiredChildren(
    roomOf(spec),
    {
      defaultImage: 'room:1',
      media: { defaultNetwork: 'HostPort', port: 20001 },
      ...(hibernation ? { hibernation } : {}),
    },
    undefined,
    () => 'k',
  );

describe('a sleeping room (builders)', () => {
  const spec = { replicas: { min: 1, max: 3 }, hibernation: { idleAfterSeconds: 60 } };

  it('runs no pods, no autoscaler and no Redis of its own; its Service reaches the waker', () => {
    const asleep = build(spec, { asleep: true, waker: WAKER });
    expect(kinds(asleep.apply)).toEqual([
      'NetworkPolicy/nap',
      'Secret/nap-keys',
      'Deployment/nap',
      'Service/nap',
      'EndpointSlice/nap-waker',
    ]);
    expect(asleep.absent).toEqual(
      expect.arrayContaining([
        { kind: 'HorizontalPodAutoscaler', name: 'nap' },
        { kind: 'Deployment', name: 'nap-redis' },
        { kind: 'Service', name: 'nap-redis' },
        { kind: 'NetworkPolicy', name: 'nap-redis' },
      ]),
    );
    const deployment = asleep.apply.find((o) => o.kind === 'Deployment') as V1Deployment;
    expect(deployment.spec?.replicas).toBe(0);
    // the Service keeps its selector: no pod matches while the room sleeps
    const service = asleep.apply.find((o) => o.kind === 'Service') as { spec: { selector: object } };
    expect(service.spec.selector).toEqual({
      'app.kubernetes.io/name': 'streamroom',
      'app.kubernetes.io/instance': 'nap',
    });
    const slice = asleep.apply.find((o) => o.kind === 'EndpointSlice') as V1EndpointSlice;
    expect(slice).toMatchObject({
      metadata: {
        name: wakerSliceName('nap'),
        labels: {
          'kubernetes.io/service-name': 'nap',
          'endpointslice.kubernetes.io/managed-by': 'streamroom-operator',
          'app.kubernetes.io/managed-by': 'streamroom-operator',
        },
        ownerReferences: [expect.objectContaining({ kind: 'StreamRoom', name: 'nap', controller: true })],
      },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.1.2.3'], conditions: { ready: true } }],
      ports: [{ name: 'http', port: 8082, protocol: 'TCP' }],
    });
  });

  it('while waking has everything back and still the waker; awake, no waker', () => {
    const waking = build(spec, { asleep: false, waker: WAKER });
    expect(kinds(waking.apply)).toEqual(
      expect.arrayContaining([
        'HorizontalPodAutoscaler/nap',
        'Deployment/nap-redis',
        'EndpointSlice/nap-waker',
      ]),
    );
    expect((waking.apply.find((o) => o.metadata?.name === 'nap') as V1Deployment).spec).not.toHaveProperty(
      'replicas',
    );
    const awake = build(spec, { asleep: false });
    expect(kinds(awake.apply)).not.toContain('EndpointSlice/nap-waker');
    expect(awake.absent).toContainEqual({ kind: 'EndpointSlice', name: 'nap-waker' });
    // a suspended room never points at the waker
    const suspended = build({ ...spec, suspend: true }, { asleep: false, waker: WAKER });
    expect(kinds(suspended.apply)).not.toContain('EndpointSlice/nap-waker');
  });

  it('an IPv6 waker gets an IPv6 slice', () => {
    const slice = build(spec, { asleep: true, waker: { address: 'fd00::5', port: 8082 } }).apply.find(
      (o) => o.kind === 'EndpointSlice',
    ) as V1EndpointSlice;
    expect(slice.addressType).toBe('IPv6');
  });
});

describe('a sleeping room (status)', () => {
  it('is Hibernating, wants no replica, says since when and why', () => {
    const room = roomOf({ replicas: { max: 3 }, hibernation: { idleAfterSeconds: 60 } });
    const status = computeStatus({
      room,
      spec: resolveSpec(room, 'room:1', 'HostPort'),
      backplane: 'dedicated',
      deployment: { spec: { replicas: 0 }, status: { replicas: 0, readyReplicas: 0 } } as V1Deployment,
      clusterDomain: 'cluster.local',
      keysSecretName: 'nap-keys',
      hibernatedAt: '2026-12-02T01:00:00Z',
      now: new Date('2026-12-02T01:00:05Z'),
    });
    expect(status).toMatchObject({
      phase: 'Hibernating',
      replicas: 0,
      ready: '0/0',
      hibernatedAt: '2026-12-02T01:00:00Z',
      url: 'http://nap.team.svc.cluster.local/',
    });
    const ready = status.conditions?.find((c) => c.type === 'Ready');
    expect(ready).toMatchObject({ status: 'False', reason: 'Hibernating' });
    expect(ready?.message).toMatch(/60 s.*wakes it/);
    expect(status.conditions?.find((c) => c.type === 'BackplaneReady')).toMatchObject({
      status: 'False',
      reason: 'Hibernating',
    });
    expect(status.conditions?.find((c) => c.type === 'Degraded')?.status).toBe('False');
  });
});

describe('the waker', () => {
  it('finds a room by the Host its visitors use', () => {
    const index = new Map<string, string>();
    const add = (key: string, hosts: string[]) => hosts.forEach((h) => index.set(h, key));
    add(
      'a/np',
      roomHosts({
        name: 'np',
        namespace: 'a',
        url: 'http://192.0.2.10:31507/',
        exposeType: 'NodePort',
        port: 80,
        nodePort: 31507,
        clusterDomain: 'cluster.local',
      }),
    );
    add(
      'a/cip',
      roomHosts({
        name: 'cip',
        namespace: 'a',
        url: 'http://cip.a.svc.cluster.local:8080/',
        exposeType: 'ClusterIP',
        port: 8080,
        clusterDomain: 'cluster.local',
      }),
    );
    add(
      'b/ing',
      roomHosts({
        name: 'ing',
        namespace: 'b',
        url: 'https://Live.Example.com/',
        exposeType: 'Ingress',
        port: 80,
        ingressHost: 'Live.Example.com',
        clusterDomain: 'cluster.local',
      }),
    );
    expect(lookupHost(index, '192.0.2.10:31507')).toBe('a/np');
    expect(lookupHost(index, '127.0.0.1:31507')).toBe('a/np'); // any node's address
    expect(lookupHost(index, 'cip.a.svc.cluster.local:8080')).toBe('a/cip');
    expect(lookupHost(index, 'cip.a:8080')).toBe('a/cip');
    expect(lookupHost(index, 'live.example.com')).toBe('b/ing');
    expect(lookupHost(index, 'LIVE.example.com:80')).toBe('b/ing');
    expect(lookupHost(index, 'ing.b.svc.cluster.local')).toBe('b/ing');
    expect(lookupHost(index, 'other.example.com')).toBeUndefined();
    expect(lookupHost(index, '127.0.0.1:31508')).toBeUndefined();
    expect(lookupHost(index, '')).toBeUndefined();
  });

  describe('over HTTP', () => {
    let server: http.Server;
    let base: string;
    const asked: string[] = [];
    const rooms: WakerRooms & { states: Map<string, WakeState>; leading: boolean } = {
      states: new Map(),
      leading: true,
      roomForHost: (host) => (host.startsWith('room.test') ? 'ns/room' : undefined),
      wake(key) {
        asked.push(key);
        return rooms.states.get(key) ?? 'waking';
      },
    };
    afterAll(() => {
      server.closeAllConnections();
      server.close();
    });
    beforeEach(async () => {
      asked.length = 0;
      rooms.states.clear();
      rooms.leading = true;
      server?.closeAllConnections();
      server?.close();
      server = http.createServer(wakerHandler(rooms));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    /** A request with the Host a visitor's browser sends (fetch does not let a caller set it). */
    const get = (path: string, host = 'room.test:31000', init: { method?: string; body?: string } = {}) =>
      new Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }>((resolve, reject) => {
        const req = http.request(
          `${base}${path}`,
          { method: init.method ?? 'GET', headers: { host } },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (text += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
          },
        );
        req.on('error', reject);
        req.end(init.body);
      });

    it('answers every page of a sleeping room with the waking page, which holds no key and wakes nothing by itself', async () => {
      for (const path of ['/', '/app.js', '/socket.io/?EIO=4&transport=polling']) {
        const res = await get(path);
        expect(res.status).toBe(503);
        expect(res.headers[WAKER_HEADER]).toBe('1');
        expect(res.headers['cache-control']).toBe('no-store');
        expect(res.headers['content-security-policy']).toMatch(/script-src 'sha256-/);
        const html = res.text;
        expect(html).toContain('This room is waking up');
        expect(html).toContain(WAKE_PATH);
        expect(html).not.toMatch(/key=/i);
      }
      expect(asked).toEqual([]);
      const unknown = await get('/', 'elsewhere.test');
      expect(unknown.status).toBe(404);
      expect(unknown.text).toContain('No room');
    });

    it('wakes on POST only, says where the room stands, and refuses bodies and strangers', async () => {
      expect((await get(WAKE_PATH)).status).toBe(405);
      const res = await get(WAKE_PATH, undefined, { method: 'POST' });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.text)).toEqual({ state: 'waking' });
      expect(asked).toEqual(['ns/room']);
      rooms.states.set('ns/room', 'suspended');
      const suspended = await get(WAKE_PATH, undefined, { method: 'POST' });
      expect(suspended.status).toBe(409);
      expect(JSON.parse(suspended.text)).toEqual({ state: 'suspended' });
      rooms.states.set('ns/room', 'busy');
      const busy = await get(WAKE_PATH, undefined, { method: 'POST' });
      expect(busy.status).toBe(503);
      expect(busy.headers['retry-after']).toBe('2');
      const withBody = await get(WAKE_PATH, undefined, { method: 'POST', body: 'x'.repeat(10) });
      expect(withBody.status).toBe(413);
      expect((await get(WAKE_PATH, 'elsewhere.test', { method: 'POST' })).status).toBe(404);
      rooms.leading = false;
      expect((await get(WAKE_PATH, undefined, { method: 'POST' })).status).toBe(503);
      expect(asked).toHaveLength(3);
    });

    it('closes the connection that says the room is up, so the reload can reach the room', async () => {
      // A browser keeps its connection to the waker alive while it asks every second; kube-proxy's
      // NAT stays with a connection, so the reload must come over a new one.
      const sockets: string[] = [];
      server.on('connection', (s: Socket) => sockets.push(`${s.remotePort}`));
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const post = () =>
        new Promise<http.IncomingMessage>((resolve, reject) => {
          const req = http.request(`${base}${WAKE_PATH}`, {
            method: 'POST',
            agent,
            headers: { host: 'room.test' },
          });
          req.on('response', (res) => res.resume().on('end', () => resolve(res)));
          req.on('error', reject);
          req.end();
        });
      try {
        await post();
        await post();
        expect(sockets).toHaveLength(1); // while it wakes, one connection
        rooms.states.set('ns/room', 'ready');
        expect((await post()).headers.connection).toBe('close');
        rooms.states.delete('ns/room');
        await post();
        expect(sockets).toHaveLength(2);
      } finally {
        agent.destroy();
      }
    });
  });
});

describe('the controller puts idle rooms to sleep and wakes them', () => {
  let api: FakeApi;
  let caches: FakeCaches;
  let controller: Controller;
  const KEY = `${NS}/nap`;

  const noteFacts = (facts: { live: boolean; viewers: number; lastActivityTime: string }) =>
    (controller as unknown as { noteFacts(k: string, f: typeof facts): void }).noteFacts(KEY, facts);
  const ago = (s: number) => new Date(Date.now() - s * 1000).toISOString();
  const stored = () => api.get<StreamRoom>('StreamRoom', NS, 'nap')!;
  /** The room Ready with one ready pod, as the caches would show it after the first reconciles. */
  async function readyRoom(spec: StreamRoom['spec']) {
    api.put(roomOf(spec));
    caches.catchUp(api);
    await controller.reconcile(KEY);
    const d = api.get<V1Deployment>('Deployment', NS, 'nap')!;
    api.put({
      ...d,
      status: {
        replicas: 1,
        readyReplicas: 1,
        availableReplicas: 1,
        updatedReplicas: 1,
        observedGeneration: 1,
        conditions: [{ type: 'Available', status: 'True' }],
      },
    });
    const r = api.get<V1Deployment>('Deployment', NS, 'nap-redis');
    if (r) api.put({ ...r, status: { replicas: 1, readyReplicas: 1, availableReplicas: 1 } });
    caches.catchUp(api);
    await controller.reconcile(KEY);
    caches.catchUp(api);
    expect(stored().status?.phase).toBe('Ready');
  }

  /**
   * A room of one replica found idle (60 s of its 10) and reconciled, as the caches show it: asleep
   * when the controller has a waker.
   */
  async function idleRoom() {
    await readyRoom({
      media: { mode: 'PeerToPeer' },
      replicas: { max: 1 },
      hibernation: { idleAfterSeconds: 10 },
    });
    noteFacts({ live: false, viewers: 0, lastActivityTime: ago(60) });
    await controller.reconcile(KEY);
    caches.catchUp(api);
  }

  beforeEach(() => {
    api = new FakeApi();
    caches = new FakeCaches();
    controller = new Controller(
      { api, caches: caches.factory },
      loadConfig(['--default-image', 'room:1', '--max-waking', '1'], {}),
      createLogger('error'),
    );
    controller.setWaker(WAKER);
  });

  it('sleeps once nobody was there for idleAfterSeconds, writes nothing while asleep, wakes once', async () => {
    await readyRoom({
      media: { mode: 'PeerToPeer' },
      replicas: { max: 3 },
      hibernation: { idleAfterSeconds: 30 },
    });
    // somebody there, or not long enough: stays up
    noteFacts({ live: false, viewers: 1, lastActivityTime: ago(0) });
    noteFacts({ live: false, viewers: 0, lastActivityTime: ago(20) });
    await controller.reconcile(KEY);
    expect(stored().status?.phase).toBe('Ready');

    noteFacts({ live: false, viewers: 0, lastActivityTime: ago(31) });
    await controller.reconcile(KEY);
    caches.catchUp(api);
    const asleep = stored();
    expect(asleep.status?.phase).toBe('Hibernating');
    expect(asleep.status?.hibernatedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(api.get<V1Deployment>('Deployment', NS, 'nap')?.spec?.replicas).toBe(0);
    expect(api.get<V2HorizontalPodAutoscaler>('HorizontalPodAutoscaler', NS, 'nap')).toBeUndefined();
    expect(api.get('Deployment', NS, 'nap-redis')).toBeUndefined();
    expect(api.get<V1EndpointSlice>('EndpointSlice', NS, 'nap-waker')?.endpoints?.[0]?.addresses).toEqual([
      WAKER.address,
    ]);
    expect(api.events.map((e) => e.reason)).toContain('Hibernating');

    // asleep: reconciles (resyncs) write nothing
    const writes = JSON.stringify(api.writes);
    for (let i = 0; i < 3; i++) await controller.reconcile(KEY);
    expect(JSON.stringify(api.writes)).toBe(writes);

    // a flood of wake requests: one wake
    const states = Array.from({ length: 50 }, () => controller.wake(KEY));
    expect(new Set(states)).toEqual(new Set(['waking']));
    await controller.reconcile(KEY);
    caches.catchUp(api);
    expect(stored().status?.hibernatedAt).toBeUndefined();
    expect(stored().status?.phase).not.toBe('Hibernating');
    expect(api.get<V1Deployment>('Deployment', NS, 'nap')?.spec).not.toHaveProperty('replicas');
    expect(api.get('HorizontalPodAutoscaler', NS, 'nap')).toBeDefined();
    expect(api.get('Deployment', NS, 'nap-redis')).toBeDefined();
    // still the waker until a pod is ready
    expect(api.get('EndpointSlice', NS, 'nap-waker')).toBeDefined();
    expect(controller.wake(KEY)).toBe('waking');
    const d = api.get<V1Deployment>('Deployment', NS, 'nap')!;
    api.put({
      ...d,
      spec: { ...d.spec!, replicas: 1 },
      status: {
        replicas: 1,
        readyReplicas: 1,
        availableReplicas: 1,
        updatedReplicas: 1,
        observedGeneration: 2,
        conditions: [{ type: 'Available', status: 'True' }],
      },
    });
    caches.catchUp(api);
    await controller.reconcile(KEY);
    expect(api.get('EndpointSlice', NS, 'nap-waker')).toBeUndefined();
  });

  it('a woken room with a ready pod drops the waker at once, even while its status still says it sleeps', async () => {
    await idleRoom();
    expect(stored().status?.hibernatedAt).toBeDefined();

    // woken, and its pod is ready before any reconcile wrote a status without hibernatedAt (a status
    // write deferred, or a cache that lags): the Service must reach the pod only, not the waker too
    expect(controller.wake(KEY)).toBe('waking');
    const d = api.get<V1Deployment>('Deployment', NS, 'nap')!;
    api.put({ ...d, spec: { ...d.spec!, replicas: 1 }, status: { replicas: 1, readyReplicas: 1 } });
    caches.catchUp(api);
    expect(stored().status?.hibernatedAt).toBeDefined();
    await controller.reconcile(KEY);
    expect(api.get('EndpointSlice', NS, 'nap-waker')).toBeUndefined();
    expect(api.get<V1Deployment>('Deployment', NS, 'nap')?.spec?.replicas).not.toBe(0);
    // a visitor the waker still gets (kube-proxy not yet updated) hears that the room is up
    expect(controller.wake(KEY)).toBe('ready');
    // reconciled again before the cache has the new status: still awake, still no waker
    await controller.reconcile(KEY);
    expect(api.get('EndpointSlice', NS, 'nap-waker')).toBeUndefined();
    caches.catchUp(api);
    await controller.reconcile(KEY);
    caches.catchUp(api);
    expect(stored().status?.hibernatedAt).toBeUndefined();
    expect(stored().status?.phase).not.toBe('Hibernating');
    expect(api.get('EndpointSlice', NS, 'nap-waker')).toBeUndefined();
  });

  it('never wakes a suspended room, never sleeps one, and wakes at most --max-waking rooms at once', async () => {
    await idleRoom();
    expect(stored().status?.phase).toBe('Hibernating');
    // another sleeping room takes the one wake allowed at a time
    const other = {
      ...roomOf({ hibernation: { idleAfterSeconds: 10 } }, { phase: 'Hibernating', hibernatedAt: ago(5) }),
    };
    other.metadata = { ...other.metadata, name: 'other', uid: 'u-2' };
    api.put(other);
    caches.catchUp(api);
    expect(controller.wake(`${NS}/other`)).toBe('waking');
    expect(controller.wake(KEY)).toBe('busy');

    const r = stored();
    api.put({ ...r, spec: { ...r.spec, suspend: true } });
    caches.catchUp(api);
    expect(controller.wake(KEY)).toBe('suspended');
    await controller.reconcile(KEY);
    caches.catchUp(api);
    expect(stored().status?.phase).toBe('Suspended');
    expect(stored().status?.hibernatedAt).toBeUndefined();
    expect(api.get('EndpointSlice', NS, 'nap-waker')).toBeUndefined();
  });

  it('stays up without a waker (its URL would not answer)', async () => {
    controller = new Controller(
      { api, caches: caches.factory },
      loadConfig(['--default-image', 'room:1'], {}),
      createLogger('error'),
    );
    await idleRoom();
    expect(stored().status?.phase).toBe('Ready');
  });
});
