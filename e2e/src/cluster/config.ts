// The local cluster's settings: one typed ClusterConfig, made from ClusterSettings (what a caller
// asks for) and a few documented environment overrides (see configFromEnv and e2e/cluster/README.md).
import os from 'node:os';
import path from 'node:path';

/** Simulated nodes (kwok): kwok-node-1..N, each with podCIDR 10.244.<i>.0/24. */
export interface KwokConfig {
  nodes: number;
  /** Capacity and allocatable of each node. */
  cpu: string;
  memory: string;
  pods: number;
  /** With a real node, kwok nodes only take pods that tolerate kwok.x-k8s.io/node=fake:NoSchedule. */
  noScheduleTaint: boolean;
}

/** The real node (containerd, kubelet, kube-proxy, CoreDNS, kube-router): one per machine, root only. */
export interface RealNodeConfig {
  name: string;
  /** The node's address, on its own interface; also the API server's bind and advertise address. */
  ip: string;
  iface: string;
  bridge: string;
  podCidr: string;
  clusterCidr: string;
  labels: Record<string, string>;
  kubeletPort: number;
  /** containerd's image store: outlives the cluster (loaded images are kept). */
  containerdRoot: string;
  /** containerd's state (tasks, sockets, mounts, pod netns): removed by down. */
  containerdState: string;
  /** Holds the state dir of the running real-node cluster; `<marker>.lock` serialises starts. */
  marker: string;
  /** NetworkPolicies enforced by kube-router's policy controller. */
  networkPolicy: boolean;
}

/** Client rate limit of kube-controller-manager and kube-scheduler; 'default' keeps theirs. */
export type ClientRateLimit = { qps: number; burst: number } | 'default';

export const PORT_NAMES = [
  'etcd',
  'etcdPeer',
  'apiserver',
  'controllerManager',
  'scheduler',
  'kwok',
  'metricsServer',
] as const;
export const NODE_PORT_NAMES = [
  'kubeletHealthz',
  'proxyHealthz',
  'proxyMetrics',
  'corednsHealth',
  'corednsReady',
] as const;
export type PortName = (typeof PORT_NAMES)[number] | (typeof NODE_PORT_NAMES)[number];
export type Ports = Record<PortName, number>;

export interface ClusterConfig {
  /** State dir: certificates, data, logs, pids, kubeconfigs, env. */
  dir: string;
  /** Binary cache of the build (bin/<tool>-<version>/<tool>). */
  cacheDir: string;
  /** Only etcd and kube-apiserver. */
  apiserverOnly: boolean;
  kwok: KwokConfig;
  metricsServer: boolean;
  /** kube-controller-manager --horizontal-pod-autoscaler-sync-period. */
  hpaSyncPeriod: string;
  /** kube-controller-manager --node-monitor-grace-period (unset: its default, 50s). */
  nodeMonitorGracePeriod?: string;
  controlPlaneRateLimit: ClientRateLimit;
  /** kube-apiserver --enable-aggregator-routing (false: an ExternalName Service reaches a host process). */
  aggregatorRouting: boolean;
  /** kube-apiserver --advertise-address; a loopback address turns the endpoint reconciler off. */
  advertiseAddress: string;
  serviceCidr: string;
  /** The first address of serviceCidr: the kubernetes Service. */
  serviceIp: string;
  /** Fixed ports; the others are picked free on 127.0.0.1. */
  fixedPorts: Partial<Ports>;
  upTimeoutMs: number;
  /** Grace period of each stop wave before SIGKILL. */
  downTimeoutMs: number;
  /** Build missing binaries (else fail naming them). */
  build: boolean;
  /** Leave processes and state for debugging when up fails. */
  keepOnFailure: boolean;
  /** Tear the cluster down when this process exits (a watchdog process). */
  ownerPid?: number;
  realNode?: RealNodeConfig;
}

