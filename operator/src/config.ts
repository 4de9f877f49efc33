// Operator configuration from command-line flags, then environment variables, then defaults.
import { parseArgs } from 'node:util';
import { DEFAULT_REDIS_IMAGE } from './builders.js';
import type { LogLevel } from './log.js';
import { parseHosts, parseImages, type RoomPolicy } from './policy.js';
import { parsePortRange, type PortRange } from './ports.js';
import type { MediaNetwork } from './types.js';

export interface OperatorConfig {
  /** Room image for StreamRooms that do not name one. */
  defaultImage: string;
  /** Namespaces to watch; empty means all. */
  namespaces: string[];
  workers: number;
  /** Client-side limit on the operator's API requests (not watches): sustained rate and burst. */
  kubeApiQps: number;
  kubeApiBurst: number;
  logLevel: LogLevel;
  /** Every room is reconciled at least this often, even when nothing changes. */
  resyncPeriodSeconds: number;
  /** A watch that delivers nothing for this long is replaced by a fresh list and watch. */
  watchIdleTimeoutSeconds: number;
  clusterDomain: string;
  /** Address used in NodePort URLs instead of a node's own address (e.g. a port-forwarded host). */
  nodeAddress?: string;
  /** host:port of the health and metrics endpoint; empty disables it. */
  healthAddress: string;
  /** Image of the Redis a multi-replica room runs as its backplane. */
  redisImage: string;
  /** A Redis all multi-replica rooms share (key prefix per room) instead of one Redis each. */
  sharedRedisUrl?: string;
  /** Path of a kubeconfig; when empty the usual lookup ($KUBECONFIG, ~/.kube/config, in-cluster). */
  kubeconfig?: string;
  /** How browsers reach SFU rooms' relays when a room names no media.network. */
  mediaNetwork: MediaNetwork;
  /** HostPort rooms get one port each from this range. */
  mediaPortRange: PortRange;
  /** The cluster's TURN gateway: its URLs for browsers, and the file holding its secret. */
  turn?: { urls: string[]; secretFile: string };
  /** What tenants may ask for (images, Ingress hosts); empty lists allow anything. */
  policy: RoomPolicy;
  /** Namespace of the ingress controller: Ingress rooms take web traffic only from it (NetworkPolicy). */
  ingressNamespace?: string;
  /** Proxies in front of rooms (IPs or CIDRs) whose X-Forwarded-For rooms trust for per-visitor limits. */
  trustedProxies: string[];
  /** Several replicas: only the holder of this Lease works, the others keep warm caches. */
  leaderElection?: { namespace: string; leaseName: string };
  /** Seconds between two polls of a serving room's GET /live (0: no live status). */
  livePollSeconds: number;
  /** Least seconds between two writes of a room's live status fields. */
  liveStatusSeconds: number;
  /**
   * Tests only: where to ask rooms' /live instead of their pods, `{namespace}` and `{name}` replaced
   * (simulated rooms on kwok, whose pods run nothing).
   */
  liveUrlTemplate?: string;
  /** host:port the waker listens on (sleeping rooms' URLs reach it); empty: no waker. */
  wakerListen: string;
  /** The address of this operator's pod, put in sleeping rooms' waker EndpointSlices. */
  wakerAddress?: string;
  /** Rooms waking at once, at most (more wake requests are told to retry). */
  maxWaking: number;
}

export const DEFAULT_ROOM_IMAGE = 'streamroom/room:0.1.0';
export { DEFAULT_REDIS_IMAGE } from './builders.js';

