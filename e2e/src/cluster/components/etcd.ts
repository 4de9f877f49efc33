// etcd: plain HTTP on loopback, no fsync (test data only), fast elections.
import type { ClusterContext } from '../config.js';

export const name = 'etcd';

export function flags({ paths, ports }: ClusterContext): string[] {
  const client = `http://127.0.0.1:${ports.etcd}`;
  const peer = `http://127.0.0.1:${ports.etcdPeer}`;
  return [
    '--name=streamroom-e2e',
    `--data-dir=${paths.etcdData}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=streamroom-e2e=${peer}`,
    '--unsafe-no-fsync=true',
    '--heartbeat-interval=20',
    '--election-timeout=200',
    '--quota-backend-bytes=1073741824',
    '--log-level=warn',
  ];
}

/** Answers {"health":"true"} once it serves. */
export const healthUrl = ({ ports }: ClusterContext) => `http://127.0.0.1:${ports.etcd}/health`;
