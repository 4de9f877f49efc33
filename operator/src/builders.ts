// Pure functions: a StreamRoom in, the Kubernetes objects it wants out. No I/O here.
import type {
  V1ContainerPort,
  V1NetworkPolicy,
  V1NetworkPolicyEgressRule,
  KubernetesObject,
  V1Deployment,
  V1EndpointSlice,
  V1EnvVar,
  V1Ingress,
  V1OwnerReference,
  V1Secret,
  V1Service,
  V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';
import { resolveSpec, type ResolvedSpec } from './defaults.js';
import { roomRedisUrl } from './redis-acl.js';
import { API_VERSION, KIND, type MediaNetwork, type StreamRoom } from './types.js';

/** The one field manager the operator applies with. */
export const FIELD_MANAGER = 'streamroom-operator';
/** Port the room server listens on inside its container. */
export const ROOM_CONTAINER_PORT = 8080;
/** SFU rooms: the media relay's one UDP port (all viewers share it) and its ICE-TCP port. */
export const RELAY_UDP_PORT = 7882;
export const RELAY_TCP_PORT = 7881;
/** Grace period the room pods get on shutdown; the room server exits well within it. */
export const TERMINATION_GRACE_SECONDS = 30;
export const ROOM_SHUTDOWN_TIMEOUT_SECONDS = 20;
/**
 * Seconds a terminating room pod keeps serving before it is told to stop: endpoints and every node's
 * proxy rules drop the pod meanwhile, so no new connection reaches a server that is going away.
 */
export const ROOM_PRESTOP_SLEEP_SECONDS = 5;
export const BROADCASTER_KEY = 'broadcasterKey';
export const VIEWER_KEY = 'viewerKey';
/** Password of a room's own Redis, in the keys Secret. */
export const REDIS_PASSWORD_KEY = 'redisPassword';
/** The Redis URL (with its password) the room server connects to, in the keys Secret. */
export const REDIS_URL_KEY = 'redisUrl';
/** TURN rooms: the room's own key to mint visitors' TURN credentials with (derived from the gateway's secret). */
export const TURN_KEY = 'turnKey';
export const REDIS_PORT = 6379;
/** Redis image for rooms' own backplanes when the operator is not told otherwise. */
export const DEFAULT_REDIS_IMAGE = 'redis:7.4-alpine';

export interface BuildOptions {
  /** Room image used when the StreamRoom does not name one. */
  defaultImage: string;
  /** The ingress controller's namespace (--ingress-namespace): Ingress rooms take web traffic only from it. */
  ingressNamespace?: string;
  /** SFU rooms: the network when the room names none (--media-network), and what each network needs. */
  media?: {
    defaultNetwork: MediaNetwork;
    /** HostPort: the port the controller gave this room. */
    port?: number;
    /** TURN: the gateway's URLs for browsers, and this room's key to mint credentials with. */
    turn?: { urls: string[]; roomKey: string };
  };
  /** Proxies in front of rooms (e.g. the ingress controller's pods) whose X-Forwarded-For rooms trust. */
  trustedProxies?: string[];
  /** Image of a room's own Redis (the backplane of a room that can run several replicas). */
  redisImage?: string;
  /** A Redis every multi-replica room shares (with a key prefix of its own) instead of running its own. */
  sharedRedisUrl?: string;
  /**
   * spec.hibernation: `asleep` runs no pods, no autoscaler and no Redis of its own; `waker` (while
   * asleep and until a woken room has a ready pod) points the room's Service at the operator's waker.
   */
  hibernation?: { asleep: boolean; waker?: Waker };
}

/** Where the operator's waker answers (its pod's address and port). */
export interface Waker {
  address: string;
  port: number;
}

/** The EndpointSlice that points a sleeping room's Service at the waker (`<room>-waker`). */
export function wakerSliceName(roomName: string): string {
  return `${roomName}-waker`;
}

/**
 * How a room's replicas share chat, presence and signaling: not at all (a room of at most one replica),
 * through a Redis of its own (Deployment and Service `<room>-redis`), or through the operator's shared
 * Redis with a key prefix per room.
 */
export type Backplane = { mode: 'none' } | { mode: 'dedicated' } | { mode: 'shared'; adminUrl: string };

export function backplaneFor(spec: ResolvedSpec, options: BuildOptions): Backplane {
  if (spec.replicas.max <= 1) return { mode: 'none' };
  return options.sharedRedisUrl
    ? { mode: 'shared', adminUrl: options.sharedRedisUrl }
    : { mode: 'dedicated' };
}

/**
 * How an SFU room's relays are reached, with everything the room's pods need for it; PeerToPeer rooms
 * have no relay.
 */
export type MediaPlan =
  | { mode: 'PeerToPeer' }
  | { mode: 'SFU'; network: 'HostPort'; port: number }
  | { mode: 'SFU'; network: 'TURN'; turnUrls: string[]; turnRoomKey: string };

/** A room the operator cannot build as it asks (reported in the room's conditions, with this reason). */
export class PlanError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export function mediaPlan(spec: ResolvedSpec, options: BuildOptions): MediaPlan {
  if (spec.media.mode === 'PeerToPeer') return { mode: 'PeerToPeer' };
  if (spec.media.network === 'TURN') {
    const turn = options.media?.turn;
    if (!turn) {
      throw new PlanError(
        'TURNNotConfigured',
        'media.network is TURN but the operator has no TURN gateway (install the chart with turn.enabled, or use HostPort)',
      );
    }
    return { mode: 'SFU', network: 'TURN', turnUrls: turn.urls, turnRoomKey: turn.roomKey };
  }
  const port = options.media?.port;
  if (port === undefined)
    throw new PlanError('NoMediaPort', "no media port is free in the operator's --media-port-range");
  return { mode: 'SFU', network: 'HostPort', port };
}

/** The metrics port of the room server (not in the room's Service: scraped at the pods). */
export const ROOM_METRICS_PORT = 9090;

/** The ports of the ICE servers a room names (egress its relay may need), default 3478 / 5349 (TLS). */
function iceServerPorts(spec: ResolvedSpec): number[] {
  const ports = new Set<number>();
  for (const s of spec.iceServers) {
    for (const url of s.urls) {
      const m = /^(stuns?|turns?):(?:\[[^\]]+\]|[^:?]+)(?::(\d+))?/.exec(url);
      if (!m) continue;
      ports.add(m[2] ? Number(m[2]) : m[1]!.endsWith('s') ? 5349 : 3478);
    }
  }
  return [...ports].sort((a, b) => a - b);
}

