// Stops everything up started and removes the state dir; safe to run twice, or with no cluster.
// Order: a real node's kubelet first (so that it restarts nothing), then its pods through the CRI
// while containerd still runs, then every other component together, then etcd (the API server stops
// promptly only while etcd answers); each wave gets a grace period, then SIGKILL. Last, the real
// node's host setup is undone (node.ts cleanup). containerd's image store is kept unless purgeImages.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { clusterPaths } from './config.js';
import { progress, type Progress } from './exec.js';
import * as node from './node.js';
import { groupsToStop, readPids, stopGroups, type ProcessRecord } from './supervisor.js';

export interface DownOptions {
  log?: Progress;
  /** Grace period of each wave before SIGKILL (10 s). */
  timeoutMs?: number;
  /** Keep the state dir (logs) after stopping. */
  keepState?: boolean;
  /** Also remove the real node's image store. */
  purgeImages?: boolean;
}

export async function down(dir: string, options: DownOptions = {}): Promise<void> {
  const log = options.log ?? progress('down');
  const timeoutMs = options.timeoutMs ?? 10_000;
  const paths = clusterPaths(dir);
  const state = node.loadNodeState(dir);
  const ours = state !== undefined && node.owned(state, log);

  if (existsSync(paths.pids)) {
    const groups = groupsToStop(readPids(paths));
    const wave = async (members: ProcessRecord[]) => {
      if (members.length === 0) return;
      await stopGroups(members, timeoutMs, log);
      log(`stopped ${members.map((g) => g.name).join(', ')}`);
    };
    await wave(groups.filter((g) => g.name === 'kubelet'));
    if (state && ours) {
      await node.stopPods(state, log);
      log("removed the real node's pods");
    }
    await wave(groups.filter((g) => g.name !== 'kubelet' && g.name !== 'etcd'));
    await wave(groups.filter((g) => g.name === 'etcd'));
  } else {
    log(`nothing running (${paths.pids} not found)`);
  }
  if (state && ours) {
    await node.cleanup(state, log);
    log('cleaned up the real node (network, iptables, ipsets, nftables, mounts, cgroups, sysctls)');
    if (options.purgeImages && existsSync(`${state.node.containerdRoot}/io.containerd.metadata.v1.bolt`)) {
      rmSync(state.node.containerdRoot, { recursive: true, force: true });
      log(`removed the node's image store ${state.node.containerdRoot}`);
    }
  }
  if (options.keepState) {
    rmSync(paths.pids, { force: true });
    log(`stopped; kept ${dir}`);
  } else if (existsSync(dir)) {
    removeStateDir(dir);
    log(`stopped; removed ${dir}`);
  }
}

/** Removes a state dir, but only one up created (marker) or an empty one. */
export function removeStateDir(dir: string): void {
  if (!existsSync(dir)) return;
  const paths = clusterPaths(dir);
  if (existsSync(paths.marker) || existsSync(paths.pids) || readdirSync(dir).length === 0) {
    rmSync(dir, { recursive: true, force: true });
    return;
  }
  throw new Error(
    `refusing to remove ${dir}: not a streamroom cluster state dir (no .streamroom-cluster marker)`,
  );
}