const FLAGS = {
  'default-image': {
    env: 'STREAMROOM_DEFAULT_IMAGE',
    help: `room image when a StreamRoom names none (${DEFAULT_ROOM_IMAGE})`,
  },
  'redis-image': {
    env: 'STREAMROOM_REDIS_IMAGE',
    help: `Redis image of a multi-replica room's own backplane (${DEFAULT_REDIS_IMAGE})`,
  },
  'shared-redis-url': {
    env: 'STREAMROOM_SHARED_REDIS_URL',
    help: 'redis:// or rediss:// URL of a Redis all multi-replica rooms share (default: one Redis per room)',
  },
  namespaces: { env: 'STREAMROOM_NAMESPACES', help: 'comma-separated namespaces to watch (default: all)' },
  workers: { env: 'STREAMROOM_WORKERS', help: 'rooms reconciled in parallel (16)' },
  'kube-api-qps': {
    env: 'STREAMROOM_KUBE_API_QPS',
    help: 'API requests per second, sustained (200; watches not counted)',
  },
  'kube-api-burst': { env: 'STREAMROOM_KUBE_API_BURST', help: 'API requests allowed at once above it (400)' },
  'log-level': { env: 'STREAMROOM_LOG_LEVEL', help: 'debug, info, warn or error (info)' },
  'resync-period': { env: 'STREAMROOM_RESYNC_PERIOD', help: 'seconds between full resyncs (600)' },
  'watch-idle-timeout': {
    env: 'STREAMROOM_WATCH_IDLE_TIMEOUT',
    help: 'seconds of watch silence before a relist (300)',
  },
  'cluster-domain': {
    env: 'STREAMROOM_CLUSTER_DOMAIN',
    help: 'cluster DNS domain for ClusterIP URLs (cluster.local)',
  },
  'node-address': {
    env: 'STREAMROOM_NODE_ADDRESS',
    help: 'address for NodePort URLs (default: a ready node)',
  },
  'health-address': {
    env: 'STREAMROOM_HEALTH_ADDRESS',
    help: 'host:port for /healthz, /readyz, /metrics (0.0.0.0:8081; empty: off)',
  },
  'media-network': {
    env: 'STREAMROOM_MEDIA_NETWORK',
    help: 'HostPort or TURN: how browsers reach SFU rooms that name no media.network (HostPort)',
  },
  'media-port-range': {
    env: 'STREAMROOM_MEDIA_PORT_RANGE',
    help: 'ports given to HostPort rooms, one each (20000-29999)',
  },
  'turn-urls': {
    env: 'STREAMROOM_TURN_URLS',
    help: 'comma-separated turn: URLs of the cluster TURN gateway, as browsers reach it',
  },
  'turn-secret-file': {
    env: 'STREAMROOM_TURN_SECRET_FILE',
    help: "file holding the TURN gateway's secret (rooms get keys derived from it)",
  },
  'allowed-images': {
    env: 'STREAMROOM_ALLOWED_IMAGES',
    help: 'comma-separated image prefixes rooms may use (default: any)',
  },
  'allowed-ingress-hosts': {
    env: 'STREAMROOM_ALLOWED_INGRESS_HOSTS',
    help: 'Ingress host suffixes per namespace, "ns=a.example.com,b.example.com;*=rooms.example.com" (default: any)',
  },
  'ingress-namespace': {
    env: 'STREAMROOM_INGRESS_NAMESPACE',
    help: "the ingress controller's namespace: Ingress rooms take web traffic only from it",
  },
  'trusted-proxies': {
    env: 'STREAMROOM_TRUSTED_PROXIES',
    help: "comma-separated IPs or CIDRs of the proxies in front of Ingress rooms (the ingress controller's pods): rooms limit seats per visitor address from their X-Forwarded-For",
  },
  'leader-elect': {
    env: 'STREAMROOM_LEADER_ELECT',
    help: 'true: only the holder of a Lease reconciles, other replicas stand by (false)',
  },
  'leader-election-namespace': {
    env: 'POD_NAMESPACE',
    help: "namespace of the Lease (the pod's own namespace; default: default)",
  },
  'leader-election-id': {
    env: 'STREAMROOM_LEADER_ELECTION_ID',
    help: 'name of the Lease (streamroom-operator)',
  },
  'live-poll-interval': {
    env: 'STREAMROOM_LIVE_POLL_INTERVAL',
    help: "seconds between two polls of a serving room's /live, jittered ±20 % (10; 0: no live status)",
  },
  'live-status-interval': {
    env: 'STREAMROOM_LIVE_STATUS_INTERVAL',
    help: "least seconds between two writes of a room's status.live/viewers/lastActivityTime (15)",
  },
  'live-url-template': {
    env: 'STREAMROOM_LIVE_URL_TEMPLATE',
    help: "tests only: ask http(s)://…{namespace}…{name}… instead of the rooms' pods",
  },
  'waker-listen': {
    env: 'STREAMROOM_WAKER_LISTEN',
    help: "host:port of the waker, which sleeping rooms' URLs reach (the chart: 0.0.0.0:8082; default off: no room hibernates)",
  },
  'waker-address': {
    env: 'STREAMROOM_WAKER_ADDRESS',
    help: "this pod's IP (the chart sets it from status.podIP): sleeping rooms' Services point at it",
  },
  'max-waking': {
    env: 'STREAMROOM_MAX_WAKING',
    help: 'rooms waking at once, at most; further wake requests are told to retry (20)',
  },
  kubeconfig: {
    env: 'KUBECONFIG',
    help: 'kubeconfig path (default: $KUBECONFIG, ~/.kube/config or in-cluster)',
  },
} as const;

type Flag = keyof typeof FLAGS;

export function usage(): string {
  return [
    'Usage: streamroom-operator [flags]',
    '',
    ...Object.entries(FLAGS).map(([f, { env, help }]) => `  --${f.padEnd(20)} ${help} [env ${env}]`),
  ].join('\n');
}

function integer(name: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < min || n > max) {
    throw new Error(`--${name} must be a whole number from ${min} to ${max}, got "${text}"`);
  }
  return n;
}

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