/**
 * The room's network fence (networking.k8s.io/v1), owned by the room. Its pods take web traffic on
 * their http port (from anywhere, or only from the ingress controller's namespace when the room is
 * exposed through an Ingress and the operator knows that namespace), media on the relay's ports, and
 * metrics scrapes; they may reach DNS, their Redis, each other's relays, and the ICE servers they
 * name, nothing else (replies to what came in are allowed: policies are stateful). The room's own
 * Redis takes connections from the room's pods only and makes none.
 */
export function buildNetworkPolicies(
  room: StreamRoom,
  spec: ResolvedSpec,
  backplane: Backplane,
  media: MediaPlan,
  options: { ingressNamespace?: string } = {},
): V1NetworkPolicy[] {
  const tcp = (port: number | string) => ({ protocol: 'TCP', port });
  const udp = (port: number | string) => ({ protocol: 'UDP', port });
  const ownPods = { podSelector: { matchLabels: selectorLabels(room) } };
  const mediaPorts =
    media.mode !== 'SFU'
      ? []
      : media.network === 'HostPort'
        ? [udp(media.port), tcp(media.port)]
        : [udp(RELAY_UDP_PORT), tcp(RELAY_TCP_PORT)];
  const webFrom =
    spec.expose.type === 'Ingress' && options.ingressNamespace
      ? [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': options.ingressNamespace } } }]
      : undefined;
  const redisPort = (url: string) => Number(new URL(url).port || 6379);
  const egress: V1NetworkPolicyEgressRule[] = [{ ports: [udp(53), tcp(53)] }];
  if (backplane.mode === 'dedicated') {
    egress.push({
      to: [{ podSelector: { matchLabels: redisSelectorLabels(room) } }],
      ports: [tcp(REDIS_PORT)],
    });
  } else if (backplane.mode === 'shared') {
    egress.push({ ports: [tcp(redisPort(backplane.adminUrl))] });
  }
  // relay to relay: on the TURN network to the pods themselves; with HostPort to their nodes'
  // addresses (the room's own port, wherever its pods run)
  if (media.mode === 'SFU')
    egress.push({ ...(media.network === 'TURN' ? { to: [ownPods] } : {}), ports: mediaPorts });
  const ice = iceServerPorts(spec);
  if (ice.length) egress.push({ ports: ice.flatMap((p) => [udp(p), tcp(p)]) });
  const policies: V1NetworkPolicy[] = [
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: childMeta(room, room.metadata.name, spec.image),
      spec: {
        podSelector: { matchLabels: selectorLabels(room) },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [
          { ...(webFrom ? { _from: webFrom } : {}), ports: [tcp(ROOM_CONTAINER_PORT)] },
          ...(mediaPorts.length ? [{ ports: mediaPorts }] : []),
          { ports: [tcp(ROOM_METRICS_PORT)] },
        ],
        egress,
      },
    },
  ];
  if (backplane.mode === 'dedicated') {
    policies.push({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: childMeta(room, redisName(room.metadata.name), spec.image),
      spec: {
        podSelector: { matchLabels: redisSelectorLabels(room) },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ _from: [ownPods], ports: [tcp(REDIS_PORT)] }],
        egress: [],
      },
    });
  }
  return policies;
}

