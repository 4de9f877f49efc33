// The controller's decisions against in-memory fakes (test/fakes.ts): what it writes when its caches lag
// behind the API server. Runs in milliseconds; the same controller runs against a real API server in
// e2e/test/.
import { beforeEach, describe, expect, it } from '@jest/globals';
import type { V1Deployment, V1Secret } from '@kubernetes/client-node';
import { Controller } from '../src/controller.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import type { StreamRoom } from '../src/types.js';
import { FakeApi, FakeCaches } from './fakes.js';

const NS = 'team';
let api: FakeApi;
let caches: FakeCaches;
let controller: Controller;

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString();

function room(name: string, spec: StreamRoom['spec'] = {}): StreamRoom {
  return api.put<StreamRoom>({
    apiVersion: 'streamroom.dev/v1alpha1',
    kind: 'StreamRoom',
    metadata: { name, namespace: NS, generation: 1 },
    spec,
  });
}

/** The keys Secret as a previous reconcile left it: owned by the room, with these keys. */
function keysSecret(r: StreamRoom, data: Record<string, string>): V1Secret {
  return api.put<V1Secret>({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: `${r.metadata.name}-keys`,
      namespace: NS,
      labels: { 'app.kubernetes.io/managed-by': 'streamroom-operator' },
      ownerReferences: [
        {
          apiVersion: 'streamroom.dev/v1alpha1',
          kind: 'StreamRoom',
          name: r.metadata.name,
          uid: r.metadata.uid ?? '',
          controller: true,
        },
      ],
    },
    type: 'Opaque',
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  });
}

const secretOf = (name: string) => api.get<V1Secret>('Secret', NS, `${name}-keys`);

const newController = () =>
  new Controller(
    { api, caches: caches.factory },
    loadConfig(['--default-image', 'room:1', '--health-address', ''], {}),
    createLogger('error'),
  );

beforeEach(() => {
  api = new FakeApi();
  caches = new FakeCaches();
  controller = newController();
});

describe('the keys Secret', () => {
  it('keeps the keys of a Secret the cache does not show yet (cache empty, Secret exists)', async () => {
    const r = room('alpha', { replicas: { max: 1 } });
    keysSecret(r, { broadcasterKey: 'original-broadcaster-key' });
    caches.of('StreamRoom').set(r); // the Secret cache is synced but empty, as during a relist
    await controller.reconcile(`${NS}/alpha`);
    expect(unb64(secretOf('alpha')?.data?.broadcasterKey)).toBe('original-broadcaster-key');
    expect(api.writes.create).toBe(0);
  });

  it('keeps every key, the Redis password and URL too, through many reconciles on an empty cache', async () => {
    const r = room('beta', { private: true, replicas: { max: 3 } });
    caches.of('StreamRoom').set(r);
    await controller.reconcile(`${NS}/beta`);
    const first = secretOf('beta')?.data;
    expect(Object.keys(first ?? {}).sort()).toEqual([
      'broadcasterKey',
      'redisPassword',
      'redisUrl',
      'viewerKey',
    ]);
    for (let i = 0; i < 5; i++) await controller.reconcile(`${NS}/beta`);
    expect(secretOf('beta')?.data).toEqual(first);
    expect(api.writes.create).toBe(1);
  });

  it('creates the Secret only when absent: a create that loses a race fails rather than overwrites', async () => {
    const r = room('gamma', { replicas: { max: 1 } });
    caches.of('StreamRoom').set(r);
    // Another writer creates the Secret between the operator's read and its create.
    api.beforeCall = (verb, obj) => {
      if (verb === 'create' && obj?.kind === 'Secret') {
        api.beforeCall = () => undefined;
        keysSecret(r, { broadcasterKey: 'the-other-writers-key' });
      }
    };
    await expect(controller.reconcile(`${NS}/gamma`)).rejects.toMatchObject({ code: 409 });
    expect(unb64(secretOf('gamma')?.data?.broadcasterKey)).toBe('the-other-writers-key');
    await controller.reconcile(`${NS}/gamma`); // the retry reads what exists and keeps it
    expect(unb64(secretOf('gamma')?.data?.broadcasterKey)).toBe('the-other-writers-key');
    expect(api.events.filter((e) => e.type === 'Warning')).toEqual([]);
  });

  it('never writes a Secret built from an older version than the API has (no key lost or replaced)', async () => {
    const r = room('delta', { replicas: { max: 1 } });
    const old = keysSecret(r, { broadcasterKey: 'bk' });
    keysSecret(r, { broadcasterKey: 'bk', viewerKey: 'vk-added-later' }); // the cache has not seen this
    caches.of('StreamRoom').set(r);
    caches.of('Secret').set(old);
    await expect(controller.reconcile(`${NS}/delta`)).rejects.toMatchObject({ code: 409 });
    expect(unb64(secretOf('delta')?.data?.viewerKey)).toBe('vk-added-later');
    caches.catchUp(api);
    await controller.reconcile(`${NS}/delta`);
    expect(unb64(secretOf('delta')?.data?.viewerKey)).toBe('vk-added-later');
  });
});

describe('caches that are not synced', () => {
  it('holds a reconcile until every cache is synced again', async () => {
    const r = room('epsilon', { replicas: { max: 1 } });
    caches.of('StreamRoom').set(r);
    caches.of('Secret').setSynced(false); // relisting
    let done = false;
    const reconcile = controller.reconcile(`${NS}/epsilon`).then(() => (done = true));
    await new Promise((res) => setTimeout(res, 30));
    expect(done).toBe(false);
    expect(api.writes).toMatchObject({ create: 0, apply: 0, status: 0 });
    caches.of('Secret').setSynced(true);
    await reconcile;
    expect(api.writes.create).toBe(1);
  });

  it('gives up waiting when the controller stops', async () => {
    caches.of('StreamRoom').set(room('zeta'));
    caches.of('Deployment').setSynced(false);
    const reconcile = controller.reconcile(`${NS}/zeta`);
    await controller.stop();
    await reconcile;
    expect(api.writes).toMatchObject({ create: 0, apply: 0, status: 0 });
  });
});

