import { describe, expect, it } from '@jest/globals';
import type { V1Deployment, V1Secret, V1Service } from '@kubernetes/client-node';
import {
  buildDeployment,
  buildNetworkPolicies,
  redisSelectorLabels,
  selectorLabels,
  mediaPlan,
  PlanError,
  type MediaPlan,
  buildHpa,
  buildIngress,
  buildKeysSecret,
  buildService,
  desiredChildren,
  imageTag,
  roomEnv,
} from '../src/builders.js';
import { resolveSpec } from '../src/defaults.js';
import { room } from './fixtures.js';

const IMAGE = 'registry.example/streamroom/room:1.2.3';
/** An SFU room on the HostPort network, port 20000 (the controller allocates it). */
const MEDIA = { mode: 'SFU', network: 'HostPort', port: 20000 } as const;
const opts = { defaultImage: IMAGE, media: { defaultNetwork: 'HostPort' as const, port: 20000 } };
const NONE = { mode: 'none' } as const;
let n = 0;
const key = () => `generated-key-${++n}`;
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('buildDeployment', () => {
  const r = room({ title: 'Launch party' });
  const d = buildDeployment(r, resolveSpec(r, IMAGE), NONE, MEDIA);
  const pod = d.spec?.template.spec;
  const container = pod?.containers[0];

  it('runs the default room image when the room names none, and the room image when it does', () => {
    expect(container?.image).toBe(IMAGE);
    const pinned = room({ image: 'example/room:9' });
    expect(
      buildDeployment(pinned, resolveSpec(pinned, IMAGE), NONE, MEDIA).spec?.template.spec?.containers[0]
        ?.image,
    ).toBe('example/room:9');
  });

  it('keeps a terminating pod serving until the Service has dropped it, within the grace period', () => {
    const sleep = container?.lifecycle?.preStop?.sleep?.seconds ?? 0;
    expect(sleep).toBeGreaterThan(0);
    const shutdown = Number(container?.env?.find((e) => e.name === 'SHUTDOWN_TIMEOUT_SECONDS')?.value);
    expect(sleep + shutdown).toBeLessThan(pod?.terminationGracePeriodSeconds ?? 0);
  });

  it('probes the room health endpoints and requests resources so the HPA can work', () => {
    expect(container?.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(container?.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(container?.resources).toEqual({
      requests: { cpu: '100m', memory: '128Mi' },
      limits: { memory: '256Mi' },
    });
  });

  it("rolls out with no downtime, or (HostPort, where a new pod needs the old one's port) one pod at a time", () => {
    const turn: MediaPlan = { mode: 'SFU', network: 'TURN', turnUrls: ['turn:a:3478'], turnRoomKey: 'k' };
    expect(buildDeployment(r, resolveSpec(r, IMAGE), NONE, turn).spec?.strategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: 0, maxSurge: 1 },
    });
    expect(d.spec?.strategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: 1, maxSurge: 1 },
    });
  });

  it('wires the room secret in and never puts a key in plain text', () => {
    const env = container?.env ?? [];
    expect(env.find((e) => e.name === 'ROOM_BROADCASTER_KEY')).toEqual({
      name: 'ROOM_BROADCASTER_KEY',
      valueFrom: { secretKeyRef: { name: 'demo-keys', key: 'broadcasterKey' } },
    });
    expect(env.find((e) => e.name === 'ROOM_VIEWER_KEY')).toBeUndefined();
    const priv = room({ private: true });
    const privEnv = roomEnv(priv, resolveSpec(priv, IMAGE), NONE, MEDIA);
    expect(privEnv.find((e) => e.name === 'ROOM_VIEWER_KEY')?.valueFrom?.secretKeyRef).toEqual({
      name: 'demo-keys',
      key: 'viewerKey',
    });
  });

  it('passes the room configuration to the room server', () => {
    const env = Object.fromEntries(
      (container?.env ?? []).filter((e) => e.value).map((e) => [e.name, e.value]),
    );
    expect(env).toMatchObject({
      PORT: '8080',
      ROOM_NAME: 'demo',
      ROOM_NAMESPACE: 'team-a',
      ROOM_TITLE: 'Launch party',
      ROOM_MAX_VIEWERS: '500',
      ROOM_MEDIA_MODE: 'SFU',
      ROOM_RELAY_UDP_PORT: '20000',
      ROOM_RELAY_TCP_PORT: '20000',
      CHAT_ENABLED: 'true',
      CHAT_HISTORY_SIZE: '50',
      CHAT_MAX_MESSAGE_LENGTH: '500',
      CHAT_MESSAGES_PER_MINUTE: '20',
      ICE_SERVERS: '[]',
    });
  });

  it("opens the relay's media port on the node (HostPort), and tells the relay the node's address", () => {
    expect(container?.ports).toEqual([
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { name: 'metrics', containerPort: 9090, protocol: 'TCP' },
      { name: 'media-udp', containerPort: 20000, hostPort: 20000, protocol: 'UDP' },
      { name: 'media-tcp', containerPort: 20000, hostPort: 20000, protocol: 'TCP' },
    ]);
    expect(container?.env?.find((e) => e.name === 'ROOM_RELAY_ANNOUNCE_ADDRESSES')).toEqual({
      name: 'ROOM_RELAY_ANNOUNCE_ADDRESSES',
      valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } },
    });
  });

  it('reaches a TURN room through the gateway: pod ports only, the URLs and the room key from its Secret', () => {
    const r2 = room({ media: { network: 'TURN' } });
    const turn: MediaPlan = {
      mode: 'SFU',
      network: 'TURN',
      turnUrls: ['turn:198.51.100.7:3478'],
      turnRoomKey: 'rk',
    };
    const c = buildDeployment(r2, resolveSpec(r2, IMAGE), NONE, turn).spec?.template.spec?.containers[0];
    expect(c?.ports).toEqual([
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { name: 'metrics', containerPort: 9090, protocol: 'TCP' },
      { name: 'media-udp', containerPort: 7882, protocol: 'UDP' },
      { name: 'media-tcp', containerPort: 7881, protocol: 'TCP' },
    ]);
    const env = Object.fromEntries(
      (c?.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom?.secretKeyRef?.key]),
    );
    expect(env).toMatchObject({ ROOM_TURN_URLS: 'turn:198.51.100.7:3478', ROOM_TURN_KEY: 'turnKey' });
    expect(env).not.toHaveProperty('ROOM_RELAY_ANNOUNCE_ADDRESSES');
    const secret = buildKeysSecret(r2, resolveSpec(r2, IMAGE), NONE, undefined, key, turn);
    expect(Buffer.from(secret.data?.turnKey ?? '', 'base64').toString()).toBe('rk');
  });

  it('opens no media port in a PeerToPeer room, and defaults maxViewers by media mode', () => {
    const p2p = room({ media: { mode: 'PeerToPeer' } });
    const p2pSpec = resolveSpec(p2p, 'img:1');
    const p2pContainer = buildDeployment(p2p, p2pSpec, NONE, { mode: 'PeerToPeer' }).spec?.template.spec
      ?.containers[0];
    expect(p2pContainer?.ports).toEqual([
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { name: 'metrics', containerPort: 9090, protocol: 'TCP' },
    ]);
    const p2pEnv = Object.fromEntries((p2pContainer?.env ?? []).map((e) => [e.name, e.value]));
    expect(p2pEnv).toMatchObject({ ROOM_MEDIA_MODE: 'PeerToPeer', ROOM_MAX_VIEWERS: '20' });
    expect(p2pEnv).not.toHaveProperty('ROOM_RELAY_UDP_PORT');
  });

  it('says why it cannot plan a room: no port left, no TURN gateway', () => {
    const sfu = resolveSpec(room(), IMAGE);
    expect(() => mediaPlan(sfu, { defaultImage: IMAGE })).toThrow(/no media port is free/);
    const viaTurn = resolveSpec(room({ media: { network: 'TURN' } }), IMAGE);
    expect(() => mediaPlan(viaTurn, { defaultImage: IMAGE })).toThrow(PlanError);
    expect(resolveSpec(room(), IMAGE, 'TURN').media).toEqual({ mode: 'SFU', network: 'TURN' });
  });

  it('hands TURN credentials over by Secret reference, not by value', () => {
    const r2 = room({
      iceServers: [
        { urls: ['stun:stun.example.org:3478'] },
        {
          urls: ['turn:turn.example.org:3478'],
          username: 'u',
          credentialSecretRef: { name: 'turn', key: 'password' },
        },
      ],
    });
    const env = roomEnv(r2, resolveSpec(r2, IMAGE), NONE, MEDIA);
    expect(JSON.parse(env.find((e) => e.name === 'ICE_SERVERS')?.value ?? '')).toEqual([
      { urls: ['stun:stun.example.org:3478'] },
      { urls: ['turn:turn.example.org:3478'], username: 'u' },
    ]);
    expect(env.find((e) => e.name === 'ICE_SERVER_1_CREDENTIAL')?.valueFrom?.secretKeyRef).toEqual({
      name: 'turn',
      key: 'password',
    });
  });

  it('labels everything and makes the room its controlling owner', () => {
    expect(d.metadata?.labels).toEqual({
      'app.kubernetes.io/name': 'streamroom',
      'app.kubernetes.io/instance': 'demo',
      'app.kubernetes.io/component': 'room',
      'app.kubernetes.io/part-of': 'streamroom',
      'app.kubernetes.io/managed-by': 'streamroom-operator',
      'app.kubernetes.io/version': '1.2.3',
    });
    expect(d.metadata?.ownerReferences).toEqual([
      {
        apiVersion: 'streamroom.dev/v1alpha1',
        kind: 'StreamRoom',
        name: 'demo',
        uid: r.metadata.uid,
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    expect(d.spec?.selector.matchLabels).toEqual({
      'app.kubernetes.io/name': 'streamroom',
      'app.kubernetes.io/instance': 'demo',
    });
  });

  it('leaves the replica count to the HPA, and sets zero when suspended', () => {
    expect(d.spec && 'replicas' in d.spec).toBe(false);
    const s = room({ suspend: true });
    expect(buildDeployment(s, resolveSpec(s, IMAGE), NONE, MEDIA).spec?.replicas).toBe(0);
  });

  it('runs as non-root on a read-only root filesystem', () => {
    expect(pod?.securityContext?.runAsNonRoot).toBe(true);
    expect(container?.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
    });
  });

  it('keeps user resources and fills only missing requests', () => {
    const r2 = room({ resources: { limits: { cpu: '2', memory: '1Gi' }, requests: { memory: '512Mi' } } });
    expect(resolveSpec(r2, IMAGE).resources).toEqual({
      limits: { cpu: '2', memory: '1Gi' },
      requests: { cpu: '2', memory: '512Mi' },
    });
    const big = room({ resources: { requests: { memory: '1Gi' } } });
    expect(resolveSpec(big, IMAGE).resources).toEqual({
      requests: { cpu: '100m', memory: '1Gi' },
      limits: { memory: '1Gi' },
    });
  });
});

