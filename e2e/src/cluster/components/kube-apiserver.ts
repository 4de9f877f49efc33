// kube-apiserver: TLS with client certificates, Node+RBAC, service-account signing, front-proxy
// (requestheader) for aggregated APIs. With a real node it binds and advertises the node IP (pods
// reach it through the kubernetes Service), and a socat forwarder keeps 127.0.0.1:<port> for the host.
import { pkiFile, type ClusterContext } from '../config.js';

export const name = 'kube-apiserver';

export function flags({ config, paths, ports, apiHost }: ClusterContext): string[] {
  const pki = (n: string, ext: 'crt' | 'key' | 'pub' = 'crt') => pkiFile(paths, n, ext);
  // Endpoints may not be loopback: with a loopback advertise address there is no endpoint reconciler.
  const reconciler = config.advertiseAddress.startsWith('127.') ? 'none' : 'lease';
  const real = config.realNode
    ? // logs/exec/port-forward: dial kubelets at their InternalIP and verify their serving certs
      [
        '--kubelet-preferred-address-types=InternalIP,Hostname',
        `--kubelet-certificate-authority=${pki('ca')}`,
      ]
    : [];
  return [
    `--advertise-address=${config.advertiseAddress}`,
    `--endpoint-reconciler-type=${reconciler}`,
    `--bind-address=${apiHost}`,
    `--secure-port=${ports.apiserver}`,
    `--etcd-servers=http://127.0.0.1:${ports.etcd}`,
    `--tls-cert-file=${pki('apiserver')}`,
    `--tls-private-key-file=${pki('apiserver', 'key')}`,
    `--client-ca-file=${pki('ca')}`,
    '--authorization-mode=Node,RBAC',
    `--service-cluster-ip-range=${config.serviceCidr}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${pki('sa', 'pub')}`,
    `--service-account-signing-key-file=${pki('sa', 'key')}`,
    `--kubelet-client-certificate=${pki('apiserver-kubelet-client')}`,
    `--kubelet-client-key=${pki('apiserver-kubelet-client', 'key')}`,
    `--requestheader-client-ca-file=${pki('front-proxy-ca')}`,
    '--requestheader-allowed-names=front-proxy-client',
    '--requestheader-username-headers=X-Remote-User',
    '--requestheader-group-headers=X-Remote-Group',
    '--requestheader-extra-headers-prefix=X-Remote-Extra-',
    `--proxy-client-cert-file=${pki('front-proxy-client')}`,
    `--proxy-client-key-file=${pki('front-proxy-client', 'key')}`,
    `--enable-aggregator-routing=${config.aggregatorRouting}`,
    '--allow-privileged=true',
    '--profiling=false',
    ...real,
    '--v=1',
  ];
}

/** The socat forwarder from 127.0.0.1:<port> to the node IP (real node only). */
export const loopback = {
  name: 'apiserver-loopback',
  flags: ({ ports, apiHost }: ClusterContext): string[] => [
    `TCP-LISTEN:${ports.apiserver},bind=127.0.0.1,reuseaddr,fork`,
    `TCP:${apiHost}:${ports.apiserver}`,
  ],
};

export const url = ({ ports }: ClusterContext) => `https://127.0.0.1:${ports.apiserver}`;
