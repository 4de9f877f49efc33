// The real node's kube-proxy: iptables mode, NodePorts only on loopback and the node IP, the
// machine's conntrack sysctls left alone.
import path from 'node:path';
import { kubeconfigPath, type ClusterContext } from '../config.js';

export const name = 'kube-proxy';

export const configFile = ({ paths }: ClusterContext) => path.join(paths.node, 'kube-proxy.yaml');

export function flags(ctx: ClusterContext): string[] {
  return [`--config=${configFile(ctx)}`, '--v=1'];
}

export function configuration(ctx: ClusterContext): object {
  const node = ctx.config.realNode;
  if (!node) throw new Error('kube-proxy runs only with a real node');
  return {
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig: kubeconfigPath(ctx.paths, name) },
    hostnameOverride: node.name,
    bindAddress: node.ip,
    healthzBindAddress: `127.0.0.1:${ctx.ports.proxyHealthz}`,
    metricsBindAddress: `127.0.0.1:${ctx.ports.proxyMetrics}`,
    mode: 'iptables',
    clusterCIDR: node.clusterCidr,
    detectLocalMode: 'ClusterCIDR',
    // NodePorts only on loopback and the node IP (not on the machine's public interfaces)
    nodePortAddresses: ['127.0.0.0/8', `${node.ip}/32`],
    iptables: { localhostNodePorts: true, masqueradeAll: false, syncPeriod: '30s', minSyncPeriod: '0s' },
    // leave the machine's conntrack sysctls alone
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
  };
}

export const healthUrl = ({ ports }: ClusterContext) => `http://127.0.0.1:${ports.proxyHealthz}/healthz`;
