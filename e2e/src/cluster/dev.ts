// The cluster with real containers that `npm start` and the real-container tests use: this
// checkout's images and the operator installed by its Helm chart, on
//   local  this repository's Kubernetes with a real node (root; images loaded into its containerd),
//   kind   `kind create cluster` + `kind load docker-image` (a machine with Docker and internet);
// default kind when the `kind` command exists, else local (STREAMROOM_CLUSTER overrides).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  buildCluster,
  buildImages,
  imageNames,
  needPackages,
  NODE_TOOLS,
  REPO_DIR,
  toolPath,
} from './artifacts.js';
import { clusterPaths, configFromEnv, DEFAULT_DIR, mergeSettings, resolveConfig } from './config.js';
import { down } from './down.js';
import { check, progress, runCommand, runVisible, sleep, type Progress } from './exec.js';
import { loadImages } from './images.js';
import { up } from './up.js';

export type ClusterMode = 'local' | 'kind';

const RELEASE = 'streamroom-operator';
const RELEASE_NS = 'streamroom-system';
const TURN_NODE_PORT = 31478;

export async function clusterMode(env: NodeJS.ProcessEnv = process.env): Promise<ClusterMode> {
  const mode = env.STREAMROOM_CLUSTER;
  if (mode === 'local' || mode === 'kind') return mode;
  if (mode) throw new Error(`STREAMROOM_CLUSTER must be local or kind, got '${mode}'`);
  return (await runCommand('bash', ['-c', 'command -v kind'])).code === 0 ? 'kind' : 'local';
}

export interface DevCluster {
  mode: ClusterMode;
  dir: string;
  kubeconfig: string;
  /** An existing cluster was reused (and is to be left running). */
  reused: boolean;
  /** Directories of the kubectl and helm used (put first on PATH). */
  binDirs: string[];
}

const kindName = () => process.env.STREAMROOM_KIND_NAME || 'streamroom';
const stateDir = () => process.env.STREAMROOM_CLUSTER_DIR || DEFAULT_DIR;

/** Is the local cluster in dir up, with its real node? */
async function localRunning(dir: string, kubectl: string): Promise<boolean> {
  const paths = clusterPaths(dir);
  if (!existsSync(paths.pids)) return false;
  const env = { ...process.env, KUBECONFIG: paths.kubeconfig };
  if ((await runCommand(kubectl, ['get', '--raw', '/readyz'], { env, timeoutMs: 20_000 })).code !== 0)
    return false;
  const nodes = await runCommand(kubectl, ['get', 'node', '-l', 'streamroom.dev/node=real', '-o', 'name'], {
    env,
  });
  return nodes.code === 0 && nodes.stdout.trim() !== '';
}

async function localUp(log: Progress): Promise<DevCluster> {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'the local cluster runs a real kubelet and needs root (or install kind and Docker, and set STREAMROOM_CLUSTER=kind)',
    );
  }
  // every package first, so that a missing one stops this at once, not after the long build
  await needPackages('NODE_PACKAGES', 'IMAGE_PACKAGES');
  await buildCluster(NODE_TOOLS);
  await buildImages();
  log('tools and images ready');
  const dir = stateDir();
  const kubectl = toolPath('kubectl');
  let reused = false;
  if (await localRunning(dir, kubectl)) {
    log(`the local cluster with a real node is already running (${dir})`);
    reused = true;
  } else {
    const dlog = progress('down', log.sink);
    await down(dir, { log: dlog }).catch((err: unknown) =>
      log(`down failed (${String(err)}); starting anyway`),
    );
    await up(
      resolveConfig(mergeSettings(configFromEnv(), { dir, realNode: true })),
      progress('up', log.sink),
    );
  }
  const images = imageNames();
  await loadImages(dir, [images.room, images.operator, images.redis], (m) => log(m));
  return {
    mode: 'local',
    dir,
    kubeconfig: clusterPaths(dir).kubeconfig,
    reused,
    binDirs: [path.dirname(kubectl), path.dirname(toolPath('helm'))],
  };
}