describe('buildHpa', () => {
  it('targets the room Deployment with the room bounds and CPU target', () => {
    const r = room({ replicas: { min: 2, max: 7 }, autoscaling: { targetCPUUtilizationPercentage: 75 } });
    const hpa = buildHpa(r, resolveSpec(r, IMAGE));
    expect(hpa.spec).toMatchObject({
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'demo' },
      minReplicas: 2,
      maxReplicas: 7,
      metrics: [
        {
          type: 'Resource',
          resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 75 } },
        },
      ],
    });
  });

  it('defaults to 1 to 10 replicas at 60% CPU', () => {
    const r = room();
    expect(buildHpa(r, resolveSpec(r, IMAGE)).spec).toMatchObject({
      minReplicas: 1,
      maxReplicas: 10,
      metrics: [{ resource: { target: { averageUtilization: 60 } } }],
      behavior: { scaleDown: { stabilizationWindowSeconds: 300 } },
    });
  });
});

describe('buildService and buildIngress', () => {
  it.each([
    ['ClusterIP', 'ClusterIP'],
    ['NodePort', 'NodePort'],
    ['LoadBalancer', 'LoadBalancer'],
    ['Ingress', 'ClusterIP'],
  ] as const)('expose %s gives a %s Service', (type, serviceType) => {
    const r = room({
      expose: { type, port: 8000, ...(type === 'Ingress' ? { host: 'live.example.com' } : {}) },
    });
    const svc = buildService(r, resolveSpec(r, IMAGE));
    expect(svc.spec?.type).toBe(serviceType);
    expect(svc.spec?.ports).toEqual([{ name: 'http', port: 8000, targetPort: 'http', protocol: 'TCP' }]);
    // only a LoadBalancer keeps visitors' addresses (to nodes with a room pod)
    expect(svc.spec?.externalTrafficPolicy).toBe(type === 'LoadBalancer' ? 'Local' : undefined);
  });

  it.each([
    ['ClusterIP', [], { ROOM_MAX_VIEWERS_PER_ADDRESS: '0', ROOM_NEW_USERS_PER_ADDRESS_PER_MINUTE: '0' }],
    ['Ingress', [], { ROOM_MAX_VIEWERS_PER_ADDRESS: '0', ROOM_NEW_USERS_PER_ADDRESS_PER_MINUTE: '0' }],
    ['Ingress', ['10.244.0.0/16'], { ROOM_TRUSTED_PROXIES: '10.244.0.0/16' }],
    [
      'NodePort',
      ['10.244.0.0/16'],
      { ROOM_MAX_VIEWERS_PER_ADDRESS: '0', ROOM_NEW_USERS_PER_ADDRESS_PER_MINUTE: '0' },
    ],
    ['LoadBalancer', [], {}],
  ] as const)(
    'limits seats per visitor address only where the room sees addresses (%s, trusted proxies %j)',
    (type, proxies, expected) => {
      const r = room({ expose: { type, ...(type === 'Ingress' ? { host: 'live.example.com' } : {}) } });
      const env = Object.fromEntries(
        roomEnv(r, resolveSpec(r, IMAGE), NONE, MEDIA, [...proxies])
          .filter((e) => /PER_ADDRESS|PROXIES/.test(e.name))
          .map((e) => [e.name, e.value]),
      );
      expect(env).toEqual(expected);
    },
  );

  it('sets a fixed node port when asked', () => {
    const r = room({ expose: { type: 'NodePort', nodePort: 30080 } });
    expect(buildService(r, resolveSpec(r, IMAGE)).spec?.ports?.[0]?.nodePort).toBe(30080);
  });

  it('routes the host to the Service, with TLS when a secret is named', () => {
    const r = room({
      expose: {
        type: 'Ingress',
        host: 'live.example.com',
        ingressClassName: 'nginx',
        tlsSecretName: 'live-tls',
      },
    });
    const ing = buildIngress(r, resolveSpec(r, IMAGE));
    expect(ing.spec).toEqual({
      ingressClassName: 'nginx',
      tls: [{ hosts: ['live.example.com'], secretName: 'live-tls' }],
      rules: [
        {
          host: 'live.example.com',
          http: {
            paths: [
              { path: '/', pathType: 'Prefix', backend: { service: { name: 'demo', port: { number: 80 } } } },
            ],
          },
        },
      ],
    });
  });
});

