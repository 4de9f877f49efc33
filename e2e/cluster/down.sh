#!/usr/bin/env bash
# Stop everything up.sh started and remove the state dir. Safe to call twice (or with no cluster).
#
# Sends SIGTERM to each component's process group (newest first), waits up to
# STREAMROOM_DOWN_TIMEOUT seconds (default 10), then SIGKILLs what is left.
# STREAMROOM_KEEP_STATE=1 keeps the state dir (logs) after stopping.
# With a real node (up.sh --real-node): the kubelet stops first, then every pod sandbox is removed
# through the CRI (CNI DEL), then the rest (also kube-router); afterwards node/node.sh's node_cleanup
# removes leftover containers/shims/mounts, the interfaces, the KUBE-*/CNI-* iptables chains (kube-proxy,
# CNI, kube-router's KUBE-ROUTER-*/KUBE-NWPLCY-*/KUBE-POD-FW-*), kube-router's ipsets and the pod
# cgroups, and restores the sysctls. containerd's image store (/var/lib/streamroom-containerd) is kept,
# unless STREAMROOM_PURGE_IMAGES=1.
# shellcheck source-path=SCRIPTDIR source=../scripts/errors.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/errors.sh" # says what failed
set +e # best effort: every step tolerates what is already gone, and one failing step must not stop the rest

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
STATE="$STREAMROOM_CLUSTER_DIR"
TIMEOUT="${STREAMROOM_DOWN_TIMEOUT:-10}"
log() { echo "down.sh: $*" >&2; }

REAL_NODE=0
if [[ -f "$STATE/node/node.env" ]]; then
  # shellcheck source=node/node.sh
  source "$HERE/node/node.sh"
  # shellcheck disable=SC1091
  source "$STATE/node/node.env"
  node_owned && REAL_NODE=1
fi

if [[ ! -f "$STATE/pids" ]]; then
  [[ "$REAL_NODE" == 1 ]] && node_cleanup
  [[ "${STREAMROOM_KEEP_STATE:-0}" == 1 ]] || remove_state_dir "$STATE"
  log "nothing running ($STATE/pids not found)"
  exit 0
fi

own_pgid="$(ps -o pgid= -p $$ | tr -d ' ')"

# group_alive <pgid>: does any process remain in this process group?
group_alive() { kill -0 -- "-$1" 2>/dev/null; }

# Our components were started with setsid, so pid == pgid == sid. Only signal a group whose
# leader is still the binary we started (guards against pid reuse), or a leaderless group.
groups=()
names=()
while read -r name pid bin; do
  [[ -n "${pid:-}" ]] || continue
  [[ "$pid" == "$own_pgid" ]] && continue # the watchdog running us: don't kill ourselves
  if kill -0 "$pid" 2>/dev/null; then
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
    case "$(basename "${exe% (deleted)}")" in
      "$(basename "$bin")" | bash) ;;
      *) log "skipping $name: pid $pid is now '$exe', not $bin"; continue ;;
    esac
  elif ! group_alive "$pid"; then
    continue
  fi
  groups=("$pid" "${groups[@]}") # reverse order: stop dependents before etcd
  names=("$name" "${names[@]}")
done <"$STATE/pids"

# stop_groups <index>...: SIGTERM these groups together, wait, SIGKILL leftovers.
stop_groups() {
  local i g t0 deadline
  t0=$(date +%s%N)
  for i in "$@"; do kill -TERM -- "-${groups[$i]}" 2>/dev/null || true; done
  deadline=$(($(date +%s) + TIMEOUT))
  for i in "$@"; do
    g="${groups[$i]}"
    while group_alive "$g" && (($(date +%s) < deadline)); do sleep 0.05; done
    if group_alive "$g"; then
      log "${names[$i]} did not stop in ${TIMEOUT}s; sending SIGKILL"
      kill -KILL -- "-$g" 2>/dev/null
      for _ in $(seq 50); do group_alive "$g" || break; sleep 0.1; done
      group_alive "$g" && log "WARNING: process group $g (${names[$i]}) still alive"
    fi
  done
  for i in "$@"; do log "stopped ${names[$i]} (pgid ${groups[$i]})"; done
  log "  ... in $((($(date +%s%N) - t0) / 1000000))ms"
}
# Everything but etcd first (together), then etcd: the apiserver shuts down promptly only while
# etcd still answers. A real node's kubelet goes before everything (so that it restarts nothing),
# and its pods are removed while containerd still runs.
kubelet=() first=() last=()
for i in "${!groups[@]}"; do
  case "${names[$i]}" in
    etcd) last+=("$i") ;;
    kubelet) kubelet+=("$i") ;;
    *) first+=("$i") ;;
  esac
done
[[ ${#kubelet[@]} -eq 0 ]] || stop_groups "${kubelet[@]}"
if [[ "$REAL_NODE" == 1 ]]; then
  t0=$(date +%s%N)
  node_stop_pods
  log "removed the real node's pods in $((($(date +%s%N) - t0) / 1000000))ms"
fi
[[ ${#first[@]} -eq 0 ]] || stop_groups "${first[@]}"
[[ ${#last[@]} -eq 0 ]] || stop_groups "${last[@]}"
if [[ "$REAL_NODE" == 1 ]]; then
  t0=$(date +%s%N)
  node_cleanup
  log "cleaned up the real node (network, iptables, ipsets, mounts, cgroups, sysctls) in $((($(date +%s%N) - t0) / 1000000))ms"
  if [[ "${STREAMROOM_PURGE_IMAGES:-0}" == 1 && -d "$CTRD_ROOT/io.containerd.metadata.v1.bolt" ]]; then # a containerd root, nothing else
    rm -rf "$CTRD_ROOT" && log "removed the node's image store $CTRD_ROOT"
  fi
fi

if [[ "${STREAMROOM_KEEP_STATE:-0}" == 1 ]]; then
  rm -f "$STATE/pids"
  log "stopped; kept $STATE"
else
  remove_state_dir "$STATE" && log "stopped; removed $STATE"
fi
exit 0
