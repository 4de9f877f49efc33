// The real node's host side: preflight, the one-per-machine marker and lock, the node address and
// sysctls, its config files, the NetworkPolicy rule of its own, and the cleanup that leaves the
// machine as it was (down, or the next up after a crash). Root only.
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import type { ClusterContext, ClusterPaths, RealNodeConfig } from './config.js';
import { needPackages, toolPath } from './artifacts.js';
import { check, runCommand, sleep } from './exec.js';
import { alive, parsePids } from './supervisor.js';
import * as containerd from './components/containerd.js';
import * as coredns from './components/coredns.js';
import * as kubeProxy from './components/kube-proxy.js';
import * as kubelet from './components/kubelet.js';
import { synced } from './components/kube-router.js';

/** What down needs to clean up a node: saved in <state>/node/node.json when it starts. */
export interface NodeState {
  /** The cluster's state dir (the marker's content while this node runs). */
  clusterDir: string;
  node: RealNodeConfig;
  cniBinDir: string;
}

/** iptables, conntrack, ip, ... live in sbin, which a non-login PATH may lack. */
export function ensureSbinPath(): void {
  const dirs = (process.env.PATH ?? '').split(':');
  const missing = ['/usr/local/sbin', '/usr/sbin', '/sbin'].filter((d) => !dirs.includes(d));
  if (missing.length) process.env.PATH = [...dirs.filter(Boolean), ...missing].join(':');
}

// ---------------------------------------------------------------- preflight

export const CNI_PLUGINS = ['bridge', 'host-local', 'portmap', 'loopback', 'firewall'];

/** The directory of the CNI plugins ('' when they are not installed). */
export function findCniDir(): string {
  return ['/usr/lib/cni', '/opt/cni/bin'].find((d) => existsSync(path.join(d, 'bridge'))) ?? '';
}

/** Checks (and installs, as root on Debian) what the node needs; returns the CNI plugin directory. */
export async function preflight(node: RealNodeConfig): Promise<string> {
  if (process.getuid?.() !== 0) {
    throw new Error('the real node needs root (containerd, kubelet, network and iptables setup)');
  }
  ensureSbinPath();
  await needPackages('NODE_PACKAGES');
  const cni = findCniDir();
  const missing = CNI_PLUGINS.filter((p) => !cni || !existsSync(path.join(cni, p)));
  if (missing.length) {
    throw new Error(
      `CNI plugins missing: ${missing.join(', ')} (apt-get install -y containernetworking-plugins)`,
    );
  }
  const brnf = '/proc/sys/net/bridge/bridge-nf-call-iptables';
  if (!existsSync(brnf)) {
    await runCommand('modprobe', ['br_netfilter']);
    if (!existsSync(brnf))
      throw new Error('the real node needs the br_netfilter kernel module (modprobe br_netfilter)');
  }
  if (!existsSync('/sys/fs/cgroup/memory') && !existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    throw new Error('the real node needs cgroups (no memory controller under /sys/fs/cgroup)');
  }
  if (node.networkPolicy) {
    // kube-router's rules: ipsets (hash:ip, hash:net) and the iptables matches set, physdev,
    // addrtype, conntrack, mark, multiport, comment, limit; without the kernel's ip_set, ipset fails
    const r = await runCommand('ipset', ['-n', 'list']);
    if (r.code !== 0) {
      throw new Error(
        `NetworkPolicy (kube-router) needs the kernel's ip_set (ipset -n list: ${r.stderr.trim()}); ` +
          'STREAMROOM_NETWORK_POLICY=0 runs without it',
      );
    }
  }
  return cni;
}

/** Whether this process may lower an oom_score_adj (CAP_SYS_RESOURCE, bit 24 of CapEff). */
export function canLowerOomScore(status = readFileSync('/proc/self/status', 'utf8')): boolean {
  const capEff = /^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1] ?? '0';
  return ((BigInt(`0x${capEff}`) >> 24n) & 1n) === 1n;
}

// ---------------------------------------------------------------- one per machine

/**
 * Serialises concurrent starts of a real node (the marker alone cannot: it is written later). The
 * lock file holds the pid of its owner; one whose owner is gone is taken over.
 */