export function redisName(roomName: string): string {
  return `${roomName}-redis`;
}

/** The key prefix a room uses in Redis; unique per room, so rooms can share one Redis. */
export function redisKeyPrefix(room: StreamRoom): string {
  return `streamroom:${room.metadata.namespace}:${room.metadata.name}:`;
}

export function keysSecretName(roomName: string): string {
  return `${roomName}-keys`;
}

/** Labels that select a room's pods; they never change over the room's life. */
export function selectorLabels(room: StreamRoom): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'streamroom',
    'app.kubernetes.io/instance': room.metadata.name,
  };
}

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'streamroom-operator';

/** The recommended app.kubernetes.io labels for every child of a room. */
export function roomLabels(room: StreamRoom, image?: string): Record<string, string> {
  const labels: Record<string, string> = {
    ...selectorLabels(room),
    'app.kubernetes.io/component': 'room',
    'app.kubernetes.io/part-of': 'streamroom',
    [MANAGED_BY_LABEL]: MANAGED_BY,
  };
  const version = image ? imageTag(image) : undefined;
  if (version) labels['app.kubernetes.io/version'] = version;
  return labels;
}

/** The tag of an image reference when it is a valid label value (digests and odd tags are skipped). */
export function imageTag(image: string): string | undefined {
  const withoutDigest = image.split('@')[0] ?? '';
  const lastSlash = withoutDigest.lastIndexOf('/');
  const colon = withoutDigest.indexOf(':', lastSlash + 1);
  if (colon < 0) return undefined;
  const tag = withoutDigest.slice(colon + 1);
  return /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/.test(tag) ? tag : undefined;
}

export function ownerReference(room: StreamRoom): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name: room.metadata.name,
    uid: room.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

function childMeta(room: StreamRoom, name: string, image?: string) {
  return {
    name,
    namespace: room.metadata.namespace,
    labels: roomLabels(room, image),
    ownerReferences: [ownerReference(room)],
  };
}

