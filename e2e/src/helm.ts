// Helm for the chart tests: the `helm` on PATH, else the one e2e/src/build/tools.ts builds from the Go
// module proxy (built on first use, then cached like the cluster's other tools).
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { buildTools } from './build/tools.js';
import { REPO_DIR, runCommand, type Cluster } from './cluster.js';

export const CHART_DIR = path.join(REPO_DIR, 'charts', 'streamroom-operator');

/** Path of a working helm: on PATH, or the cached build (building it when missing). */
export async function helmBinary(): Promise<string> {
  if (spawnSync('helm', ['version', '--short'], { stdio: 'ignore' }).status === 0) return 'helm';
  const lines: string[] = [];
  try {
    const [built] = await buildTools(['helm'], { log: (l) => lines.push(l) });
    if (!built) throw new Error('no helm in the build result');
    return built.path;
  } catch (err) {
    throw new Error(`building helm (e2e/src/build/tools.ts) failed:\n${lines.join('\n')}`, { cause: err });
  }
}

/** A helm runner against the cluster, with its config, cache and data kept in the cluster's state dir. */
export function helmFor(binary: string, cluster: Cluster) {
  const home = path.join(cluster.dir, 'helm');
  for (const d of ['config', 'cache', 'data']) mkdirSync(path.join(home, d), { recursive: true });
  const env = {
    ...process.env,
    KUBECONFIG: cluster.kubeconfig,
    HELM_CONFIG_HOME: path.join(home, 'config'),
    HELM_CACHE_HOME: path.join(home, 'cache'),
    HELM_DATA_HOME: path.join(home, 'data'),
  };
  const result = (args: string[]) => runCommand(binary, args, env);
  return {
    result,
    /** Runs helm; resolves with stdout, rejects with stderr. */
    async run(args: string[]): Promise<string> {
      const r = await result(args);
      if (r.code !== 0) throw new Error(`helm ${args.join(' ')}: ${r.stderr.trim()}`);
      return r.stdout;
    },
  };
}

/**
 * A KubeConfig that talks to the cluster as a ServiceAccount: the cluster's server and CA with a token
 * from `kubectl create token` (what the operator's pod would get), so the API server applies exactly the
 * RBAC the chart grants.
 */
export async function serviceAccountKubeConfig(
  cluster: Cluster,
  namespace: string,
  serviceAccount: string,
): Promise<KubeConfig> {
  const token = (
    await cluster.kubectl(['create', 'token', serviceAccount, '-n', namespace, '--duration', '1h'])
  ).trim();
  const admin = new KubeConfig();
  admin.loadFromFile(cluster.kubeconfig);
  const c = admin.getCurrentCluster();
  if (!c) throw new Error(`no current cluster in ${cluster.kubeconfig}`);
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name: 'e2e',
        server: c.server,
        skipTLSVerify: false,
        ...(c.caData ? { caData: c.caData } : {}),
        ...(c.caFile ? { caFile: c.caFile } : {}),
      },
    ],
    users: [{ name: serviceAccount, token }],
    contexts: [{ name: 'sa', cluster: 'e2e', user: serviceAccount }],
    currentContext: 'sa',
  });
  return kc;
}

/** `kubectl auth can-i` as a ServiceAccount: true for "yes", false for "no". */
export async function canI(
  cluster: Cluster,
  sa: { namespace: string; name: string },
  args: string[],
): Promise<boolean> {
  const r = await cluster.kubectlResult([
    'auth',
    'can-i',
    ...args,
    `--as=system:serviceaccount:${sa.namespace}:${sa.name}`,
  ]);
  if (r.stdout.trim() === 'yes') return true;
  if (r.stdout.trim() === 'no') return false;
  throw new Error(`kubectl auth can-i ${args.join(' ')}: ${r.stderr.trim() || r.stdout.trim()}`);
}