export function acquireLock(node: RealNodeConfig): () => void {
  const file = `${node.marker}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        if (readFileSync(file, 'utf8').trim() === String(process.pid)) rmSync(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(readFileSync(file, 'utf8').trim());
      if (owner > 0 && owner !== process.pid && alive(owner)) {
        throw new Error(`another real node is starting right now (pid ${owner}, lock ${file})`);
      }
      rmSync(file, { force: true });
    }
  }
  throw new Error(`cannot take the lock ${file}`);
}

/** The state dir of a live real-node cluster of any state dir, if there is one. */
export function runningElsewhere(node: RealNodeConfig): string | undefined {
  if (!existsSync(node.marker)) return undefined;
  const other = readFileSync(node.marker, 'utf8').trim();
  const pids = path.join(other, 'pids');
  if (!other || !existsSync(pids)) return undefined;
  return parsePids(readFileSync(pids, 'utf8')).some((r) => alive(r.pid)) ? other : undefined;
}

/** Who listens on the kubelet's port, if anyone (another kubelet?). */
export async function portInUse(port: number): Promise<string | undefined> {
  const r = await runCommand('ss', ['-Htlnp', `sport = :${port}`]);
  return r.stdout.trim() || undefined;
}

/** Are there remains of a node that was not shut down (crash, kill -9)? */
export async function leftovers(node: RealNodeConfig): Promise<boolean> {
  if (existsSync(node.marker) || existsSync(node.containerdState)) return true;
  return (await runCommand('ip', ['link', 'show', node.iface])).code === 0;
}

const stateFile = (clusterDir: string) => path.join(clusterDir, 'node', 'node.json');

export function saveNodeState(state: NodeState): void {
  mkdirSync(path.dirname(stateFile(state.clusterDir)), { recursive: true });
  writeFileSync(stateFile(state.clusterDir), JSON.stringify(state, null, 2));
}

/** The node state saved in a cluster's state dir (also the node.env of the former bash scripts). */
export function loadNodeState(clusterDir: string): NodeState | undefined {
  const file = stateFile(clusterDir);
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as NodeState;
  const legacy = path.join(clusterDir, 'node', 'node.env');
  if (!existsSync(legacy)) return undefined;
  const v = Object.fromEntries(
    readFileSync(legacy, 'utf8')
      .split('\n')
      .map((l) => /^([A-Z_]+)=(.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1], (m[2] ?? '').replace(/\\(.)/g, '$1')]),
  ) as Record<string, string | undefined>;
  const labels = Object.fromEntries(
    (v.NODE_LABELS ?? '')
      .split(',')
      .filter(Boolean)
      .map((kv) => [kv.split('=')[0] ?? '', kv.slice(kv.indexOf('=') + 1)]),
  );
  return {
    clusterDir,
    cniBinDir: v.CNI_BIN_DIR ?? '',
    node: {
      name: v.NODE_NAME ?? '',
      ip: v.NODE_IP ?? '',
      iface: v.NODE_IFACE ?? '',
      bridge: v.NODE_BRIDGE ?? '',
      podCidr: v.NODE_POD_CIDR ?? '',
      clusterCidr: v.NODE_CLUSTER_CIDR ?? '',
      labels,
      kubeletPort: Number(v.NODE_KUBELET_PORT ?? 10250),
      containerdRoot: v.CTRD_ROOT ?? '',
      containerdState: v.CTRD_STATE ?? '',
      marker: v.NODE_MARKER ?? '',
      networkPolicy: true,
    },
  };
}

/** Is the machine's real node ours, or nobody's? (Another cluster may have taken it over.) */
export function owned(state: NodeState, warn: (m: string) => void): boolean {
  const owner = existsSync(state.node.marker) ? readFileSync(state.node.marker, 'utf8').trim() : '';
  if (!owner || owner === state.clusterDir) return true;
  warn(`leaving the real node alone: it belongs to the cluster in ${owner} now`);
  return false;
}

// ---------------------------------------------------------------- sysctls and network

/** Values the node changes (we, the kubelet, kube-proxy): saved at start, restored by cleanup. */
export const NODE_SYSCTLS = [
  'net.ipv4.ip_forward',
  'net.bridge.bridge-nf-call-iptables',
  'net.ipv4.conf.all.route_localnet',
  'vm.overcommit_memory',
  'vm.panic_on_oom',
  'kernel.panic',
  'kernel.panic_on_oops',
  'kernel.keys.root_maxkeys',
  'kernel.keys.root_maxbytes',
];
export const sysctlPath = (name: string) => `/proc/sys/${name.replaceAll('.', '/')}`;
const readSysctl = (name: string) => {
  try {
    return readFileSync(sysctlPath(name), 'utf8').trim();
  } catch {
    return undefined;
  }
};

export function saveSysctls(paths: ClusterPaths): void {
  const file = path.join(paths.node, 'sysctl.orig');
  if (existsSync(file)) return;
  const lines = NODE_SYSCTLS.map((s) => [s, readSysctl(s)] as const)
    .filter(([, v]) => v !== undefined)
    .map(([s, v]) => `${s} ${v}\n`);
  writeFileSync(file, lines.join(''));
}

function restoreSysctls(file: string): void {
  if (!existsSync(file)) return;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const i = line.indexOf(' ');
    if (i <= 0) continue;
    const [name, value] = [line.slice(0, i), line.slice(i + 1)];
    if (readSysctl(name) === value) continue;
    try {
      writeFileSync(sysctlPath(name), value);
    } catch {
      // (best effort)
    }
  }
}

/**
 * The node's address on its own interface: a dummy device, or (kernels without CONFIG_DUMMY) a
 * bridge without ports, which holds a local address just the same; forwarding on, and bridged pod
 * traffic through iptables (Service DNAT between pods on the same bridge).
 */
export async function netUp(node: RealNodeConfig): Promise<void> {
  if ((await runCommand('ip', ['link', 'show', node.iface])).code !== 0) {
    const dummy = await runCommand('ip', ['link', 'add', node.iface, 'type', 'dummy']);
    if (dummy.code !== 0) await check('ip', ['link', 'add', node.iface, 'type', 'bridge']);
  }
  await check('ip', ['addr', 'replace', `${node.ip}/32`, 'dev', node.iface]);
  await check('ip', ['link', 'set', node.iface, 'up']);
  writeFileSync(sysctlPath('net.ipv4.ip_forward'), '1');
  writeFileSync(sysctlPath('net.bridge.bridge-nf-call-iptables'), '1');
}

/** Our own nftables table (beside iptables-nft's), only while kube-router runs. */
export const NFT_TABLE = 'streamroom-node';

/**
 * Pods' connections to a Service IP that kube-proxy did not DNAT (no endpoints, or no Service) are
 * refused, as kube-proxy alone does: its REJECT rules sit in filter FORWARD behind kube-router's
 * jump, and kube-router ACCEPTs every pod packet its policies allow, so without this such a packet
 * would leave by the default route. A base chain of its own on the forward hook rejects them
 * whatever iptables accepted (an accept ends only its own chain; a reject ends the packet).
 */
export function netpolNftScript(node: RealNodeConfig, serviceCidr: string): string {
  return `add table ip ${NFT_TABLE}
delete table ip ${NFT_TABLE}
table ip ${NFT_TABLE} {
  chain services {
    type filter hook forward priority filter - 5; policy accept;
    iifname "${node.bridge}" ip daddr ${serviceCidr} counter reject comment "not DNATed by kube-proxy: no endpoints"
  }
}
`;
}

export async function netpolUp(node: RealNodeConfig, serviceCidr: string): Promise<void> {
  await check('nft', ['-f', '-'], { input: netpolNftScript(node, serviceCidr) });
}

/** kube-router's first full sync (see components/kube-router.ts synced). */
export async function netpolSynced(): Promise<boolean> {
  const forward = await runCommand('iptables', ['-w', '5', '-S', 'FORWARD']);
  if (forward.code !== 0) return false;
  const router = await runCommand('iptables', ['-w', '5', '-S', 'KUBE-ROUTER-FORWARD']);
  return router.code === 0 && synced(forward.stdout, router.stdout);
}

/** The node's config files in <state>/node. */
export function writeNodeConfigs(ctx: ClusterContext): void {
  const dir = ctx.paths.node;
  for (const d of ['cni/net.d', 'cni/ipam', 'kubelet', 'pod-logs'])
    mkdirSync(path.join(dir, d), { recursive: true });
  writeFileSync(containerd.configFile(ctx), containerd.configToml(ctx));
  writeFileSync(
    path.join(containerd.cniConfDir(ctx), '10-streamroom.conflist'),
    `${JSON.stringify(containerd.cniConflist(ctx), null, 2)}\n`,
  );
  writeFileSync(kubelet.configFile(ctx), stringify(kubelet.configuration(ctx)));
  writeFileSync(kubeProxy.configFile(ctx), stringify(kubeProxy.configuration(ctx)));
  writeFileSync(coredns.corefilePath(ctx), coredns.corefile(ctx));
}

// ---------------------------------------------------------------- cleanup

/**
 * Every pod sandbox stopped and removed through the CRI (CNI DEL: IPAM, veth, portmap/firewall
 * rules), while containerd still runs and after the kubelet has stopped.
 */
export async function stopPods(state: NodeState, warn: (m: string) => void): Promise<void> {
  if (!owned(state, warn)) return;
  const sock = containerd.socket(state.node);
  const crictl = toolPath('crictl');
  if (!existsSync(sock) || !existsSync(crictl)) return;
  const r = await runCommand(
    crictl,
    ['--runtime-endpoint', `unix://${sock}`, '--timeout', '30s', 'rmp', '--all', '--force'],
    { timeoutMs: 60_000 },
  );
  if (r.code !== 0) warn('crictl rmp --all --force failed (leftovers are removed by the cleanup)');
}