function secretEnv(name: string, secret: string, key: string, optional = false): V1EnvVar {
  return { name, valueFrom: { secretKeyRef: { name: secret, key, ...(optional ? { optional } : {}) } } };
}

/** The relay's settings: its ports and, with HostPort, the node's address it tells browsers. */
function relayEnv(media: MediaPlan): V1EnvVar[] {
  if (media.mode !== 'SFU') return [];
  const [udp, tcp] =
    media.network === 'HostPort' ? [media.port, media.port] : [RELAY_UDP_PORT, RELAY_TCP_PORT];
  const env: V1EnvVar[] = [
    { name: 'ROOM_RELAY_UDP_PORT', value: String(udp) },
    { name: 'ROOM_RELAY_TCP_PORT', value: String(tcp) },
  ];
  if (media.network === 'HostPort') {
    env.push({
      name: 'ROOM_RELAY_ANNOUNCE_ADDRESSES',
      valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } },
    });
  }
  return env;
}

/** The relay's container ports; with HostPort they are also the node's ports. */
function relayPorts(media: MediaPlan): V1ContainerPort[] {
  if (media.mode !== 'SFU') return [];
  if (media.network === 'HostPort') {
    return [
      { name: 'media-udp', containerPort: media.port, hostPort: media.port, protocol: 'UDP' },
      { name: 'media-tcp', containerPort: media.port, hostPort: media.port, protocol: 'TCP' },
    ];
  }
  return [
    { name: 'media-udp', containerPort: RELAY_UDP_PORT, protocol: 'UDP' },
    { name: 'media-tcp', containerPort: RELAY_TCP_PORT, protocol: 'TCP' },
  ];
}

/** Environment of the room server container: the contract between operator and room image. */
export function roomEnv(
  room: StreamRoom,
  spec: ResolvedSpec,
  backplane: Backplane,
  media: MediaPlan,
  trustedProxies: string[] = [],
): V1EnvVar[] {
  const secret = keysSecretName(room.metadata.name);
  const env: V1EnvVar[] = [
    { name: 'PORT', value: String(ROOM_CONTAINER_PORT) },
    { name: 'ROOM_NAME', value: room.metadata.name },
    { name: 'ROOM_NAMESPACE', value: room.metadata.namespace },
    { name: 'ROOM_TITLE', value: spec.title },
    secretEnv('ROOM_BROADCASTER_KEY', secret, BROADCASTER_KEY),
  ];
  if (spec.private) env.push(secretEnv('ROOM_VIEWER_KEY', secret, VIEWER_KEY));
  env.push(
    { name: 'ROOM_MAX_VIEWERS', value: String(spec.maxViewers) },
    { name: 'ROOM_MEDIA_MODE', value: spec.media.mode },
    ...relayEnv(media),
    { name: 'CHAT_ENABLED', value: String(spec.chat.enabled) },
    { name: 'CHAT_HISTORY_SIZE', value: String(spec.chat.historySize) },
    { name: 'CHAT_MAX_MESSAGE_LENGTH', value: String(spec.chat.maxMessageLength) },
    { name: 'CHAT_MESSAGES_PER_MINUTE', value: String(spec.chat.messagesPerMinute) },
    {
      name: 'ICE_SERVERS',
      value: JSON.stringify(
        spec.iceServers.map((s) => ({ urls: s.urls, ...(s.username ? { username: s.username } : {}) })),
      ),
    },
  );
  spec.iceServers.forEach((s, i) => {
    if (s.credentialSecretRef) {
      env.push(
        secretEnv(`ICE_SERVER_${i}_CREDENTIAL`, s.credentialSecretRef.name, s.credentialSecretRef.key),
      );
    }
  });
  if (media.mode === 'SFU' && media.network === 'TURN') {
    env.push(
      { name: 'ROOM_TURN_URLS', value: media.turnUrls.join(',') },
      secretEnv('ROOM_TURN_KEY', secret, TURN_KEY),
    );
  }
  env.push({ name: 'SHUTDOWN_TIMEOUT_SECONDS', value: String(ROOM_SHUTDOWN_TIMEOUT_SECONDS) });
  env.push({ name: 'ROOM_METRICS_PORT', value: String(ROOM_METRICS_PORT) });
  // Seats and new ids per visitor address only where the room sees visitors' addresses: through a
  // LoadBalancer that keeps them (externalTrafficPolicy Local), or behind proxies it trusts to say
  // them (X-Forwarded-For). Elsewhere every visitor would share the proxy's or the node's address.
  if (spec.expose.type !== 'LoadBalancer' && (spec.expose.type === 'NodePort' || !trustedProxies.length)) {
    env.push(
      { name: 'ROOM_MAX_VIEWERS_PER_ADDRESS', value: '0' },
      { name: 'ROOM_NEW_USERS_PER_ADDRESS_PER_MINUTE', value: '0' },
    );
  } else if (trustedProxies.length && spec.expose.type !== 'LoadBalancer') {
    env.push({ name: 'ROOM_TRUSTED_PROXIES', value: trustedProxies.join(',') });
  }
  if (backplane.mode !== 'none') {
    env.push(secretEnv('ROOM_REDIS_URL', secret, REDIS_URL_KEY), {
      name: 'ROOM_REDIS_KEY_PREFIX',
      value: redisKeyPrefix(room),
    });
  }
  return env;
}