/** Parses flags and environment; throws an Error with a clear message on bad input. */
export function loadConfig(argv: string[], env: Record<string, string | undefined>): OperatorConfig {
  const { values } = parseArgs({
    args: argv,
    options: Object.fromEntries(Object.keys(FLAGS).map((f) => [f, { type: 'string' as const }])),
    strict: true,
    allowPositionals: false,
  });
  const get = (f: Flag): string | undefined => (values[f] as string | undefined) ?? env[FLAGS[f].env];
  const logLevel = (get('log-level') ?? 'info') as LogLevel;
  if (!LEVELS.includes(logLevel))
    throw new Error(`--log-level must be one of ${LEVELS.join(', ')}, got "${logLevel}"`);
  const namespaces = (get('namespaces') ?? '')
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean);
  for (const ns of namespaces) {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns) || ns.length > 63) {
      throw new Error(`--namespaces: "${ns}" is not a valid namespace name`);
    }
  }
  const nodeAddress = get('node-address');
  const sharedRedisUrl = get('shared-redis-url');
  if (sharedRedisUrl) {
    let protocol;
    try {
      protocol = new URL(sharedRedisUrl).protocol;
    } catch {
      protocol = undefined;
    }
    if (protocol !== 'redis:' && protocol !== 'rediss:') {
      throw new Error('--shared-redis-url must be a redis:// or rediss:// URL');
    }
  }
  const kubeconfig = get('kubeconfig');
  const leaderElectText = get('leader-elect') || 'false';
  if (leaderElectText !== 'true' && leaderElectText !== 'false') {
    throw new Error(`--leader-elect must be true or false, got "${leaderElectText}"`);
  }
  const leaderElect = leaderElectText === 'true';
  const trustedProxies = (get('trusted-proxies') ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  for (const p of trustedProxies) {
    if (!/^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]*)(\/\d{1,3})?$/.test(p)) {
      throw new Error(`--trusted-proxies: "${p}" is not an IP address or CIDR`);
    }
  }
  const mediaNetwork = get('media-network') || 'HostPort';
  if (mediaNetwork !== 'HostPort' && mediaNetwork !== 'TURN') {
    throw new Error(`--media-network must be HostPort or TURN, got "${mediaNetwork}"`);
  }
  const turnUrls = (get('turn-urls') ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  for (const u of turnUrls) {
    if (!/^turns?:[^\s]+$/.test(u)) throw new Error(`--turn-urls: "${u}" is not a turn: or turns: URL`);
  }
  const turnSecretFile = get('turn-secret-file');
  if (!turnUrls.length !== !turnSecretFile) {
    throw new Error('--turn-urls and --turn-secret-file go together (the TURN gateway and its secret)');
  }
  const liveUrlTemplate = get('live-url-template');
  if (liveUrlTemplate && !/^https?:\/\/\S+$/.test(liveUrlTemplate)) {
    throw new Error(`--live-url-template must be an http(s) URL, got "${liveUrlTemplate}"`);
  }
  const wakerAddress = get('waker-address');
  if (wakerAddress && !/^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]*)$/.test(wakerAddress)) {
    throw new Error(`--waker-address must be an IP address, got "${wakerAddress}"`);
  }
  return {
    defaultImage: get('default-image') || DEFAULT_ROOM_IMAGE,
    wakerListen: get('waker-listen') ?? '',
    ...(wakerAddress ? { wakerAddress } : {}),
    maxWaking: integer('max-waking', get('max-waking') ?? '20', 1, 10_000),
    livePollSeconds: integer('live-poll-interval', get('live-poll-interval') ?? '10', 0, 3600),
    liveStatusSeconds: integer('live-status-interval', get('live-status-interval') ?? '15', 1, 3600),
    ...(liveUrlTemplate ? { liveUrlTemplate } : {}),
    redisImage: get('redis-image') || DEFAULT_REDIS_IMAGE,
    ...(sharedRedisUrl ? { sharedRedisUrl } : {}),
    namespaces,
    workers: integer('workers', get('workers') ?? '16', 1, 256),
    kubeApiQps: integer('kube-api-qps', get('kube-api-qps') ?? '200', 1, 100_000),
    kubeApiBurst: integer('kube-api-burst', get('kube-api-burst') ?? '400', 1, 100_000),
    logLevel,
    resyncPeriodSeconds: integer('resync-period', get('resync-period') ?? '600', 1, 86_400),
    watchIdleTimeoutSeconds: integer('watch-idle-timeout', get('watch-idle-timeout') ?? '300', 1, 86_400),
    clusterDomain: get('cluster-domain') || 'cluster.local',
    healthAddress: get('health-address') ?? '0.0.0.0:8081',
    ...(nodeAddress ? { nodeAddress } : {}),
    ...(kubeconfig ? { kubeconfig } : {}),
    mediaNetwork,
    mediaPortRange: parsePortRange(get('media-port-range') ?? '20000-29999'),
    ...(turnSecretFile ? { turn: { urls: turnUrls, secretFile: turnSecretFile } } : {}),
    policy: {
      images: parseImages(get('allowed-images') ?? ''),
      hosts: parseHosts(get('allowed-ingress-hosts') ?? ''),
    },
    ...(get('ingress-namespace') ? { ingressNamespace: get('ingress-namespace') } : {}),
    trustedProxies,
    ...(leaderElect
      ? {
          leaderElection: {
            namespace: get('leader-election-namespace') || 'default',
            leaseName: get('leader-election-id') || 'streamroom-operator',
          },
        }
      : {}),
  };
}
