// The local cluster for tests (e2e/src/cluster/: started in this process, stopped by stop() or, if
// the test process dies first, by a watchdog), and kubectl against it.
import { mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { E2E_DIR, isTool, REPO_DIR, toolPath } from './cluster/artifacts.js';
import { configFromEnv, mergeSettings, resolveConfig, type ClusterSettings } from './cluster/config.js';
import { down } from './cluster/down.js';
import { describeError, progress, runCommand as run, type CommandResult } from './cluster/exec.js';
import { up } from './cluster/up.js';

export { E2E_DIR, REPO_DIR, type CommandResult };

export interface Cluster {
  dir: string;
  kubeconfig: string;
  /** The kubectl binary the helpers run. */
  kubectlPath: string;
  /** Runs kubectl; resolves with stdout, rejects with an Error whose message is stderr. */
  kubectl(args: string[], input?: string): Promise<string>;
  /** Runs kubectl and returns its exit code and output, whatever they are. */
  kubectlResult(args: string[], input?: string): Promise<CommandResult>;
  stop(): Promise<void>;
}

/**
 * What the test needs of the cluster (e.g. apiserverOnly, kwokNodes, kwokNodePods, hpaSyncPeriod,
 * controlPlaneQps); see ClusterSettings in cluster/config.ts.
 */
export type ClusterOptions = Omit<ClusterSettings, 'dir' | 'ownerPid' | 'realNode' | 'node'>;

/** Runs a command to its end, whatever its exit code, optionally feeding it standard input. */
export function runCommand(
  binary: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  input?: string,
): Promise<CommandResult> {
  return run(binary, args, { env, ...(input !== undefined ? { input } : {}) });
}

/** Path of a tool cached by the cluster build (whether or not it is built yet), or undefined. */
export function cachedTool(tool: string): string | undefined {
  return isTool(tool) ? toolPath(tool) : undefined;
}

function kubectlBinary(): string {
  // Prefer the kubectl built with the cluster (same version); fall back to one on PATH.
  const built = cachedTool('kubectl');
  return built && spawnSync(built, ['version', '--client'], { stdio: 'ignore' }).status === 0
    ? built
    : 'kubectl';
}

function withKubectl(dir: string, kubeconfig: string, stop: () => Promise<void>): Cluster {
  const kubectlPath = kubectlBinary();
  const kenv = { ...process.env, KUBECONFIG: kubeconfig };
  const kubectlResult = (kargs: string[], input?: string) => runCommand(kubectlPath, kargs, kenv, input);
  return {
    dir,
    kubeconfig,
    kubectlPath,
    kubectlResult,
    async kubectl(kargs, input) {
      const r = await kubectlResult(kargs, input);
      if (r.code !== 0) throw new Error(`kubectl ${kargs.join(' ')}: ${r.stderr.trim()}`);
      return r.stdout;
    },
    stop,
  };
}

/** A cluster of its own for a test file, in a new state dir (torn down when this process exits). */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'streamroom-e2e-'));
  const config = resolveConfig(mergeSettings(configFromEnv(), options, { dir, ownerPid: process.pid }));
  const lines: string[] = [];
  const sink = (line: string) => lines.push(line);
  try {
    await up(config, progress('up', sink));
  } catch (err) {
    throw new Error(`starting the cluster failed:\n${lines.join('\n')}\n${describeError(err)}`, {
      cause: err,
    });
  }
  return withKubectl(dir, path.join(dir, 'kubeconfig'), async () => {
    await down(dir, { log: progress('down', sink), timeoutMs: config.downTimeoutMs }).catch(() => undefined);
  });
}

/** Polls until `check` returns a value other than undefined/false, or throws after the timeout. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

const CLI = path.join(E2E_DIR, 'src', 'cluster', 'cli.ts');
const TSX = path.join(REPO_DIR, 'node_modules', '.bin', 'tsx');

/**
 * A cluster whose pods run real containers (cluster/dev.ts: the local cluster with a real node, or
 * kind), with this checkout's images and the operator installed by its Helm chart. A cluster that is
 * already up (from `npm start`) is reused and left running; one started here is torn down by stop().
 * (In a process of its own: its long steps' output is shown only when it fails.)
 */
