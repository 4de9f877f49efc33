// kwok: simulated nodes that run pods. Stages and metrics emulation come from our config files
// (e2e/cluster/kwok/*.yaml), so no kwok CRDs are installed; only nodes annotated
// kwok.x-k8s.io/node=fake are managed. Its server is every simulated node's "kubelet" (metrics).
import path from 'node:path';
import { kubeconfigPath, pkiFile, type ClusterContext, type KwokConfig } from '../config.js';

export const name = 'kwok';
/** The simulated nodes' InternalIP: kwok serves their kubelet endpoints on it. */
export const NODE_IP = '127.0.0.1';

export function flags({ paths, ports, filesDir }: ClusterContext): string[] {
  return [
    `--kubeconfig=${kubeconfigPath(paths, name)}`,
    `--config=${path.join(filesDir, 'kwok', 'stages.yaml')}`,
    `--config=${path.join(filesDir, 'kwok', 'metrics.yaml')}`,
    '--manage-all-nodes=false',
    '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
    `--node-ip=${NODE_IP}`,
    `--node-port=${ports.kwok}`,
    `--server-address=127.0.0.1:${ports.kwok}`,
    `--tls-cert-file=${pkiFile(paths, 'kwok-serving', 'crt')}`,
    `--tls-private-key-file=${pkiFile(paths, 'kwok-serving', 'key')}`,
    '--cidr=10.244.0.0/16',
    '--node-lease-duration-seconds=40',
  ];
}

export const healthUrl = ({ ports }: ClusterContext) => `https://127.0.0.1:${ports.kwok}/healthz`;

/**
 * Simulated node i (1-based): kwok-node-<i> with podCIDR 10.244.<i>.0/24. The node-init Stage
 * (stages.yaml) adds conditions, addresses (InternalIP = NODE_IP) and the kubelet port (kwok's
 * server port) and keeps the capacity set here.
 */
export function nodeManifest(kwok: KwokConfig, i: number): object {
  const nodeName = `kwok-node-${i}`;
  const podCidr = `10.244.${i}.0/24`;
  const capacity = { cpu: kwok.cpu, memory: kwok.memory, pods: String(kwok.pods) };
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: nodeName,
      labels: {
        type: 'kwok',
        'kubernetes.io/hostname': nodeName,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'node.kubernetes.io/instance-type': 'kwok',
      },
      annotations: {
        'kwok.x-k8s.io/node': 'fake',
        'node.alpha.kubernetes.io/ttl': '0',
        // where metrics-server scrapes this node's resource metrics on kwok's server (metrics.yaml)
        'metrics.k8s.io/resource-metrics-path': `/metrics/nodes/${nodeName}/metrics/resource`,
      },
    },
    spec: {
      podCIDR: podCidr,
      podCIDRs: [podCidr],
      taints: kwok.noScheduleTaint
        ? [{ key: 'kwok.x-k8s.io/node', value: 'fake', effect: 'NoSchedule' }]
        : [],
    },
    status: { capacity, allocatable: capacity },
  };
}