/** What a caller may set; everything else has the defaults below. */
export interface ClusterSettings {
  dir?: string;
  cacheDir?: string;
  apiserverOnly?: boolean;
  /** A real node beside the control plane (root, one per machine). */
  realNode?: boolean;
  /** Settings of the real node other than its defaults. */
  node?: Partial<RealNodeConfig>;
  /** Simulated nodes (default 2; 0 with a real node). */
  kwokNodes?: number;
  kwokNodeCpu?: string;
  kwokNodeMemory?: string;
  kwokNodePods?: number;
  metricsServer?: boolean;
  hpaSyncPeriod?: string;
  /** How long a silent node stays Ready (kube-controller-manager --node-monitor-grace-period). */
  nodeMonitorGracePeriod?: string;
  /** Client QPS of kube-controller-manager and kube-scheduler (100), or 'default' for theirs. */
  controlPlaneQps?: number | 'default';
  controlPlaneBurst?: number;
  aggregatorRouting?: boolean;
  advertiseAddress?: string;
  fixedPorts?: Partial<Ports>;
  upTimeoutMs?: number;
  downTimeoutMs?: number;
  build?: boolean;
  keepOnFailure?: boolean;
  ownerPid?: number;
}

export const DEFAULT_DIR = '/tmp/streamroom-cluster';
export const defaultCacheDir = (env: NodeJS.ProcessEnv = process.env) =>
  env.STREAMROOM_CACHE || path.join(env.HOME || os.homedir(), '.cache', 'streamroom');

export const REAL_NODE_DEFAULTS: RealNodeConfig = {
  name: 'streamroom-node',
  ip: '10.250.0.1',
  iface: 'streamroom0',
  bridge: 'streamroom-br0',
  podCidr: '10.244.0.0/24',
  clusterCidr: '10.244.0.0/16',
  labels: { 'streamroom.dev/node': 'real' },
  kubeletPort: 10250,
  containerdRoot: '/var/lib/streamroom-containerd',
  containerdState: '/run/streamroom-containerd',
  marker: '/run/streamroom-real-node',
  networkPolicy: true,
};

