// The binaries of the local cluster (Kubernetes, etcd, kwok, metrics-server, helm; for the real node
// also kubelet, kube-proxy, CoreDNS, crictl and kube-router), built once from the Go module proxy and
// cached in ${STREAMROOM_CACHE:-~/.cache/streamroom}/bin/<tool>-<version>/<tool>. Versions are pinned
// by the go.mod files under e2e/cluster/tools/<module>/ (a version bump there is a new cache entry).
// Go's own caches (GOCACHE, GOMODCACHE) stay at their defaults, outside the repo.
import { mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand, runVisible } from '../cluster/exec.js';
import { findExecutable, fmtSecs, isExecutable, stderrLog, withHeartbeat, type Log } from './progress.js';

/** e2e/ */
export const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The small Go modules that pin each tool's version (e2e/cluster/tools/<module>/go.mod). */
export const TOOLS_DIR = path.join(E2E_DIR, 'cluster', 'tools');

/** Where a tool comes from: the module dir under tools/, the main package, the module keying the cache. */
export interface ToolSpec {
  moduleDir: string;
  pkg: string;
  keyModule: string;
}

const kube = (cmd: string): ToolSpec => ({
  moduleDir: 'kubernetes',
  pkg: `k8s.io/kubernetes/cmd/${cmd}`,
  keyModule: 'k8s.io/kubernetes',
});

export const TOOL_SPECS = {
  'kube-apiserver': kube('kube-apiserver'),
  'kube-controller-manager': kube('kube-controller-manager'),
  'kube-scheduler': kube('kube-scheduler'),
  kubectl: kube('kubectl'),
  kubelet: kube('kubelet'),
  'kube-proxy': kube('kube-proxy'),
  etcd: { moduleDir: 'etcd', pkg: 'go.etcd.io/etcd/server/v3', keyModule: 'go.etcd.io/etcd/server/v3' },
  etcdctl: { moduleDir: 'etcd', pkg: 'go.etcd.io/etcd/etcdctl/v3', keyModule: 'go.etcd.io/etcd/etcdctl/v3' },
  kwok: { moduleDir: 'kwok', pkg: 'sigs.k8s.io/kwok/cmd/kwok', keyModule: 'sigs.k8s.io/kwok' },
  'metrics-server': {
    moduleDir: 'metrics-server',
    pkg: 'sigs.k8s.io/metrics-server/cmd/metrics-server',
    keyModule: 'sigs.k8s.io/metrics-server',
  },
  helm: { moduleDir: 'helm', pkg: 'helm.sh/helm/v3/cmd/helm', keyModule: 'helm.sh/helm/v3' },
  coredns: {
    moduleDir: 'coredns',
    pkg: 'github.com/coredns/coredns',
    keyModule: 'github.com/coredns/coredns',
  },
  crictl: {
    moduleDir: 'cri-tools',
    pkg: 'sigs.k8s.io/cri-tools/cmd/crictl',
    keyModule: 'sigs.k8s.io/cri-tools',
  },
  'kube-router': {
    moduleDir: 'kube-router',
    pkg: 'github.com/cloudnativelabs/kube-router/v2/cmd/kube-router',
    keyModule: 'github.com/cloudnativelabs/kube-router/v2',
  },
} as const satisfies Record<string, ToolSpec>;

export type Tool = keyof typeof TOOL_SPECS;

/** `tools` without names: the control plane, kwok, metrics-server, helm (and etcdctl, for debugging). */
export const DEFAULT_TOOLS: readonly Tool[] = [
  'kube-apiserver',
  'etcd',
  'etcdctl',
  'kubectl',
  'kube-controller-manager',
  'kube-scheduler',
  'kwok',
  'metrics-server',
  'helm',
];
/** Only for the real node (`tools --real-node`, up.sh --real-node). */
export const NODE_TOOLS: readonly Tool[] = ['kubelet', 'kube-proxy', 'coredns', 'crictl', 'kube-router'];
export const ALL_TOOLS: readonly Tool[] = Object.keys(TOOL_SPECS) as Tool[];