export async function startRealCluster(): Promise<Cluster> {
  const up = await runCommand(TSX, [CLI, 'real-up'], process.env);
  if (up.code !== 0) throw new Error(`cli.ts real-up failed:\n${up.stderr.slice(-6000)}`);
  const kubeconfig = /^export KUBECONFIG=(.+)$/m.exec(up.stdout)?.[1];
  if (!kubeconfig) throw new Error(`cli.ts real-up printed no KUBECONFIG:\n${up.stdout}`);
  const reused = /^export STREAMROOM_CLUSTER_REUSED=1$/m.test(up.stdout);
  return withKubectl(path.dirname(kubeconfig), kubeconfig, async () => {
    if (!reused) await runCommand(TSX, [CLI, 'stop'], process.env);
  });
}

/** Loads images (docker names, tar files, pause, nettest) into the real node of a local cluster. */
export async function loadImages(cluster: Cluster, images: string[]): Promise<void> {
  const r = await runCommand(TSX, [CLI, 'load-images', '--dir', cluster.dir, ...images], process.env);
  if (r.code !== 0)
    throw new Error(`cli.ts load-images ${images.join(' ')} failed:\n${r.stderr.slice(-3000)}`);
}

/** Tags a docker image and loads it under the new name into the cluster's nodes (local or kind). */
export async function tagImage(from: string, to: string): Promise<void> {
  const r = await runCommand(TSX, [CLI, 'tag', from, to], process.env);
  if (r.code !== 0) throw new Error(`cli.ts tag ${from} ${to} failed:\n${r.stderr.slice(-3000)}`);
}

/** The running kube-apiserver of a local cluster, to take it away and bring it back. */
export interface ApiServerControl {
  /** SIGSTOP: the process and its open connections hang, as on a frozen machine. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** SIGTERM and wait until it has exited. */
  stop(): Promise<void>;
  /** Starts it again with the same command line (after stop()). */
  start(): void;
  /** Resolves once /readyz answers ok; with the time that took. */
  waitReady(timeoutMs?: number): Promise<number>;
}

export function apiServerControl(cluster: Cluster): ApiServerControl {
  const pidsFile = path.join(cluster.dir, 'pids');
  const find = () => {
    const line = readFileSync(pidsFile, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('kube-apiserver '));
    if (!line) throw new Error(`no kube-apiserver in ${pidsFile}`);
    return Number(line.split(' ')[1]);
  };
  let pid = find();
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  const alive = (p: number) => {
    try {
      process.kill(p, 0);
      return true;
    } catch {
      return false;
    }
  };
  return {
    pause: () => process.kill(pid, 'SIGSTOP'),
    resume: () => process.kill(pid, 'SIGCONT'),
    async stop() {
      process.kill(pid, 'SIGTERM');
      const deadline = Date.now() + 60_000;
      while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    },
    start() {
      const log = openSync(path.join(cluster.dir, 'logs', 'kube-apiserver.log'), 'a');
      const child = spawn(argv[0] ?? 'kube-apiserver', argv.slice(1), {
        detached: true, // a process group of its own, which down stops
        stdio: ['ignore', log, log],
      });
      child.unref();
      const old = pid;
      pid = child.pid ?? 0;
      const lines = readFileSync(pidsFile, 'utf8').split('\n');
      writeFileSync(
        pidsFile,
        lines
          .map((l) => (l.startsWith(`kube-apiserver ${old} `) ? l.replace(` ${old} `, ` ${pid} `) : l))
          .join('\n'),
      );
    },
    async waitReady(timeoutMs = 120_000) {
      const started = Date.now();
      await eventually(
        'kube-apiserver /readyz',
        async () =>
          (await cluster.kubectlResult(['get', '--raw', '/readyz', '--request-timeout=2s'])).stdout.trim() ===
          'ok',
        timeoutMs,
        100,
      );
      return Date.now() - started;
    },
  };
}
