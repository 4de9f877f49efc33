// CoreDNS as a host process on <node IP>:53 (the pods' cluster DNS), user streamroom:coredns with
// least privilege (e2e/cluster/node/coredns-rbac.yaml), forwarding the rest to the host's resolvers.
import path from 'node:path';
import { kubeconfigPath, type ClusterContext } from '../config.js';

export const name = 'coredns';

export const corefilePath = ({ paths }: ClusterContext) => path.join(paths.node, 'Corefile');

export function flags(ctx: ClusterContext): string[] {
  return ['-conf', corefilePath(ctx)];
}

export function corefile(ctx: ClusterContext): string {
  const node = ctx.config.realNode;
  if (!node) throw new Error('CoreDNS runs only with a real node');
  return `.:53 {
    bind ${node.ip}
    errors
    health 127.0.0.1:${ctx.ports.corednsHealth}
    ready 127.0.0.1:${ctx.ports.corednsReady}
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig ${kubeconfigPath(ctx.paths, name)} streamroom-e2e
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }
    forward . /etc/resolv.conf
    cache 30
    loop
    loadbalance
}
`;
}

export const readyUrl = ({ ports }: ClusterContext) => `http://127.0.0.1:${ports.corednsReady}/ready`;