describe('buildKeysSecret', () => {
  it('generates a broadcaster key, and a viewer key for a private room', () => {
    const pub = room();
    expect(
      Object.keys(buildKeysSecret(pub, resolveSpec(pub, IMAGE), NONE, undefined, key, MEDIA).data ?? {}),
    ).toEqual(['broadcasterKey']);
    const priv = room({ private: true });
    const s = buildKeysSecret(priv, resolveSpec(priv, IMAGE), NONE, undefined, key, MEDIA);
    expect(Object.keys(s.data ?? {}).sort()).toEqual(['broadcasterKey', 'viewerKey']);
    expect(s.data?.broadcasterKey).not.toBe(s.data?.viewerKey);
    expect(s.metadata?.name).toBe('demo-keys');
  });

  it('never rotates an existing key', () => {
    const existing: V1Secret = { data: { broadcasterKey: b64('keep-me') } };
    const priv = room({ private: true });
    const s = buildKeysSecret(priv, resolveSpec(priv, IMAGE), NONE, existing, key, MEDIA);
    expect(s.data?.broadcasterKey).toBe(b64('keep-me'));
    expect(s.data?.viewerKey).toMatch(/.+/);
    // Made public again, the room keeps its viewer key so that going private later restores old links.
    const pub = room();
    const again = buildKeysSecret(pub, resolveSpec(pub, IMAGE), NONE, s, key, MEDIA);
    expect(again.data).toEqual(s.data);
  });
});