/**
 * An iptables-restore script that deletes the KUBE-* and CNI-* chains of one table (kube-proxy,
 * kubelet, CNI bridge/portmap/firewall, kube-router) and every rule jumping to them; other chains
 * (docker's) stay. Input: `iptables-save -t <table>`. Undefined when there is nothing to delete.
 */
export function purgeScript(table: string, saved: string): string | undefined {
  const lines = saved.split('\n');
  const ours = /^(KUBE-|CNI-)/;
  const chains = lines.filter((l) => /^:(KUBE-|CNI-)\S+/.test(l)).map((l) => l.slice(1).split(' ')[0] ?? '');
  if (chains.length === 0) return undefined;
  const jumps = lines
    .filter((l) => /-j (KUBE-|CNI-)/.test(l) && l.startsWith('-A ') && !ours.test(l.slice(3)))
    .map((l) => `-D ${l.slice(3)}`);
  return [
    `*${table}`,
    ...jumps,
    ...chains.map((c) => `-F ${c}`),
    ...chains.map((c) => `-X ${c}`),
    'COMMIT',
    '',
  ].join('\n');
}

/**
 * kube-router's ipsets in `ipset -n list` output: KUBE-SRC-*, KUBE-DST-* per policy, TMP-<16 chars>
 * left by a restore it did not finish; inet6: for IPv6.
 */