async function kindUp(log: Progress): Promise<DevCluster> {
  for (const cmd of ['docker info', 'command -v kubectl', 'command -v helm']) {
    if ((await runCommand('bash', ['-c', `${cmd} >/dev/null 2>&1`])).code !== 0) {
      throw new Error(
        'with kind, run a Docker engine and install kubectl and helm (https://helm.sh/docs/intro/install/)',
      );
    }
  }
  const dir = stateDir();
  mkdirSync(dir, { recursive: true });
  const images = imageNames();
  // On a machine with a registry the Dockerfiles' base images are pulled as usual.
  await runVisible('docker', ['build', '-f', 'room-image/Dockerfile', '-t', images.room, '.'], {
    cwd: REPO_DIR,
  });
  await runVisible('docker', ['build', '-f', 'operator/Dockerfile', '-t', images.operator, '.'], {
    cwd: REPO_DIR,
  });
  await runVisible('docker', ['build', '-t', images.redis, 'e2e/images/redis'], { cwd: REPO_DIR });
  const clusters = await runCommand('kind', ['get', 'clusters']);
  const reused = clusters.stdout.split('\n').includes(kindName());
  if (!reused) await runVisible('kind', ['create', 'cluster', '--name', kindName(), '--wait', '120s']);
  const kubeconfig = path.join(dir, 'kind.kubeconfig');
  writeFileSync(kubeconfig, await check('kind', ['get', 'kubeconfig', '--name', kindName()]));
  log(`loading ${images.room}, ${images.operator} and ${images.redis} into kind`);
  await runVisible('kind', [
    'load',
    'docker-image',
    '--name',
    kindName(),
    images.room,
    images.operator,
    images.redis,
  ]);
  // The HPA needs resource metrics; kind ships no metrics-server (its kubelets use self-signed certs).
  const env = { ...process.env, KUBECONFIG: kubeconfig };
  await runVisible(
    'kubectl',
    [
      'apply',
      '-f',
      'https://github.com/kubernetes-sigs/metrics-server/releases/download/v0.8.0/components.yaml',
    ],
    { env },
  );
  const deployment = await check(
    'kubectl',
    ['-n', 'kube-system', 'get', 'deployment', 'metrics-server', '-o', 'yaml'],
    {
      env,
    },
  );
  if (!deployment.includes('--kubelet-insecure-tls')) {
    const patch =
      '[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--kubelet-insecure-tls"}]';
    await runVisible(
      'kubectl',
      ['-n', 'kube-system', 'patch', 'deployment', 'metrics-server', '--type', 'json', '-p', patch],
      {
        env,
      },
    );
  }
  return { mode: 'kind', dir, kubeconfig, reused, binDirs: [] };
}

/** The cluster with real containers and the operator installed by its chart. */
export async function devUp(log: Progress = progress('cluster')): Promise<DevCluster> {
  const mode = await clusterMode();
  const cluster = mode === 'local' ? await localUp(log) : await kindUp(log);
  const binPath = [...cluster.binDirs, process.env.PATH ?? ''].join(':');
  const env = { ...process.env, KUBECONFIG: cluster.kubeconfig, PATH: binPath };
  const images = imageNames();
  log(`installing the operator with its Helm chart (${images.operator})`);
  // The chart carries the CRD (helm installs it on first install only; apply keeps it current).
  await runVisible('kubectl', ['apply', '--server-side', '--force-conflicts', '-f', 'crds/'], {
    env,
    cwd: REPO_DIR,
  });
  const nodeIp = (
    await check(
      'kubectl',
      ['get', 'nodes', '-o', 'jsonpath={.items[0].status.addresses[?(@.type=="InternalIP")].address}'],
      {
        env,
      },
    )
  ).trim();
  const [repository, tag] = [
    images.operator.slice(0, images.operator.lastIndexOf(':')),
    images.operator.split(':').pop(),
  ];
  const set = [
    // The local cluster's NodePorts answer on 127.0.0.1, and only there is http a secure page that a
    // broadcaster's browser lets use the camera: room URLs name it (kind: the node's own address).
    ...(mode === 'local' ? ['nodeAddress=127.0.0.1'] : []),
    // (a development cluster: rooms in any namespace; the chart's default is the release namespace)
    'rbac.clusterWide=true',
    // The TURN gateway, reached by browsers on this machine at a NodePort of the node's address.
    'turn.enabled=true',
    'turn.service.type=NodePort',
    `turn.service.nodePort=${TURN_NODE_PORT}`,
    `turn.urls={turn:${nodeIp}:${TURN_NODE_PORT}}`,
    `image.repository=${repository}`,
    `image.tag=${tag}`,
    `defaultRoomImage=${images.room}`,
    `backplane.redisImage=${images.redis}`,
  ];
  await runVisible(
    'helm',
    [
      'upgrade',
      '--install',
      RELEASE,
      'charts/streamroom-operator',
      '-n',
      RELEASE_NS,
      '--create-namespace',
      ...set.flatMap((s) => ['--set', s]),
      '--wait',
      '--timeout',
      '5m',
    ],
    { env, cwd: REPO_DIR },
  );
  log('operator installed');
  return cluster;
}