export function isTool(name: string): name is Tool {
  return Object.hasOwn(TOOL_SPECS, name);
}

function spec(tool: string): ToolSpec {
  if (!isTool(tool)) throw new Error(`unknown tool '${tool}' (known: ${ALL_TOOLS.join(' ')})`);
  return TOOL_SPECS[tool];
}

/** The cache root: $STREAMROOM_CACHE, else ~/.cache/streamroom (as the bash scripts had it). */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.STREAMROOM_CACHE || path.join(env.HOME || os.homedir(), '.cache', 'streamroom');
}

/** <cache>/bin/<tool>-<version>/<tool> */
export const cachedBinary = (cache: string, tool: string, version: string): string =>
  path.join(cache, 'bin', `${tool}-${version}`, tool);

/**
 * The version go.mod pins for a module: the first line whose first word is the module (inside a
 * require block) or `require <module> <version>`; undefined when it is not there.
 */
export function goModVersion(goMod: string, module: string): string | undefined {
  for (const line of goMod.split('\n')) {
    const w = line.trim().split(/\s+/);
    if (w[0] === module && w[1]) return w[1];
    if (w[0] === 'require' && w[1] === module && w[2]) return w[2];
  }
  return undefined;
}

/** The version of `module` pinned in tools/<moduleDir>/go.mod (throws when it is not pinned). */
export function pinnedVersion(moduleDir: string, module: string, toolsDir = TOOLS_DIR): string {
  const file = path.join(toolsDir, moduleDir, 'go.mod');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new Error(`reading ${file} for the version of ${module}`, { cause });
  }
  const v = goModVersion(text, module);
  if (!v) throw new Error(`${module} is not pinned in ${file}`);
  return v;
}

/** The version a tool is built at, e.g. toolVersion('kubectl') === 'v1.34.4'. */
export function toolVersion(tool: string, toolsDir = TOOLS_DIR): string {
  const s = spec(tool);
  return pinnedVersion(s.moduleDir, s.keyModule, toolsDir);
}

/** Path of a tool's cached binary, whether or not it is built yet (buildTools builds it). */
export function toolPath(tool: string, cache: string = cacheDir()): string {
  return cachedBinary(cache, tool, toolVersion(tool));
}

// A fixed build date keeps the link flags stable so Go's build cache is reused between runs.
const BUILD_DATE = '1970-01-01T00:00:00Z';

/**
 * -X flags for k8s.io/component-base/version (server binaries) and k8s.io/client-go/pkg/version
 * (kubectl's client version), which the binaries report as their version.
 */
export function k8sVersionLdflags(
  version: string,
  packages: readonly string[] = ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version'],
): string[] {
  const [major = '', minor = ''] = version.replace(/^v/, '').split('.');
  return packages.flatMap((pkg) =>
    [
      `gitVersion=${version}`,
      `gitMajor=${major}`,
      `gitMinor=${minor}`,
      'gitTreeState=clean',
      `buildDate=${BUILD_DATE}`,
    ].flatMap((v) => ['-X', `${pkg}.${v}`]),
  );
}

const x = (...assignments: string[]) => assignments.flatMap((a) => ['-X', a]);

/**
 * The link flags that stamp a tool's version as its own Makefile does. helm also needs the
 * client-go version it is built with (its default Kubernetes version for lint/template is 1.<minor>).
 */