export const netpolIpsets = (list: string) =>
  list.split('\n').filter((s) => /^(inet6:)?(KUBE-(SRC|DST)-|TMP-[A-Z2-7]{16}$)/.test(s));

/** Mount points at or below a directory, deepest first. */
export function mountsUnder(mountinfo: string, dir: string): string[] {
  return mountinfo
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((mp) => mp === dir || mp.startsWith(`${dir}/`))
    .sort()
    .reverse();
}

/** Pids whose command line is a containerd shim of this containerd socket. */
function shimPids(sock: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      if (/containerd-shim-runc-v2 /.test(cmd) && cmd.includes(`-address ${sock}`)) out.push(Number(entry));
    } catch {
      // (gone)
    }
  }
  return out;
}

/** rmdir of a directory tree, deepest first (cgroup dirs: only empty ones can go). */
function rmdirTree(dir: string): void {
  let entries: string[] = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const e of entries) {
    const p = path.join(dir, e);
    try {
      if (statSync(p).isDirectory()) rmdirTree(p);
    } catch {
      // (gone)
    }
  }
  try {
    rmdirSync(dir);
  } catch {
    // (busy or not empty: left)
  }
}

/**
 * Makes the machine as before the node started. Idempotent; every step tolerates what does not
 * exist, and none stops the others. Runs after the node's processes are stopped (down), or at up to
 * clear what a node that was not shut down left.
 */