export function buildDeployment(
  room: StreamRoom,
  spec: ResolvedSpec,
  backplane: Backplane,
  media: MediaPlan,
  trustedProxies: string[] = [],
  asleep = false,
): V1Deployment {
  const labels = roomLabels(room, spec.image);
  const deployment: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: childMeta(room, room.metadata.name, spec.image),
    spec: {
      // Without suspend (or hibernation) the HPA owns the replica count, so it is left out of what the
      // operator applies.
      ...(spec.suspend || asleep ? { replicas: 0 } : {}),
      selector: { matchLabels: selectorLabels(room) },
      // A new pod normally starts before an old one stops. With HostPort a new pod needs the old one's
      // port: on a node without a free one it waits, so one old pod may stop first (a brief gap).
      strategy: {
        type: 'RollingUpdate',
        rollingUpdate: {
          maxUnavailable: media.mode === 'SFU' && media.network === 'HostPort' ? 1 : 0,
          maxSurge: 1,
        },
      },
      template: {
        metadata: {
          labels,
          // the room server's /metrics, on a port of its own that the room's Service does not expose
          annotations: {
            'prometheus.io/scrape': 'true',
            'prometheus.io/port': String(ROOM_METRICS_PORT),
            'prometheus.io/path': '/metrics',
          },
        },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: TERMINATION_GRACE_SECONDS,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 1000,
            runAsGroup: 1000,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [
            {
              name: 'room',
              image: spec.image,
              ports: [
                { name: 'http', containerPort: ROOM_CONTAINER_PORT, protocol: 'TCP' },
                { name: 'metrics', containerPort: ROOM_METRICS_PORT, protocol: 'TCP' },
                ...relayPorts(media),
              ],
              env: roomEnv(room, spec, backplane, media, trustedProxies),
              resources: spec.resources,
              lifecycle: { preStop: { sleep: { seconds: ROOM_PRESTOP_SLEEP_SECONDS } } },
              readinessProbe: {
                httpGet: { path: '/readyz', port: 'http' },
                periodSeconds: 5,
                failureThreshold: 2,
              },
              livenessProbe: {
                httpGet: { path: '/healthz', port: 'http' },
                periodSeconds: 10,
                failureThreshold: 3,
              },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
            },
          ],
          volumes: [{ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }],
        },
      },
    },
  };
  return deployment;
}

