// metrics-server: pod and node CPU/memory (from kwok or the real kubelet) for kubectl top and the HPA.
// --metric-resolution 10s is its minimum (its request timeout must stay below 90% of it).
import { kubeconfigFlags, pkiFile, type ClusterContext } from '../config.js';

export const name = 'metrics-server';

export function flags({ paths, ports }: ClusterContext): string[] {
  return [
    ...kubeconfigFlags(paths, name),
    '--bind-address=127.0.0.1',
    `--secure-port=${ports.metricsServer}`,
    `--tls-cert-file=${pkiFile(paths, 'metrics-server-serving', 'crt')}`,
    `--tls-private-key-file=${pkiFile(paths, 'metrics-server-serving', 'key')}`,
    '--kubelet-preferred-address-types=InternalIP,Hostname',
    '--kubelet-use-node-status-port',
    `--kubelet-certificate-authority=${pkiFile(paths, 'ca', 'crt')}`,
    '--metric-resolution=10s',
    '--kubelet-request-timeout=5s',
    '--profiling=false',
    '--v=1',
  ];
}

/**
 * metrics.k8s.io served by the host process on 127.0.0.1:<port>. Endpoints may not point at
 * loopback, so the Service is an ExternalName "localhost"; that works because kube-apiserver runs
 * with --enable-aggregator-routing=false (it dials the Service's DNS name, i.e. localhost:<port>,
 * and checks the serving cert against metrics-server.kube-system.svc, which is in its SANs).
 */
export function apiServiceManifests({ ports }: ClusterContext, caPem: string): object[] {
  const port = ports.metricsServer;
  const labels = { 'app.kubernetes.io/name': 'metrics-server' };
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'metrics-server', namespace: 'kube-system', labels },
      spec: {
        type: 'ExternalName',
        externalName: 'localhost',
        ports: [{ name: 'https', port, protocol: 'TCP' }],
      },
    },
    {
      apiVersion: 'apiregistration.k8s.io/v1',
      kind: 'APIService',
      metadata: { name: 'v1beta1.metrics.k8s.io', labels },
      spec: {
        group: 'metrics.k8s.io',
        version: 'v1beta1',
        groupPriorityMinimum: 100,
        versionPriority: 100,
        service: { name: 'metrics-server', namespace: 'kube-system', port },
        caBundle: Buffer.from(caPem).toString('base64'),
      },
    },
  ];
}
