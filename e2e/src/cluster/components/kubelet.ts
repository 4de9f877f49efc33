// The real node's kubelet: client cert system:node:<name>, serving cert with the node IP, webhook
// authn/authz, cgroupfs, no image GC (nothing can be pulled again), eviction thresholds a busy dev
// machine does not reach.
import path from 'node:path';
import { kubeconfigPath, pkiFile, type ClusterContext, type RealNodeConfig } from '../config.js';
import { socket } from './containerd.js';

export const name = 'kubelet';

function nodeOf(ctx: ClusterContext): RealNodeConfig {
  if (!ctx.config.realNode) throw new Error('the kubelet runs only with a real node');
  return ctx.config.realNode;
}

export const configFile = ({ paths }: ClusterContext) => path.join(paths.node, 'kubelet.yaml');

/** node-labels as the kubelet flag wants them: k=v,k=v. */
export const labelsFlag = (labels: Record<string, string>) =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');

export function flags(ctx: ClusterContext): string[] {
  const node = nodeOf(ctx);
  return [
    `--config=${configFile(ctx)}`,
    `--kubeconfig=${kubeconfigPath(ctx.paths, name)}`,
    `--root-dir=${path.join(ctx.paths.node, 'kubelet')}`,
    `--cert-dir=${path.join(ctx.paths.node, 'kubelet', 'pki')}`,
    `--hostname-override=${node.name}`,
    `--node-ip=${node.ip}`,
    `--node-labels=${labelsFlag(node.labels)}`,
    '--v=1',
  ];
}

export function configuration(ctx: ClusterContext): object {
  const node = nodeOf(ctx);
  return {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    containerRuntimeEndpoint: `unix://${socket(node)}`,
    address: node.ip,
    port: node.kubeletPort,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: ctx.ports.kubeletHealthz,
    tlsCertFile: pkiFile(ctx.paths, 'kubelet-serving', 'crt'),
    tlsPrivateKeyFile: pkiFile(ctx.paths, 'kubelet-serving', 'key'),
    rotateCertificates: false,
    serverTLSBootstrap: false,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true, cacheTTL: '30s' },
      x509: { clientCAFile: pkiFile(ctx.paths, 'ca', 'crt') },
    },
    authorization: { mode: 'Webhook', webhook: { cacheAuthorizedTTL: '30s', cacheUnauthorizedTTL: '5s' } },
    cgroupDriver: 'cgroupfs',
    failCgroupV1: false,
    failSwapOn: false,
    clusterDNS: [node.ip],
    clusterDomain: 'cluster.local',
    resolvConf: '/etc/resolv.conf',
    podLogsDir: path.join(ctx.paths.node, 'pod-logs'),
    maxPods: 110,
    serializeImagePulls: false,
    // nothing may be pulled (no registry) and nothing re-pulled: never garbage-collect images
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    imageMinimumGCAge: '87600h',
    // a busy dev VM must not evict test pods
    evictionHard: {
      'memory.available': '1Mi',
      'nodefs.available': '1%',
      'nodefs.inodesFree': '1%',
      'imagefs.available': '1%',
      'imagefs.inodesFree': '1%',
    },
    evictionPressureTransitionPeriod: '10s',
    nodeStatusUpdateFrequency: '10s',
    nodeStatusReportFrequency: '1m',
    syncFrequency: '10s',
    fileCheckFrequency: '20s',
    staticPodPath: '',
    protectKernelDefaults: false,
    enableDebuggingHandlers: true,
    shutdownGracePeriod: '0s',
  };
}

export const healthUrl = ({ ports }: ClusterContext) => `http://127.0.0.1:${ports.kubeletHealthz}/healthz`;

/**
 * The Node, created before the kubelet registers so that it has its podCIDR (no controller-manager
 * CIDR allocation here) and our labels (the kubelet applies --node-labels only when it creates the
 * Node itself).
 */
export function nodeManifest(node: RealNodeConfig): object {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: node.name,
      labels: {
        'kubernetes.io/hostname': node.name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        ...node.labels,
      },
    },
    spec: { podCIDR: node.podCidr, podCIDRs: [node.podCidr] },
  };
}
