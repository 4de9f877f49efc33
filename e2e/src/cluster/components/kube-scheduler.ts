// kube-scheduler: no leader election, the control plane's client rate limit.
import { kubeconfigFlags, type ClusterContext } from '../config.js';
import { rateLimitFlags } from './kube-controller-manager.js';

export const name = 'kube-scheduler';

export function flags(ctx: ClusterContext): string[] {
  return [
    ...kubeconfigFlags(ctx.paths, name),
    '--bind-address=127.0.0.1',
    `--secure-port=${ctx.ports.scheduler}`,
    '--leader-elect=false',
    ...rateLimitFlags(ctx),
    '--profiling=false',
    '--v=1',
  ];
}

export const readyUrl = ({ ports }: ClusterContext) => `https://127.0.0.1:${ports.scheduler}/readyz`;