const secretOf = (d: ReturnType<typeof desiredChildren>) =>
  d.apply.find((o) => o.kind === 'Secret') as V1Secret;

describe('desiredChildren', () => {
  it('wants a Secret, Deployment, Service and HPA, and no Ingress, by default', () => {
    const d = desiredChildren(room(), opts, undefined, key);
    expect(d.apply.map((o) => o.kind)).toEqual([
      'NetworkPolicy', // the room's fence, first
      'NetworkPolicy', // its Redis's
      'Secret',
      'Deployment', // the room's Redis (a room of up to 10 replicas needs a backplane)
      'Service',
      'Deployment',
      'Service',
      'HorizontalPodAutoscaler',
    ]);
    expect(d.absent).toContainEqual({ kind: 'Ingress', name: 'demo' });
  });

  it('wants no HPA and zero replicas when suspended', () => {
    const d = desiredChildren(room({ suspend: true }), opts, undefined, key);
    expect(d.apply.map((o) => `${o.kind}/${o.metadata?.name}`)).toEqual([
      'NetworkPolicy/demo',
      'NetworkPolicy/demo-redis',
      'Secret/demo-keys',
      'Deployment/demo-redis',
      'Service/demo-redis',
      'Deployment/demo',
      'Service/demo',
    ]);
    expect(d.absent).toEqual([
      { kind: 'HorizontalPodAutoscaler', name: 'demo' },
      { kind: 'Ingress', name: 'demo' },
      // (a room that does not sleep has no waker slice)
      { kind: 'EndpointSlice', name: 'demo-waker' },
    ]);
    const redis = d.apply.find(
      (o) => o.metadata?.name === 'demo-redis' && o.kind === 'Deployment',
    ) as V1Deployment;
    expect(redis.spec?.replicas).toBe(0);
  });

  it('adds an Ingress for expose type Ingress', () => {
    const d = desiredChildren(
      room({ expose: { type: 'Ingress', host: 'a.example.com' } }),
      opts,
      undefined,
      key,
    );
    expect(d.apply.map((o) => o.kind)).toContain('Ingress');
    expect(d.absent).toEqual([{ kind: 'EndpointSlice', name: 'demo-waker' }]);
  });
});