export function buildService(room: StreamRoom, spec: ResolvedSpec): V1Service {
  const type = spec.expose.type === 'Ingress' ? 'ClusterIP' : spec.expose.type;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: childMeta(room, room.metadata.name, spec.image),
    spec: {
      type,
      selector: selectorLabels(room),
      ports: [
        {
          name: 'http',
          port: spec.expose.port,
          targetPort: 'http',
          protocol: 'TCP',
          ...(type === 'NodePort' && spec.expose.nodePort ? { nodePort: spec.expose.nodePort } : {}),
        },
      ],
      // Clients use WebSocket, which needs no affinity (replicas share state through the backplane);
      // ClientIP affinity also keeps socket.io's long-polling fallback on one replica.
      sessionAffinity: 'ClientIP',
      // visitors' own addresses reach the room (its limits per address), only to nodes with a pod
      ...(type === 'LoadBalancer' ? { externalTrafficPolicy: 'Local' } : {}),
    },
  };
}

export function buildHpa(room: StreamRoom, spec: ResolvedSpec): V2HorizontalPodAutoscaler {
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: childMeta(room, room.metadata.name, spec.image),
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: room.metadata.name },
      minReplicas: spec.replicas.min,
      maxReplicas: spec.replicas.max,
      metrics: [
        {
          type: 'Resource',
          resource: {
            name: 'cpu',
            target: {
              type: 'Utilization',
              averageUtilization: spec.autoscaling.targetCPUUtilizationPercentage,
            },
          },
        },
      ],
      behavior: {
        scaleDown: { stabilizationWindowSeconds: spec.autoscaling.scaleDownStabilizationWindowSeconds },
      },
    },
  };
}

export function buildIngress(room: StreamRoom, spec: ResolvedSpec): V1Ingress {
  const host = spec.expose.host ?? '';
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: childMeta(room, room.metadata.name, spec.image),
    spec: {
      ...(spec.expose.ingressClassName ? { ingressClassName: spec.expose.ingressClassName } : {}),
      ...(spec.expose.tlsSecretName
        ? { tls: [{ hosts: [host], secretName: spec.expose.tlsSecretName }] }
        : {}),
      rules: [
        {
          host,
          http: {
            paths: [
              {
                path: '/',
                pathType: 'Prefix',
                backend: { service: { name: room.metadata.name, port: { number: spec.expose.port } } },
              },
            ],
          },
        },
      ],
    },
  };
}

/** Labels of a room's Redis: its own name, so the room's selectors never pick its pods. */
export function redisSelectorLabels(room: StreamRoom): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'streamroom-redis',
    'app.kubernetes.io/instance': room.metadata.name,
  };
}

function redisMeta(room: StreamRoom, image: string) {
  const version = imageTag(image);
  return {
    name: redisName(room.metadata.name),
    namespace: room.metadata.namespace,
    labels: {
      ...redisSelectorLabels(room),
      'app.kubernetes.io/component': 'backplane',
      'app.kubernetes.io/part-of': 'streamroom',
      [MANAGED_BY_LABEL]: MANAGED_BY,
      ...(version ? { 'app.kubernetes.io/version': version } : {}),
    },
    ownerReferences: [ownerReference(room)],
  };
}

/**
 * A room's own Redis: one replica, in memory only (chat history and presence live no longer than the
 * room's pods), password from the room's Secret, bounded memory, non-root on a read-only filesystem.
 * The arguments suit the official image (its entrypoint runs redis-server with them) and any image whose
 * entrypoint is redis-server.
 */