/** Stops the cluster devUp started (local: down; kind: kind delete cluster). */
export async function devDown(log: Progress = progress('down')): Promise<void> {
  if ((await clusterMode()) === 'kind') await runVisible('kind', ['delete', 'cluster', '--name', kindName()]);
  else await down(stateDir(), { log, ...downEnv() });
}

/** down's documented overrides: STREAMROOM_DOWN_TIMEOUT, STREAMROOM_KEEP_STATE, STREAMROOM_PURGE_IMAGES. */
export function downEnv(env: NodeJS.ProcessEnv = process.env) {
  const timeout = configFromEnv(env).downTimeoutMs;
  return {
    ...(timeout !== undefined ? { timeoutMs: timeout } : {}),
    keepState: env.STREAMROOM_KEEP_STATE === '1',
    purgeImages: env.STREAMROOM_PURGE_IMAGES === '1',
  };
}

/** An image under another name, in the cluster's nodes too (for rollout tests). */
export async function devTag(from: string, to: string, log: Progress = progress('tag')): Promise<void> {
  if ((await clusterMode()) === 'kind') {
    await check('docker', ['tag', from, to]);
    await runVisible('kind', ['load', 'docker-image', '--name', kindName(), to]);
  } else {
    await check(existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker', ['tag', from, to]);
    await loadImages(stateDir(), [to], (m) => log(m));
  }
}

/** `npm start`: the cluster, then examples/basic-room.yaml, then the room's URLs. */
export async function start(): Promise<void> {
  const started = Date.now();
  const log = progress('streamroom');
  const cluster = await devUp(log);
  const env = {
    ...process.env,
    KUBECONFIG: cluster.kubeconfig,
    PATH: [...cluster.binDirs, process.env.PATH].join(':'),
  };
  const kubectl = (args: string[]) => check('kubectl', args, { env, cwd: REPO_DIR });
  await kubectl(['apply', '-f', 'examples/basic-room.yaml']);
  log('waiting for the room to be Ready');
  let phase = '';
  for (let i = 0; i < 180 && phase !== 'Ready' && phase !== 'Failed'; i++) {
    phase = (
      await kubectl(['get', 'streamroom', 'basic', '-o', 'jsonpath={.status.phase}']).catch(() => '')
    ).trim();
    if (phase !== 'Ready' && phase !== 'Failed') await sleep(1000);
  }
  process.stdout.write(await kubectl(['get', 'streamrooms']));
  const jsonpath = (p: string) =>
    kubectl(['get', 'streamroom', 'basic', '-o', `jsonpath=${p}`]).then((s) => s.trim());
  const url = await jsonpath('{.status.url}');
  const message = await jsonpath('{.status.conditions[?(@.type=="Ready")].message}');
  const key = Buffer.from(
    await kubectl(['get', 'secret', 'basic-keys', '-o', 'jsonpath={.data.broadcasterKey}']),
    'base64',
  ).toString();
  const lines = [
    '',
    `Room:        basic (phase ${phase || 'unknown'}; ready in ${Math.round((Date.now() - started) / 1000)} s)`,
    `Viewers:     ${url || 'not known yet'}`,
    ...(url ? [`Broadcaster: ${url}#key=${key}`] : []),
    `Status:      ${message}`,
    `Kubeconfig:  export KUBECONFIG=${cluster.kubeconfig}`,
    'Stop it:     npm stop',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
