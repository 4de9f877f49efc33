// Starts and stops the local control plane of e2e/cluster for a test file, and runs kubectl against it.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_DIR = path.resolve(E2E_DIR, '..');
const CLUSTER = path.join(E2E_DIR, 'cluster');

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

export interface ClusterOptions {
  /** Only etcd and kube-apiserver (enough for schema and CEL validation). */
  apiserverOnly?: boolean;
  /** Settings for up.sh (e.g. STREAMROOM_KWOK_NODES, STREAMROOM_CONTROL_PLANE_QPS). */
  env?: Record<string, string>;
}

/** What a finished command returned. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end, whatever its exit code, optionally feeding it standard input. */
export function runCommand(
  binary: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  input?: string,
): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(binary, args, { env, maxBuffer: 16 << 20 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Path of a tool cached by e2e/cluster/build.sh (whether or not it is built yet), or undefined. */
export function cachedTool(tool: string): string | undefined {
  const probe = spawnSync('bash', ['-c', `source "${CLUSTER}/lib.sh" && tool_bin ${tool}`], {
    encoding: 'utf8',
  });
  return probe.status === 0 ? probe.stdout.trim() || undefined : undefined;
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

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'streamroom-e2e-'));
  const env = { ...process.env, ...options.env, STREAMROOM_CLUSTER_DIR: dir };
  const args = [path.join(CLUSTER, 'up.sh'), '--owner-pid', String(process.pid)];
  if (options.apiserverOnly) args.push('--apiserver-only');
  try {
    await run('bash', args, { env, maxBuffer: 16 << 20 });
  } catch (err) {
    const e = err as { stderr?: string };
    throw new Error(`e2e/cluster/up.sh failed:\n${e.stderr ?? String(err)}`);
  }
  const kubeconfig = path.join(dir, 'kubeconfig');
  readFileSync(kubeconfig); // fails clearly when up.sh did not write it
  return withKubectl(dir, kubeconfig, async () => {
    await run('bash', [path.join(CLUSTER, 'down.sh')], { env }).catch(() => undefined);
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

/**
 * A cluster whose pods run real containers (e2e/scripts/cluster.sh: the local cluster with a real node,
 * or kind), with this checkout's images and the operator installed by its Helm chart. A cluster that
 * is already up (from `npm start`) is reused and left running; one started here is torn down by stop().
 */
export async function startRealCluster(): Promise<Cluster> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    STREAMROOM_CLUSTER_DIR: process.env.STREAMROOM_CLUSTER_DIR ?? '/tmp/streamroom-cluster',
  };
  const script = path.join(E2E_DIR, 'scripts', 'cluster.sh');
  const up = await runCommand('bash', [script, 'up'], env);
  if (up.code !== 0) throw new Error(`e2e/scripts/cluster.sh up failed:\n${up.stderr.slice(-6000)}`);
  const kubeconfig = /^export KUBECONFIG=(.+)$/m.exec(up.stdout)?.[1];
  if (!kubeconfig) throw new Error(`e2e/scripts/cluster.sh printed no KUBECONFIG:\n${up.stdout}`);
  const reused = /already running/.test(up.stderr);
  return withKubectl(path.dirname(kubeconfig), kubeconfig, async () => {
    if (!reused) await runCommand('bash', [script, 'down'], env);
  });
}

/** The running kube-apiserver of a cluster started by up.sh, to take it away and bring it back. */
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
        detached: true, // a process group of its own, which down.sh stops
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