export function buildRedisDeployment(room: StreamRoom, spec: ResolvedSpec, image: string): V1Deployment {
  const secret = keysSecretName(room.metadata.name);
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: redisMeta(room, image),
    spec: {
      replicas: spec.suspend ? 0 : 1,
      selector: { matchLabels: redisSelectorLabels(room) },
      // Never two Redis at once: the room's replicas must all meet in the same one.
      strategy: { type: 'Recreate' },
      template: {
        metadata: { labels: redisMeta(room, image).labels },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 999,
            runAsGroup: 999,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [
            {
              name: 'redis',
              image,
              args: [
                '--port',
                String(REDIS_PORT),
                '--requirepass',
                '$(REDIS_PASSWORD)',
                '--save',
                '',
                '--appendonly',
                'no',
                '--dir',
                '/data',
                '--maxmemory',
                '96mb',
                '--maxmemory-policy',
                'noeviction',
              ],
              env: [secretEnv('REDIS_PASSWORD', secret, REDIS_PASSWORD_KEY)],
              ports: [{ name: 'redis', containerPort: REDIS_PORT, protocol: 'TCP' }],
              resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '128Mi' } },
              readinessProbe: { tcpSocket: { port: 'redis' }, periodSeconds: 5 },
              livenessProbe: { tcpSocket: { port: 'redis' }, periodSeconds: 10, failureThreshold: 3 },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [{ name: 'data', mountPath: '/data' }],
            },
          ],
          volumes: [{ name: 'data', emptyDir: { sizeLimit: '64Mi' } }],
        },
      },
    },
  };
}

export function buildRedisService(room: StreamRoom, image: string): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: redisMeta(room, image),
    spec: {
      type: 'ClusterIP',
      selector: redisSelectorLabels(room),
      ports: [{ name: 'redis', port: REDIS_PORT, targetPort: 'redis', protocol: 'TCP' }],
    },
  };
}

/**
 * The room's Secret: its broadcaster key, for a private room its viewer key, and for a room with a
 * backplane the Redis URL (and the password of its own Redis). Keys that already exist are kept as they
 * are (never rotated by a reconcile); only missing ones are generated.
 */
export function buildKeysSecret(
  room: StreamRoom,
  spec: ResolvedSpec,
  backplane: Backplane,
  existing: V1Secret | undefined,
  generateKey: () => string,
  media: MediaPlan,
): V1Secret {
  const data: Record<string, string> = {};
  const keep = (key: string) => {
    const current = existing?.data?.[key];
    data[key] = current ? current : Buffer.from(generateKey()).toString('base64');
    return Buffer.from(data[key], 'base64').toString();
  };
  keep(BROADCASTER_KEY);
  if (spec.private || existing?.data?.[VIEWER_KEY]) keep(VIEWER_KEY);
  if (backplane.mode === 'dedicated') {
    const password = keep(REDIS_PASSWORD_KEY);
    const url = `redis://:${encodeURIComponent(password)}@${redisName(room.metadata.name)}:${REDIS_PORT}`;
    data[REDIS_URL_KEY] = Buffer.from(url).toString('base64');
  } else if (backplane.mode === 'shared') {
    // the room's own ACL user on the shared Redis (the operator creates it): never the admin's password
    const password = keep(REDIS_PASSWORD_KEY);
    const url = roomRedisUrl(backplane.adminUrl, room.metadata.namespace, room.metadata.name, password);
    data[REDIS_URL_KEY] = Buffer.from(url).toString('base64');
  }
  if (media.mode === 'SFU' && media.network === 'TURN') {
    data[TURN_KEY] = Buffer.from(media.turnRoomKey).toString('base64');
  }
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: childMeta(room, keysSecretName(room.metadata.name)),
    type: 'Opaque',
    data,
  };
}

/**
 * The room Service's extra endpoint while the room sleeps: the operator's waker. The Service keeps
 * its selector (no pod matches while the room sleeps, so the EndpointSlice controller's own slice is
 * empty); kube-proxy routes to every slice labelled with the Service's name, so traffic to the URL
 * reaches the waker, and the room's pods again once this slice is deleted.
 */