describe('backplane', () => {
  const b64decode = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString();
  const names = (d: ReturnType<typeof desiredChildren>) =>
    d.apply.map((o) => `${o.kind}/${o.metadata?.name}`);
  const roomContainer = (d: ReturnType<typeof desiredChildren>) =>
    (d.apply.find((o) => o.kind === 'Deployment' && o.metadata?.name === 'demo') as V1Deployment).spec
      ?.template.spec?.containers[0];

  it('is not needed by a room of at most one replica', () => {
    const d = desiredChildren(room({ replicas: { min: 1, max: 1 } }), opts, undefined, key);
    expect(d.backplane).toEqual({ mode: 'none' });
    expect(names(d)).not.toContain('Deployment/demo-redis');
    expect(d.absent).toEqual(
      expect.arrayContaining([
        { kind: 'Deployment', name: 'demo-redis' },
        { kind: 'Service', name: 'demo-redis' },
      ]),
    );
    expect(roomContainer(d)?.env?.map((e) => e.name)).not.toContain('ROOM_REDIS_URL');
    expect(Object.keys(secretOf(d).data ?? {})).toEqual(['broadcasterKey']);
  });

  it("is a Redis of the room's own, behind a password from its Secret, when it can scale out", () => {
    const d = desiredChildren(room(), { ...opts, redisImage: 'example/redis:7' }, undefined, key);
    expect(d.backplane).toEqual({ mode: 'dedicated' });
    expect(names(d)).toEqual([
      'NetworkPolicy/demo',
      'NetworkPolicy/demo-redis',
      'Secret/demo-keys',
      'Deployment/demo-redis',
      'Service/demo-redis',
      'Deployment/demo',
      'Service/demo',
      'HorizontalPodAutoscaler/demo',
    ]);
    const secret = secretOf(d);
    const password = b64decode(secret.data?.redisPassword);
    expect(password).toMatch(/^generated-key-\d+$/);
    expect(b64decode(secret.data?.redisUrl)).toBe(`redis://:${password}@demo-redis:6379`);

    const redis = d.apply.find(
      (o) => o.metadata?.name === 'demo-redis' && o.kind === 'Deployment',
    ) as V1Deployment;
    const pod = redis.spec?.template.spec;
    expect(redis.spec?.replicas).toBe(1);
    expect(redis.spec?.strategy?.type).toBe('Recreate');
    expect(pod?.containers[0]?.image).toBe('example/redis:7');
    expect(pod?.containers[0]?.args).toEqual(expect.arrayContaining(['--requirepass', '$(REDIS_PASSWORD)']));
    expect(pod?.containers[0]?.env).toEqual([
      { name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: 'demo-keys', key: 'redisPassword' } } },
    ]);
    expect(pod?.securityContext?.runAsNonRoot).toBe(true);
    expect(pod?.containers[0]?.securityContext?.readOnlyRootFilesystem).toBe(true);
    expect(pod?.containers[0]?.resources?.requests).toBeDefined();
    // The room's selector must never pick the Redis pod.
    const roomSelector =
      (d.apply.find((o) => o.kind === 'Deployment' && o.metadata?.name === 'demo') as V1Deployment).spec
        ?.selector.matchLabels ?? {};
    const redisLabels = pod ? (redis.spec?.template.metadata?.labels ?? {}) : {};
    expect(Object.entries(roomSelector).every(([k, v]) => redisLabels[k] === v)).toBe(false);
    const redisService = d.apply.find(
      (o) => o.kind === 'Service' && o.metadata?.name === 'demo-redis',
    ) as V1Service;
    expect(redisService.spec?.selector).toEqual(redis.spec?.selector.matchLabels);

    expect(roomContainer(d)?.env).toEqual(
      expect.arrayContaining([
        { name: 'ROOM_REDIS_URL', valueFrom: { secretKeyRef: { name: 'demo-keys', key: 'redisUrl' } } },
        { name: 'ROOM_REDIS_KEY_PREFIX', value: 'streamroom:team-a:demo:' },
      ]),
    );
    // The password survives reconciles.
    const again = desiredChildren(room(), opts, secret, key);
    expect(secretOf(again).data).toEqual(secret.data);
  });

  it("is the operator's shared Redis, as the room's own ACL user with its own key prefix, when configured", () => {
    const url = 'rediss://admin:admin-pw@redis.shared.svc:6380/2';
    const d = desiredChildren(room(), { ...opts, sharedRedisUrl: url }, undefined, key);
    expect(d.backplane).toEqual({ mode: 'shared', adminUrl: url });
    expect(names(d)).not.toContain('Deployment/demo-redis');
    const secret = secretOf(d);
    const password = b64decode(secret.data?.redisPassword);
    expect(password).toMatch(/^generated-key-/);
    // the room's user and password: never the admin's
    expect(b64decode(secret.data?.redisUrl)).toBe(
      `rediss://room%3Ateam-a%3Ademo:${encodeURIComponent(password)}@redis.shared.svc:6380/2`,
    );
    expect(b64decode(secret.data?.redisUrl)).not.toContain('admin-pw');
    expect(roomContainer(d)?.env).toContainEqual({
      name: 'ROOM_REDIS_KEY_PREFIX',
      value: 'streamroom:team-a:demo:',
    });
  });
});