describe('media networks', () => {
  const deploymentOf = (name: string) => api.get<V1Deployment>('Deployment', NS, name);

  it('gives HostPort rooms ports of their own, kept across a restart before any status shows them', async () => {
    for (const name of ['one', 'two']) {
      caches.of('StreamRoom').set(room(name, { replicas: { max: 1 } }));
      await controller.reconcile(`${NS}/${name}`);
    }
    const hostPorts = (name: string) =>
      deploymentOf(name)
        ?.spec?.template.spec?.containers[0]?.ports?.filter((p) => p.name?.startsWith('media'))
        .map((p) => p.hostPort);
    expect(hostPorts('one')).toEqual([20000, 20000]);
    expect(hostPorts('two')).toEqual([20001, 20001]);
    // still on their way (Pending): no status written yet
    expect(api.get<StreamRoom>('StreamRoom', NS, 'one')?.status).toBeUndefined();
    // a new operator (no reservations) sees the ports in the Deployments: each room keeps its own
    caches.catchUp(api);
    await controller.stop();
    controller = newController();
    await controller.reconcile(`${NS}/two`);
    await controller.reconcile(`${NS}/one`);
    expect(hostPorts('one')).toEqual([20000, 20000]);
    expect(hostPorts('two')).toEqual([20001, 20001]);
    // once the room settles, its status records the port
    const d = deploymentOf('one') as V1Deployment;
    api.put({
      ...d,
      status: {
        observedGeneration: d.metadata?.generation,
        replicas: 1,
        readyReplicas: 1,
        availableReplicas: 1,
        updatedReplicas: 1,
      },
    });
    caches.catchUp(api);
    await controller.reconcile(`${NS}/one`);
    expect(api.get<StreamRoom>('StreamRoom', NS, 'one')?.status?.media).toEqual({
      network: 'HostPort',
      port: 20000,
    });
  });

  it('refuses a TURN room when the operator has no TURN gateway: a clear condition and no pod', async () => {
    caches.of('StreamRoom').set(room('relayed', { media: { network: 'TURN' } }));
    await expect(controller.reconcile(`${NS}/relayed`)).rejects.toThrow(/no TURN gateway/);
    expect(deploymentOf('relayed')).toBeUndefined();
    const status = api.get<StreamRoom>('StreamRoom', NS, 'relayed')?.status;
    expect(status?.phase).toBe('Failed');
    expect(status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      reason: 'TURNNotConfigured',
    });
    expect(api.events).toContainEqual(
      expect.objectContaining({ type: 'Warning', reason: 'TURNNotConfigured' }),
    );
  });
});

describe('what a room may reach', () => {
  const credential = (name: string, labels: Record<string, string>) =>
    api.put({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, namespace: NS, labels },
      data: { password: b64('s3cret') },
    });
  const turnRoom = (name: string, secret: string, key = 'password') =>
    room(name, {
      replicas: { max: 1 },
      iceServers: [
        { urls: ['turn:turn.example.com:3478'], username: 'u', credentialSecretRef: { name: secret, key } },
      ],
    });

  it('takes a TURN credential only from a Secret labelled for rooms, never from a room\u2019s keys', async () => {
    credential('turn-ok', { 'streamroom.dev/room-credential': 'true' });
    credential('db-password', {});
    const victim = room('victim', { replicas: { max: 1 } });
    caches.of('StreamRoom').set(victim);
    await controller.reconcile(`${NS}/victim`);
    const keys = api.get<V1Secret>('Secret', NS, 'victim-keys');
    // (a room's keys carry the label a hostile tenant might copy: refused by their managed-by label)
    api.put({
      ...keys!,
      metadata: {
        ...keys!.metadata,
        labels: { ...keys!.metadata?.labels, 'streamroom.dev/room-credential': 'true' },
      },
    });

    caches.of('StreamRoom').set(turnRoom('good', 'turn-ok'));
    await controller.reconcile(`${NS}/good`);
    expect(api.get('Deployment', NS, 'good')).toBeDefined();

    for (const [name, secret, reason] of [
      ['thief', 'victim-keys', 'CredentialNotAllowed'],
      ['snoop', 'db-password', 'CredentialNotAllowed'],
      ['typo', 'no-such-secret', 'CredentialNotFound'],
    ] as const) {
      caches
        .of('StreamRoom')
        .set(turnRoom(name, secret, secret === 'victim-keys' ? 'broadcasterKey' : 'password'));
      await expect(controller.reconcile(`${NS}/${name}`)).rejects.toThrow();
      expect(api.get('Deployment', NS, name)).toBeUndefined();
      const status = api.get<StreamRoom>('StreamRoom', NS, name)?.status;
      expect(status?.conditions?.find((c) => c.type === 'Ready')?.reason).toBe(reason);
    }
    expect(api.events.filter((e) => e.reason === 'CredentialNotAllowed')).toHaveLength(2);
  });

  it('fences every room with a NetworkPolicy of its own, applied before anything else', async () => {
    caches.of('StreamRoom').set(room('fenced'));
    const order: string[] = [];
    api.beforeCall = (verb, obj) => {
      if (verb === 'apply' || verb === 'create') order.push(`${obj?.kind}/${obj?.metadata?.name}`);
    };
    await controller.reconcile(`${NS}/fenced`);
    expect(order.slice(0, 2)).toEqual(['NetworkPolicy/fenced', 'NetworkPolicy/fenced-redis']);
  });
});
