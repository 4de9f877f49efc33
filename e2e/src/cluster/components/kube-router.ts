// kube-router's NetworkPolicy controller only (no routing, no service proxy: the bridge CNI and
// kube-proxy do those). It reads the node's InternalIP at start, so it starts once the node is
// Ready. Its health server would listen on every interface: off; readiness is its first full sync.
import { kubeconfigPath, type ClusterContext } from '../config.js';

export const name = 'kube-router';

export function flags(ctx: ClusterContext): string[] {
  const node = ctx.config.realNode;
  if (!node) throw new Error('kube-router runs only with a real node');
  return [
    `--kubeconfig=${kubeconfigPath(ctx.paths, name)}`,
    `--hostname-override=${node.name}`,
    '--run-firewall=true',
    '--run-router=false',
    '--run-service-proxy=false',
    '--run-loadbalancer=false',
    '--enable-cni=false',
    '--enable-ipv4=true',
    '--enable-ipv6=false',
    `--service-cluster-ip-range=${ctx.config.serviceCidr}`,
    '--iptables-sync-period=30s',
    '--health-port=0',
    '--metrics-port=0',
    '--v=1',
  ];
}

/**
 * Has its first full sync happened? Its jump is the first rule of FORWARD (before kube-proxy's,
 * docker's and the CNI's) and KUBE-ROUTER-FORWARD ends with the ACCEPT of policy-compliant traffic
 * (mark 0x20000), which a sync appends after the pods' chains. Inputs: `iptables -S FORWARD` and
 * `iptables -S KUBE-ROUTER-FORWARD`.
 */
export function synced(forwardRules: string, routerRules: string): boolean {
  const first = forwardRules.split('\n').find((l) => l.startsWith('-A FORWARD'));
  return (
    first !== undefined &&
    first.trimEnd().endsWith('-j KUBE-ROUTER-FORWARD') &&
    routerRules.includes('--mark 0x20000/0x20000 -j ACCEPT')
  );
}