describe('imageTag', () => {
  it.each([
    ['example/room:1.2.3', '1.2.3'],
    ['localhost:5000/room:v2', 'v2'],
    ['localhost:5000/room', undefined],
    ['room@sha256:abc', undefined],
    ['room:1.0@sha256:abc', '1.0'],
  ])('%s -> %s', (image, tag) => expect(imageTag(image)).toBe(tag));
});

describe('buildNetworkPolicies', () => {
  const ports = (rule: { ports?: { protocol?: string; port?: number | string }[] } | undefined) =>
    (rule?.ports ?? []).map((p) => `${p.protocol}/${p.port}`);

  it('lets in web, media and metrics; lets out DNS, the room\u2019s Redis, its own relays and its ICE servers', () => {
    const r = room({ iceServers: [{ urls: ['stun:stun.example.org', 'turns:turn.example.org:443'] }] });
    const spec = resolveSpec(r, IMAGE);
    const [fence, redis] = buildNetworkPolicies(r, spec, { mode: 'dedicated' }, MEDIA);
    expect(fence?.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'StreamRoom', controller: true });
    expect(fence?.spec?.podSelector).toEqual({ matchLabels: selectorLabels(r) });
    expect(fence?.spec?.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(fence?.spec?.ingress?.map(ports)).toEqual([
      ['TCP/8080'],
      ['UDP/20000', 'TCP/20000'],
      ['TCP/9090'],
    ]);
    expect(fence?.spec?.ingress?.every((rule) => rule._from === undefined)).toBe(true);
    const egress = fence?.spec?.egress ?? [];
    expect(egress.map(ports)).toEqual([
      ['UDP/53', 'TCP/53'],
      ['TCP/6379'],
      ['UDP/20000', 'TCP/20000'],
      ['UDP/443', 'TCP/443', 'UDP/3478', 'TCP/3478'],
    ]);
    expect(egress[1]?.to).toEqual([{ podSelector: { matchLabels: redisSelectorLabels(r) } }]);
    // HostPort: relays reach each other at their nodes' addresses, on the room's port only
    expect(egress[2]?.to).toBeUndefined();
    const turn: MediaPlan = { mode: 'SFU', network: 'TURN', turnUrls: ['turn:t:3478'], turnRoomKey: 'k' };
    const [viaTurn] = buildNetworkPolicies(r, spec, { mode: 'dedicated' }, turn);
    expect(viaTurn?.spec?.egress?.[2]).toEqual({
      to: [{ podSelector: { matchLabels: selectorLabels(r) } }],
      ports: [
        { protocol: 'UDP', port: 7882 },
        { protocol: 'TCP', port: 7881 },
      ],
    });
    // the room's Redis: only the room's pods may connect, and it connects nowhere
    expect(redis?.spec?.ingress).toEqual([
      {
        _from: [{ podSelector: { matchLabels: selectorLabels(r) } }],
        ports: [{ protocol: 'TCP', port: 6379 }],
      },
    ]);
    expect(redis?.spec?.egress).toEqual([]);
  });

  it('takes web traffic only from the ingress controller\u2019s namespace when the room is behind an Ingress', () => {
    const r = room({ expose: { type: 'Ingress', host: 'live.example.com' }, replicas: { max: 1 } });
    const [fence, ...rest] = buildNetworkPolicies(
      r,
      resolveSpec(r, IMAGE),
      NONE,
      { mode: 'PeerToPeer' },
      {
        ingressNamespace: 'ingress-nginx',
      },
    );
    expect(rest).toEqual([]);
    expect(fence?.spec?.ingress?.[0]?._from).toEqual([
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } },
    ]);
    // PeerToPeer: no media port, only DNS out
    expect(fence?.spec?.ingress?.map(ports)).toEqual([['TCP/8080'], ['TCP/9090']]);
    expect(fence?.spec?.egress?.map(ports)).toEqual([['UDP/53', 'TCP/53']]);
  });
});
