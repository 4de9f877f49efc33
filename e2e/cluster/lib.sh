# Shared helpers for e2e/cluster/*.sh (sourced, not executed).
# shellcheck shell=bash

STREAMROOM_CACHE="${STREAMROOM_CACHE:-$HOME/.cache/streamroom}"
STREAMROOM_BIN="$STREAMROOM_CACHE/bin"
STREAMROOM_CLUSTER_DIR="${STREAMROOM_CLUSTER_DIR:-/tmp/streamroom-cluster}"
_LIB_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# module_version <tools subdir> <module path>: the version pinned in tools/<subdir>/go.mod.
module_version() {
  local gomod="$_LIB_HERE/tools/$1/go.mod" v
  v="$(awk -v m="$2" '$1 == m { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$gomod")"
  [[ -n "$v" ]] || { echo "module_version: $2 not pinned in $gomod" >&2; return 1; }
  echo "$v"
}

# tool_version_cmd <tool> <binary>: a cheap command that proves the binary runs.
tool_works() {
  local tool="$1" bin="$2"
  [[ -x "$bin" ]] || return 1
  case "$tool" in
    kubectl) timeout 20 "$bin" version --client >/dev/null 2>&1 ;;
    etcdctl) timeout 20 "$bin" version >/dev/null 2>&1 ;;
    helm) timeout 20 "$bin" version --short >/dev/null 2>&1 ;;
    coredns) timeout 20 "$bin" -version >/dev/null 2>&1 ;;
    *) timeout 20 "$bin" --version >/dev/null 2>&1 ;;
  esac
}

# tool_bin <tool>: path of the cached binary (does not build it).
tool_bin() {
  local tool="$1" moddir keymod
  case "$tool" in
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl | kubelet | kube-proxy)
      moddir=kubernetes keymod=k8s.io/kubernetes ;;
    etcd) moddir=etcd keymod=go.etcd.io/etcd/server/v3 ;;
    etcdctl) moddir=etcd keymod=go.etcd.io/etcd/etcdctl/v3 ;;
    kwok) moddir=kwok keymod=sigs.k8s.io/kwok ;;
    metrics-server) moddir=metrics-server keymod=sigs.k8s.io/metrics-server ;;
    helm) moddir=helm keymod=helm.sh/helm/v3 ;;
    coredns) moddir=coredns keymod=github.com/coredns/coredns ;;
    crictl) moddir=cri-tools keymod=sigs.k8s.io/cri-tools ;;
    kube-router) moddir=kube-router keymod=github.com/cloudnativelabs/kube-router/v2 ;;
    *) echo "tool_bin: unknown tool $tool" >&2; return 1 ;;
  esac
  echo "$STREAMROOM_BIN/$tool-$(module_version "$moddir" "$keymod")/$tool"
}

# remove_state_dir <dir>: rm -rf, but only a dir up.sh created (marker file) or an empty one, so a
# mistyped STREAMROOM_CLUSTER_DIR never wipes unrelated data.
remove_state_dir() {
  local d="$1"
  [[ -e "$d" ]] || return 0
  if [[ -f "$d/.streamroom-cluster" || -f "$d/pids" ]] || [[ -d "$d" && -z "$(ls -A "$d")" ]]; then
    rm -rf "$d"
  else
    echo "refusing to remove $d: not a streamroom cluster state dir (no .streamroom-cluster marker)" >&2
    return 1
  fi
}