export async function cleanup(state: NodeState, warn: (m: string) => void): Promise<void> {
  const { node } = state;
  if (!owned(state, warn)) return;
  ensureSbinPath();
  const nodeDir = path.join(state.clusterDir, 'node');
  // containers whose shim or containerd died: killed through runc, then the shims
  const runcRoot = path.join(node.containerdState, 'runc', 'k8s.io');
  if (existsSync(runcRoot)) {
    const list = async () =>
      (await runCommand('runc', ['--root', runcRoot, 'list', '-q'])).stdout.split('\n').filter(Boolean);
    for (const id of await list()) await runCommand('runc', ['--root', runcRoot, 'kill', '-a', id, 'KILL']);
    await sleep(200);
    for (const id of await list()) await runCommand('runc', ['--root', runcRoot, 'delete', '-f', id]);
  }
  for (const pid of shimPids(containerd.socket(node))) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // (gone)
    }
  }
  const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
  for (const dir of [node.containerdState, nodeDir, node.containerdRoot]) {
    if (!dir.startsWith('/')) continue;
    for (const mp of mountsUnder(mountinfo, dir)) {
      if ((await runCommand('umount', [mp])).code !== 0) await runCommand('umount', ['-l', mp]);
    }
  }
  rmSync(node.containerdState, { recursive: true, force: true });
  // network: pod veths still on the bridge (normally gone with their netns), the bridge, the node
  // address, the iptables chains, kube-router's ipsets, our nftables table, conntrack entries
  const veths = await runCommand('ip', ['-o', 'link', 'show', 'master', node.bridge]);
  for (const line of veths.stdout.split('\n')) {
    const name = line.split(': ')[1]?.split('@')[0];
    if (name) await runCommand('ip', ['link', 'del', name]);
  }
  await runCommand('ip', ['link', 'del', node.bridge]);
  await runCommand('ip', ['link', 'del', node.iface]);
  const proxy = toolPath('kube-proxy');
  // (exits 1 when e.g. IPVS is missing; what it leaves, the purge below removes)
  if (existsSync(proxy)) await runCommand(proxy, ['--cleanup'], { timeoutMs: 30_000 });
  for (const ipt of ['iptables', 'ip6tables']) {
    for (const table of ['filter', 'nat', 'mangle', 'raw']) {
      const saved = await runCommand(`${ipt}-save`, ['-t', table]);
      const script = saved.code === 0 ? purgeScript(table, saved.stdout) : undefined;
      if (!script) continue;
      const r = await runCommand(`${ipt}-restore`, ['--noflush'], { input: script });
      if (r.code !== 0) warn(`could not remove all ${ipt} ${table} KUBE-/CNI- chains: ${r.stderr.trim()}`);
    }
  }
  const sets = await runCommand('ipset', ['-n', 'list']);
  for (const set of netpolIpsets(sets.stdout)) {
    if ((await runCommand('ipset', ['destroy', set])).code !== 0) warn(`could not destroy ipset ${set}`);
  }
  await runCommand('nft', ['delete', 'table', 'ip', NFT_TABLE]);
  await runCommand('conntrack', ['-D', '-s', node.clusterCidr]);
  await runCommand('conntrack', ['-D', '-d', node.clusterCidr]);
  // the kubelet's pod cgroups (cgroupfs driver), deepest first
  const cgroupRoot = '/sys/fs/cgroup';
  const cgroups = [path.join(cgroupRoot, 'kubepods')];
  try {
    for (const c of readdirSync(cgroupRoot)) cgroups.push(path.join(cgroupRoot, c, 'kubepods'));
  } catch {
    // (no cgroup fs)
  }
  for (const d of cgroups) if (existsSync(d)) rmdirTree(d);
  restoreSysctls(path.join(nodeDir, 'sysctl.orig'));
  if (existsSync(node.marker) && readFileSync(node.marker, 'utf8').trim() === state.clusterDir) {
    for (const f of [node.marker, `${node.marker}.lock`]) rmSync(f, { force: true });
  }
}

/**
 * Clears what a node that was not shut down left: with the settings saved by the cluster the
 * marker names (if its state dir still exists), else with ours.
 */
export async function cleanupStale(ours: NodeState, warn: (m: string) => void): Promise<void> {
  const staleDir = existsSync(ours.node.marker) ? readFileSync(ours.node.marker, 'utf8').trim() : '';
  const stale = staleDir ? loadNodeState(staleDir) : undefined;
  if (!stale) {
    try {
      unlinkSync(ours.node.marker);
    } catch {
      // (none)
    }
  }
  await cleanup(stale ?? ours, warn);
  rmSync(ours.node.marker, { force: true });
}
