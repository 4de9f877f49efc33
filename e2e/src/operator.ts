// What the e2e tests share: the CRD installed, the operator running in-process, room manifests.
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { loadConfig, startOperator, type RunningOperator } from '../../operator/src/index.js';
import { createLogger, type Logger } from '../../operator/src/log.js';
import { REPO_DIR, type Cluster } from './cluster.js';

export async function installCrd(cluster: Cluster): Promise<void> {
  await cluster.kubectl(['apply', '-f', path.join(REPO_DIR, 'crds')]);
  await cluster.kubectl([
    'wait',
    '--for=condition=Established',
    'crd/streamrooms.streamroom.dev',
    '--timeout=30s',
  ]);
}

/**
 * The operator in this process, against the cluster (as its admin, or with the given KubeConfig), with
 * extra flags; STREAMROOM_TEST_LOG=debug shows its logs.
 */
export function runOperator(
  cluster: Cluster,
  options: { kubeConfig?: KubeConfig; args?: string[]; log?: Logger } = {},
): Promise<RunningOperator> {
  let kc = options.kubeConfig;
  if (!kc) {
    kc = new KubeConfig();
    kc.loadFromFile(cluster.kubeconfig);
  }
  const args = ['--health-address', '', '--default-image', 'streamroom/room:test', ...(options.args ?? [])];
  return startOperator(loadConfig(args, {}), {
    kubeConfig: kc,
    log: options.log ?? createLogger(process.env.STREAMROOM_TEST_LOG === 'debug' ? 'debug' : 'warn'),
  });
}

export function roomManifest(name: string, namespace: string, spec: object = {}) {
  return { apiVersion: 'streamroom.dev/v1alpha1', kind: 'StreamRoom', metadata: { name, namespace }, spec };
}

/** The Events recorded on an object, as `kubectl get events` prints them. */
export function eventsOf(
  cluster: Cluster,
  namespace: string,
  name: string,
  type?: 'Warning',
): Promise<string> {
  const selector = `involvedObject.name=${name}${type ? `,type=${type}` : ''}`;
  return cluster.kubectl(['get', 'events', '-n', namespace, '--field-selector', selector]);
}