export function buildWakerSlice(room: StreamRoom, spec: ResolvedSpec, waker: Waker): V1EndpointSlice {
  const meta = childMeta(room, wakerSliceName(room.metadata.name), spec.image);
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      ...meta,
      labels: {
        ...meta.labels,
        [SERVICE_NAME_LABEL]: room.metadata.name,
        [SLICE_MANAGED_BY_LABEL]: MANAGED_BY,
      },
    },
    addressType: waker.address.includes(':') ? 'IPv6' : 'IPv4',
    endpoints: [{ addresses: [waker.address], conditions: { ready: true } }],
    // the Service's port name, and where the waker listens
    ports: [{ name: 'http', port: waker.port, protocol: 'TCP' }],
  };
}

/** The label that ties an EndpointSlice to its Service (kube-proxy reads slices by it). */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** Who manages an EndpointSlice; the EndpointSlice controller leaves slices of other managers alone. */
export const SLICE_MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const SLICE_CONTROLLER = 'endpointslice-controller.k8s.io';

export type ChildKind =
  | 'Secret'
  | 'Deployment'
  | 'Service'
  | 'HorizontalPodAutoscaler'
  | 'Ingress'
  | 'NetworkPolicy'
  | 'EndpointSlice';

/** Every kind of child a room can own, in the order they are applied. */
export const CHILD_KINDS: readonly ChildKind[] = [
  'NetworkPolicy',
  'Secret',
  'Deployment',
  'Service',
  'HorizontalPodAutoscaler',
  'Ingress',
  'EndpointSlice',
];

export interface DesiredChildren {
  spec: ResolvedSpec;
  backplane: Backplane;
  media: MediaPlan;
  /** Objects to apply, in order. */
  apply: KubernetesObject[];
  /** Children this room must not have (they are deleted when present). */
  absent: { kind: ChildKind; name: string }[];
}

/** Everything a room wants, given its existing Secret (whose keys are kept). */
export function desiredChildren(
  room: StreamRoom,
  options: BuildOptions,
  existingSecret: V1Secret | undefined,
  generateKey: () => string,
): DesiredChildren {
  const spec = resolveSpec(room, options.defaultImage, options.media?.defaultNetwork);
  const backplane = backplaneFor(spec, options);
  const media = mediaPlan(spec, options);
  const name = room.metadata.name;
  const apply: KubernetesObject[] = [
    buildKeysSecret(room, spec, backplane, existingSecret, generateKey, media),
  ];
  const absent: DesiredChildren['absent'] = [];
  const asleep = options.hibernation?.asleep ?? false;
  // the fence first, so that no pod of the room ever runs without it
  const policies = buildNetworkPolicies(room, spec, backplane, media, options);
  // a sleeping room gives back its own Redis (and that Redis' fence)
  if (asleep && policies.length > 1) policies.length = 1;
  apply.unshift(...policies);
  if (policies.length === 1) absent.push({ kind: 'NetworkPolicy', name: redisName(name) });
  if (backplane.mode === 'dedicated' && !asleep) {
    const image = options.redisImage ?? DEFAULT_REDIS_IMAGE;
    apply.push(buildRedisDeployment(room, spec, image), buildRedisService(room, image));
  } else {
    absent.push({ kind: 'Deployment', name: redisName(name) }, { kind: 'Service', name: redisName(name) });
  }
  apply.push(
    buildDeployment(room, spec, backplane, media, options.trustedProxies, asleep),
    buildService(room, spec),
  );
  if (spec.suspend || asleep) absent.push({ kind: 'HorizontalPodAutoscaler', name });
  else apply.push(buildHpa(room, spec));
  if (spec.expose.type === 'Ingress') apply.push(buildIngress(room, spec));
  else absent.push({ kind: 'Ingress', name });
  const waker = options.hibernation?.waker;
  if (waker && !spec.suspend) apply.push(buildWakerSlice(room, spec, waker));
  else absent.push({ kind: 'EndpointSlice', name: wakerSliceName(name) });
  return { spec, backplane, media, apply, absent };
}
