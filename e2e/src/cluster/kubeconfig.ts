// Kubeconfigs with embedded client certificates, one per component (and the admin's).
import { stringify } from 'yaml';
import type { ClusterConfig } from './config.js';

export interface KubeconfigInput {
  server: string;
  caPem: string;
  certPem: string;
  keyPem: string;
  user: string;
}

export function kubeconfig({ server, caPem, certPem, keyPem, user }: KubeconfigInput): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'streamroom-e2e', cluster: { server, 'certificate-authority-data': b64(caPem) } }],
    users: [
      { name: user, user: { 'client-certificate-data': b64(certPem), 'client-key-data': b64(keyPem) } },
    ],
    contexts: [{ name: 'streamroom-e2e', context: { cluster: 'streamroom-e2e', user } }],
    'current-context': 'streamroom-e2e',
  });
}

/**
 * The users that get a kubeconfig (named like their client certificate). The admin's points at
 * 127.0.0.1, the components' at the API host (the node IP with a real node).
 */
export function kubeconfigUsers(config: ClusterConfig): string[] {
  const users = ['admin', 'kube-controller-manager', 'kube-scheduler'];
  if (config.kwok.nodes > 0) users.push('kwok');
  if (config.metricsServer) users.push('metrics-server');
  if (config.realNode) {
    users.push('kubelet', 'kube-proxy', 'coredns');
    if (config.realNode.networkPolicy) users.push('kube-router');
  }
  return users;
}
