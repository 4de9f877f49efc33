// kube-controller-manager: no leader election, service-account credentials per controller, the
// cluster CA as signer, a short HPA sync period and the control plane's client rate limit.
import { kubeconfigFlags, pkiFile, type ClusterContext } from '../config.js';

export const name = 'kube-controller-manager';

/** --kube-api-qps/--kube-api-burst of kcm and the scheduler (none: their own defaults). */
export function rateLimitFlags({ config }: ClusterContext): string[] {
  const limit = config.controlPlaneRateLimit;
  return limit === 'default' ? [] : [`--kube-api-qps=${limit.qps}`, `--kube-api-burst=${limit.burst}`];
}

export function flags(ctx: ClusterContext): string[] {
  const { config, paths, ports } = ctx;
  return [
    ...kubeconfigFlags(paths, name),
    '--bind-address=127.0.0.1',
    `--secure-port=${ports.controllerManager}`,
    '--leader-elect=false',
    '--use-service-account-credentials=true',
    `--service-account-private-key-file=${pkiFile(paths, 'sa', 'key')}`,
    `--root-ca-file=${pkiFile(paths, 'ca', 'crt')}`,
    `--cluster-signing-cert-file=${pkiFile(paths, 'ca', 'crt')}`,
    `--cluster-signing-key-file=${pkiFile(paths, 'ca', 'key')}`,
    `--service-cluster-ip-range=${config.serviceCidr}`,
    `--horizontal-pod-autoscaler-sync-period=${config.hpaSyncPeriod}`,
    ...(config.nodeMonitorGracePeriod
      ? [`--node-monitor-grace-period=${config.nodeMonitorGracePeriod}`]
      : []),
    ...rateLimitFlags(ctx),
    '--profiling=false',
    '--v=1',
  ];
}

export const healthUrl = ({ ports }: ClusterContext) =>
  `https://127.0.0.1:${ports.controllerManager}/healthz`;
