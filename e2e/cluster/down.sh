#!/usr/bin/env bash
# Stop everything up.sh started and remove the state dir. Safe to call twice (or with no cluster).
#
# Sends SIGTERM to each component's process group (newest first), waits up to
# STREAMROOM_DOWN_TIMEOUT seconds (default 10), then SIGKILLs what is left.
# STREAMROOM_KEEP_STATE=1 keeps the state dir (logs) after stopping.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
STATE="$STREAMROOM_CLUSTER_DIR"
TIMEOUT="${STREAMROOM_DOWN_TIMEOUT:-10}"
log() { echo "down.sh: $*" >&2; }

if [[ ! -f "$STATE/pids" ]]; then
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
# etcd still answers.
first=() last=()
for i in "${!groups[@]}"; do
  if [[ "${names[$i]}" == etcd ]]; then last+=("$i"); else first+=("$i"); fi
done
[[ ${#first[@]} -eq 0 ]] || stop_groups "${first[@]}"
[[ ${#last[@]} -eq 0 ]] || stop_groups "${last[@]}"

if [[ "${STREAMROOM_KEEP_STATE:-0}" == 1 ]]; then
  rm -f "$STATE/pids"
  log "stopped; kept $STATE"
else
  remove_state_dir "$STATE" && log "stopped; removed $STATE"
fi
exit 0