/**
 * The documented environment overrides (everything else is a typed setting or a CLI option):
 * STREAMROOM_CLUSTER_DIR, STREAMROOM_CACHE, STREAMROOM_UP_TIMEOUT and STREAMROOM_DOWN_TIMEOUT
 * (seconds), STREAMROOM_KEEP_ON_FAILURE=1, STREAMROOM_NETWORK_POLICY=0 (real node without
 * kube-router), STREAMROOM_BUILD=0 (fail instead of building missing binaries).
 */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): ClusterSettings {
  const seconds = (name: string): number | undefined => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a number of seconds, got '${v}'`);
    return n * 1000;
  };
  const settings: ClusterSettings = { cacheDir: defaultCacheDir(env) };
  if (env.STREAMROOM_CLUSTER_DIR) settings.dir = env.STREAMROOM_CLUSTER_DIR;
  const up = seconds('STREAMROOM_UP_TIMEOUT');
  if (up !== undefined) settings.upTimeoutMs = up;
  const down = seconds('STREAMROOM_DOWN_TIMEOUT');
  if (down !== undefined) settings.downTimeoutMs = down;
  if (env.STREAMROOM_KEEP_ON_FAILURE === '1') settings.keepOnFailure = true;
  if (env.STREAMROOM_BUILD === '0') settings.build = false;
  if (env.STREAMROOM_NETWORK_POLICY === '0') settings.node = { networkPolicy: false };
  return settings;
}

/** Merges settings (later ones win; node settings are merged too). */
export function mergeSettings(...all: ClusterSettings[]): ClusterSettings {
  const out: ClusterSettings = {};
  for (const s of all) {
    const { node, ...rest } = s;
    Object.assign(out, Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)));
    if (node) out.node = { ...out.node, ...node };
  }
  return out;
}

/** The full configuration; throws on settings that cannot work together. */
export function resolveConfig(settings: ClusterSettings = {}): ClusterConfig {
  const apiserverOnly = settings.apiserverOnly ?? false;
  const realNode: RealNodeConfig | undefined =
    settings.realNode && !apiserverOnly ? { ...REAL_NODE_DEFAULTS, ...settings.node } : undefined;
  const kwokNodes = apiserverOnly ? 0 : (settings.kwokNodes ?? (realNode ? 0 : 2));
  if (!Number.isInteger(kwokNodes) || kwokNodes < 0 || kwokNodes > 250) {
    throw new Error(`kwokNodes must be a whole number 0..250, got ${kwokNodes}`);
  }
  let advertiseAddress = settings.advertiseAddress ?? '127.0.0.1';
  if (realNode) {
    if (settings.advertiseAddress !== undefined && settings.advertiseAddress !== realNode.ip) {
      throw new Error(`with a real node the advertise address must be the node IP (${realNode.ip})`);
    }
    advertiseAddress = realNode.ip;
  }
  const qps = settings.controlPlaneQps ?? 100;
  return {
    dir: settings.dir ?? DEFAULT_DIR,
    cacheDir: settings.cacheDir ?? defaultCacheDir(),
    apiserverOnly,
    kwok: {
      nodes: kwokNodes,
      cpu: settings.kwokNodeCpu ?? '32',
      memory: settings.kwokNodeMemory ?? '128Gi',
      pods: settings.kwokNodePods ?? 110,
      noScheduleTaint: realNode !== undefined,
    },
    metricsServer: apiserverOnly ? false : (settings.metricsServer ?? true),
    hpaSyncPeriod: settings.hpaSyncPeriod ?? '5s',
    ...(settings.nodeMonitorGracePeriod ? { nodeMonitorGracePeriod: settings.nodeMonitorGracePeriod } : {}),
    // Kubernetes' own scalability jobs (kubemark, ClusterLoader2) run these at 100 QPS / burst 100,
    // as large production control planes do; the components' defaults (kcm 20/30, scheduler
    // 50/100) remain one setting away ('default').
    controlPlaneRateLimit: qps === 'default' ? 'default' : { qps, burst: settings.controlPlaneBurst ?? 100 },
    aggregatorRouting: settings.aggregatorRouting ?? false,
    advertiseAddress,
    serviceCidr: '10.96.0.0/16',
    serviceIp: '10.96.0.1',
    fixedPorts: settings.fixedPorts ?? {},
    upTimeoutMs: settings.upTimeoutMs ?? 60_000,
    downTimeoutMs: settings.downTimeoutMs ?? 10_000,
    build: settings.build ?? true,
    keepOnFailure: settings.keepOnFailure ?? false,
    ...(settings.ownerPid !== undefined ? { ownerPid: settings.ownerPid } : {}),
    ...(realNode ? { realNode } : {}),
  };
}

/** Where everything lives in the state dir. */
export interface ClusterPaths {
  dir: string;
  pki: string;
  logs: string;
  etcdData: string;
  /** `<name> <pgid> <binary>` per started process, in start order. */
  pids: string;
  /** Shell exports: KUBECONFIG, URLs, CA. */
  env: string;
  /** Marks a dir up created (only such a dir is ever removed). */
  marker: string;
  /** The admin kubeconfig (https://127.0.0.1:<port>). */
  kubeconfig: string;
  /** The real node's files (configs, kubelet root, CNI state, pod logs). */
  node: string;
}

export function clusterPaths(dir: string): ClusterPaths {
  return {
    dir,
    pki: path.join(dir, 'pki'),
    logs: path.join(dir, 'logs'),
    etcdData: path.join(dir, 'etcd-data'),
    pids: path.join(dir, 'pids'),
    env: path.join(dir, 'env'),
    marker: path.join(dir, '.streamroom-cluster'),
    kubeconfig: path.join(dir, 'kubeconfig'),
    node: path.join(dir, 'node'),
  };
}

/** Everything a component's flags depend on. */
export interface ClusterContext {
  config: ClusterConfig;
  paths: ClusterPaths;
  ports: Ports;
  /** Where the cluster's own components reach the API server (the node IP with a real node). */
  apiHost: string;
  /** Directory of the static files (e2e/cluster: kwok configs, RBAC manifests). */
  filesDir: string;
  /** The real node's CNI plugin directory ('' without a real node). */
  cniBinDir: string;
  /** Whether this process may lower oom_score_adj (CAP_SYS_RESOURCE); containerd needs to know. */
  canLowerOomScore: boolean;
}

/** The file a component's kubeconfig is written to. */
export const kubeconfigPath = (paths: ClusterPaths, user: string) =>
  user === 'admin' ? paths.kubeconfig : path.join(paths.dir, `${user}.kubeconfig`);
export const pkiFile = (paths: ClusterPaths, name: string, ext: 'crt' | 'key' | 'pub') =>
  path.join(paths.pki, `${name}.${ext}`);

/** A control-plane component's own kubeconfig, also for authenticating and authorizing its callers. */
export function kubeconfigFlags(paths: ClusterPaths, user: string): string[] {
  const kubeconfig = kubeconfigPath(paths, user);
  return [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
  ];
}
