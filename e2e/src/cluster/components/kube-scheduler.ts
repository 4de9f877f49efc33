// kube-scheduler: no leader election, the control plane's client rate limit.
import { kubeconfigPath, type ClusterContext } from '../config.js';
import { rateLimitFlags } from './kube-controller-manager.js';

export const name = 'kube-scheduler';

export function flags(ctx: ClusterContext): string[] {
  const kubeconfig = kubeconfigPath(ctx.paths, name);
  return [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${ctx.ports.scheduler}`,
    '--leader-elect=false',
    ...rateLimitFlags(ctx),
    '--profiling=false',
    '--v=1',
  ];
}

export const readyUrl = ({ ports }: ClusterContext) => `https://127.0.0.1:${ports.scheduler}/readyz`;