export function toolLdflags(tool: Tool, version: string, helmClientGo = 'v0.0.0'): string[] {
  switch (tool) {
    case 'kube-router':
      return x(
        `github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=${version}`,
        `github.com/cloudnativelabs/kube-router/v2/pkg/version.BuildDate=${BUILD_DATE}`,
      );
    case 'kube-apiserver':
    case 'kube-controller-manager':
    case 'kube-scheduler':
    case 'kubectl':
    case 'kubelet':
    case 'kube-proxy':
      return k8sVersionLdflags(version);
    case 'etcd':
    case 'etcdctl':
      return x(`go.etcd.io/etcd/api/v3/version.GitSHA=${version}`);
    case 'kwok':
      return x(`sigs.k8s.io/kwok/pkg/consts.Version=${version.replace(/^v/, '')}`);
    // as metrics-server's Makefile: only client-go's version package (component-base's must stay the
    // Kubernetes library version, it feeds compatibility/emulation versions)
    case 'metrics-server':
      return k8sVersionLdflags(version, ['k8s.io/client-go/pkg/version']);
    case 'helm': {
      // client-go v0.X.Y -> Kubernetes 1.X, so Capabilities.KubeVersion matches helm's client libraries
      const minor = helmClientGo.replace(/^v0\./, '').split('.')[0] ?? '';
      return x(
        `helm.sh/helm/v3/internal/version.version=${version}`,
        'helm.sh/helm/v3/internal/version.gitTreeState=clean',
        'helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1',
        `helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${minor}`,
        'helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1',
        `helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${minor}`,
      );
    }
    // CoreDNS's version is a constant in coremain; its Makefile only stamps the commit
    case 'coredns':
      return x(`github.com/coredns/coredns/coremain.GitCommit=${version}`);
    case 'crictl':
      return x(`sigs.k8s.io/cri-tools/pkg/version.Version=${version}`);
  }
}

/** `go build` arguments for a tool (run in its module dir under tools/). */
export function goBuildArgs(tool: Tool, version: string, out: string, helmClientGo?: string): string[] {
  const ldflags = ['-s', '-w', ...toolLdflags(tool, version, helmClientGo)].join(' ');
  return ['build', '-trimpath', `-ldflags=${ldflags}`, '-o', out, TOOL_SPECS[tool].pkg];
}

/** A cheap command that proves the binary runs. */
export function versionArgs(tool: Tool): string[] {
  switch (tool) {
    case 'kubectl':
      return ['version', '--client'];
    case 'etcdctl':
      return ['version'];
    case 'helm':
      return ['version', '--short'];
    case 'coredns':
      return ['-version'];
    default:
      return ['--version'];
  }
}

/** The binary is there and its version command succeeds (within 20 s). */
export async function toolWorks(tool: Tool, binary: string): Promise<boolean> {
  if (!isExecutable(binary)) return false;
  return (await runCommand(binary, versionArgs(tool), { timeoutMs: 20_000 })).code === 0;
}

export interface BuildToolsOptions {
  /** The cache root (default: cacheDir(env)). */
  cache?: string;
  /** GOFLAGS, CGO_ENABLED, STREAMROOM_NICE, STREAMROOM_CACHE (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Progress lines (default: stderr). */
  log?: Log;
  /** How often a long build says it is still going (default 30 s). */
  heartbeatMs?: number;
  /** The tool modules (default e2e/cluster/tools; tests use their own). */
  toolsDir?: string;
}

export interface BuiltTool {
  tool: Tool;
  version: string;
  path: string;
  /** false: it was cached. */
  built: boolean;
}

/**
 * Builds the tools that are not cached yet (a cached one is kept when its version command works),
 * one at a time, with progress: `[i/n]` per tool, a heartbeat every 30 s during a build, elapsed
 * times. Rejects on the first failure, with what was being built and what to install.
 */
export async function buildTools(
  names: readonly string[] = DEFAULT_TOOLS,
  options: BuildToolsOptions = {},
): Promise<BuiltTool[]> {
  const env = options.env ?? process.env;
  const log = options.log ?? stderrLog;
  const toolsDir = options.toolsDir ?? TOOLS_DIR;
  const unknown = names.filter((n) => !isTool(n));
  if (unknown.length)
    throw new Error(`unknown tool '${unknown.join("', '")}' (known: ${ALL_TOOLS.join(' ')})`);
  const tools = [...new Set(names as Tool[])];
  const cache = options.cache ?? cacheDir(env);
  const bin = path.join(cache, 'bin');
  const started = Date.now();
  const elapsed = () => fmtSecs((Date.now() - started) / 1000);

  const planned = tools.map((tool) => {
    const version = toolVersion(tool, toolsDir);
    return { tool, version, path: cachedBinary(cache, tool, version) };
  });
  // every version check at once: the warm path is these checks and nothing else
  const works = await Promise.all(planned.map((p) => toolWorks(p.tool, p.path)));
  const missing = works.filter((w) => !w).length;
  if (missing > 0) {
    log(
      `== building ${missing} of ${tools.length} tools from the Go module proxy (the first time on 2 cores ` +
        `takes about 25 minutes, kube-apiserver alone about 5; later runs reuse ${bin} and Go's caches)`,
    );
  }
  if (missing > 0 && !findExecutable('go', env)) {
    throw new Error(
      "go is not on PATH: the cluster's binaries are built from the Go module proxy; install Go 1.24 or newer (https://go.dev/dl)",
    );
  }
  const results: BuiltTool[] = [];
  for (const [i, p] of planned.entries()) {
    const label = `[${i + 1}/${tools.length}]`;
    if (works[i]) {
      log(`== ${label} ${p.tool} ${p.version}: cached (${p.path})`);
      results.push({ ...p, built: false });
      continue;
    }
    await buildOne(p.tool, p.version, p.path, {
      label,
      env,
      log,
      toolsDir,
      elapsed,
      heartbeatMs: options.heartbeatMs,
    });
    results.push({ ...p, built: true });
  }
  log(`== tools done in ${elapsed()} (cache: ${bin})`);
  return results;
}

interface BuildOneContext {
  label: string;
  env: NodeJS.ProcessEnv;
  log: Log;
  toolsDir: string;
  elapsed: () => string;
  heartbeatMs: number | undefined;
}

async function buildOne(tool: Tool, version: string, out: string, c: BuildOneContext): Promise<void> {
  const { moduleDir, pkg } = TOOL_SPECS[tool];
  const started = Date.now();
  c.log(`== ${c.label} ${tool} ${version}: building ${pkg} (${c.elapsed()} elapsed)`);
  const helmClientGo = tool === 'helm' ? pinnedVersion('helm', 'k8s.io/client-go', c.toolsDir) : undefined;
  const tmp = `${out}.tmp.${process.pid}`;
  mkdirSync(path.dirname(out), { recursive: true });
  try {
    const build = runVisible(
      'nice',
      ['-n', c.env.STREAMROOM_NICE || '10', 'go', ...goBuildArgs(tool, version, tmp, helmClientGo)],
      {
        cwd: path.join(c.toolsDir, moduleDir),
        env: {
          ...c.env,
          // -mod=readonly: exactly what the committed go.mod/go.sum pin (fails rather than drifting)
          GOFLAGS: c.env.GOFLAGS || '-mod=readonly',
          CGO_ENABLED: c.env.CGO_ENABLED || '0',
        },
      },
    );
    // a cold build of a Kubernetes binary takes minutes with no output of its own
    await withHeartbeat(
      build,
      (s) => c.log(`== ${c.label}: still building ${tool} (${fmtSecs(s)} so far, ${c.elapsed()} in all)`),
      c.heartbeatMs,
    );
    renameSync(tmp, out); // atomic: concurrent builds never see a half-written binary
  } catch (cause) {
    rmSync(tmp, { force: true });
    throw new Error(`building ${tool} ${version} from ${pkg} failed (see the go output above)`, { cause });
  }
  if (!(await toolWorks(tool, out))) {
    throw new Error(`${out} was built but \`${tool} ${versionArgs(tool).join(' ')}\` fails`);
  }
  const mib = Math.round(statSync(out).size / 2 ** 20);
  c.log(
    `== ${c.label} ${tool} ${version}: built in ${fmtSecs((Date.now() - started) / 1000)} -> ${out} (${mib}M)`,
  );
}
