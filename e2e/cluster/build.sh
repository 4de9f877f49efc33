#!/usr/bin/env bash
# Build (once) and cache the binaries the e2e cluster needs, from the Go module proxy.
#
#   e2e/cluster/build.sh                       # everything
#   e2e/cluster/build.sh etcd kube-apiserver   # only some
#   e2e/cluster/build.sh --real-node           # everything + the real node's kubelet, kube-proxy, coredns, crictl,
#                                              # kube-router (its NetworkPolicy controller)
#
# Binaries land in ${STREAMROOM_CACHE:-$HOME/.cache/streamroom}/bin/<tool>-<version>/<tool>.
# A tool is skipped when its binary is present and `--version` (or equivalent) works.
# Versions are pinned by the go.mod files under e2e/cluster/tools/<module>/.
# Go's own caches (GOCACHE, GOMODCACHE) stay at their defaults, outside the repo.
# shellcheck source-path=SCRIPTDIR source=../scripts/errors.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/errors.sh" # set -Eeuo pipefail; says what failed

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

ALL_TOOLS=(kube-apiserver etcd etcdctl kubectl kube-controller-manager kube-scheduler kwok metrics-server helm)
# only for `up.sh --real-node` (not built by default)
NODE_TOOLS=(kubelet kube-proxy coredns crictl kube-router)

if [[ "${1:-}" == --real-node ]]; then
  TOOLS=("${ALL_TOOLS[@]}" "${NODE_TOOLS[@]}")
elif [[ $# -gt 0 ]]; then TOOLS=("$@"); else TOOLS=("${ALL_TOOLS[@]}"); fi

# -mod=readonly: build exactly what the committed go.mod/go.sum pin (fails rather than drifting)
export GOFLAGS="${GOFLAGS:--mod=readonly}"
export CGO_ENABLED="${CGO_ENABLED:-0}"
NICE=(nice -n "${STREAMROOM_NICE:-10}")
# A fixed build date keeps the link flags stable so Go's build cache is reused between runs.
BUILD_DATE="1970-01-01T00:00:00Z"

# k8s.io/component-base/version (server binaries) and k8s.io/client-go/pkg/version (kubectl's
# client version) read these link-time variables.
k8s_version_ldflags() { # <version e.g. v1.34.4> [packages...]
  local v="$1" major minor pkg out=""
  shift
  [[ $# -gt 0 ]] || set -- k8s.io/component-base/version k8s.io/client-go/pkg/version
  major="${v#v}"; major="${major%%.*}"
  minor="${v#v*.}"; minor="${minor%%.*}"
  for pkg in "$@"; do
    out+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    out+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$BUILD_DATE"
  done
  echo "$out"
}

# tool -> "<module dir under tools/>|<package>|<pinned module whose version keys the cache>"
tool_spec() {
  case "$1" in
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl | kubelet | kube-proxy)
      echo "kubernetes|k8s.io/kubernetes/cmd/$1|k8s.io/kubernetes" ;;
    etcd) echo "etcd|go.etcd.io/etcd/server/v3|go.etcd.io/etcd/server/v3" ;;
    etcdctl) echo "etcd|go.etcd.io/etcd/etcdctl/v3|go.etcd.io/etcd/etcdctl/v3" ;;
    kwok) echo "kwok|sigs.k8s.io/kwok/cmd/kwok|sigs.k8s.io/kwok" ;;
    metrics-server) echo "metrics-server|sigs.k8s.io/metrics-server/cmd/metrics-server|sigs.k8s.io/metrics-server" ;;
    helm) echo "helm|helm.sh/helm/v3/cmd/helm|helm.sh/helm/v3" ;;
    coredns) echo "coredns|github.com/coredns/coredns|github.com/coredns/coredns" ;;
    crictl) echo "cri-tools|sigs.k8s.io/cri-tools/cmd/crictl|sigs.k8s.io/cri-tools" ;;
    kube-router) echo "kube-router|github.com/cloudnativelabs/kube-router/v2/cmd/kube-router|github.com/cloudnativelabs/kube-router/v2" ;;
    *) return 1 ;;
  esac
}

# as helm's Makefile: its version, and the Kubernetes version `helm lint`/`template` assume by default
# (client-go v0.X.Y -> 1.X), so Capabilities.KubeVersion matches the client libraries helm was built with.
helm_ldflags() { # <version e.g. v3.22.0>
  local v="$1" cg minor
  cg="$(module_version helm k8s.io/client-go)"
  minor="${cg#v0.}"; minor="${minor%%.*}"
  echo "-X helm.sh/helm/v3/internal/version.version=$v -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor" \
    "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
}

tool_ldflags() { # <tool> <version>
  local tool="$1" v="$2"
  case "$tool" in
    # (before kube-*: kube-router is not a Kubernetes binary)
    kube-router) echo "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$v" \
      "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.BuildDate=$BUILD_DATE" ;;
    kube-*|kubectl|kubelet) k8s_version_ldflags "$v" ;;
    etcd|etcdctl) echo "-X go.etcd.io/etcd/api/v3/version.GitSHA=$v" ;;
    kwok) echo "-X sigs.k8s.io/kwok/pkg/consts.Version=${v#v}" ;;
    # as metrics-server's Makefile: only client-go's version package (component-base's must stay
    # the Kubernetes library version, it feeds compatibility/emulation versions)
    metrics-server) k8s_version_ldflags "$v" k8s.io/client-go/pkg/version ;;
    helm) helm_ldflags "$v" ;;
    # CoreDNS's version is a constant in coremain; its Makefile only stamps the commit
    coredns) echo "-X github.com/coredns/coredns/coremain.GitCommit=$v" ;;
    crictl) echo "-X sigs.k8s.io/cri-tools/pkg/version.Version=$v" ;;
  esac
}

# fmt_secs <seconds>: 75 -> 1m15s
fmt_secs() { if (($1 >= 60)); then printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); else printf '%ds' "$1"; fi; }

# go_build_with_progress <tool> <label> <go build args...>: a cold build of a Kubernetes binary takes
# minutes with no output of its own; say every 30 s that it is still going, so nobody thinks it hung.
go_build_with_progress() {
  local tool="$1" label="$2" pid start=$SECONDS rc=0
  shift 2
  "${NICE[@]}" go build "$@" &
  pid=$!
  while ! wait_up_to 30 "$pid"; do
    echo "== $label: still building $tool ($(fmt_secs $((SECONDS - start))) so far, $(fmt_secs $((SECONDS - TOTAL_START))) in all)"
  done
  wait "$pid" || rc=$?
  return "$rc"
}
# wait_up_to <seconds> <pid>: 0 once the process has ended, 1 if it still runs after that long.
wait_up_to() {
  local i
  for ((i = 0; i < $1 * 2; i++)); do
    kill -0 "$2" 2>/dev/null || return 0
    sleep 0.5
  done
  return 1
}

build_one() { # <tool> <label "[i/n]">
  local tool="$1" label="$2" spec moddir pkg keymod version dest out start end ldflags
  spec="$(tool_spec "$tool")" || { echo "build.sh: unknown tool '$tool' (known: ${ALL_TOOLS[*]} ${NODE_TOOLS[*]})" >&2; return 2; }
  IFS='|' read -r moddir pkg keymod <<<"$spec"
  version="$(module_version "$moddir" "$keymod")"
  dest="$STREAMROOM_BIN/$tool-$version"
  out="$dest/$tool"
  start=$SECONDS
  if tool_works "$tool" "$out"; then
    echo "== $label $tool $version: cached ($out)"
    return 0
  fi
  echo "== $label $tool $version: building $pkg ($(fmt_secs $((SECONDS - TOTAL_START))) elapsed)"
  mkdir -p "$dest"
  ldflags="-s -w $(tool_ldflags "$tool" "$version")"
  (cd "$HERE/tools/$moddir" && go_build_with_progress "$tool" "$label" -trimpath -ldflags="$ldflags" -o "$out.tmp.$$" "$pkg")
  mv -f "$out.tmp.$$" "$out" # atomic: concurrent build.sh runs never see a half-written binary
  end=$SECONDS
  if ! tool_works "$tool" "$out"; then
    echo "build.sh: $out built but its version check failed" >&2
    return 1
  fi
  echo "== $label $tool $version: built in $(fmt_secs $((end - start))) -> $out ($(du -h "$out" | cut -f1))"
}

TOTAL_START=$SECONDS
missing=0
for t in "${TOOLS[@]}"; do
  spec="$(tool_spec "$t")" || continue
  IFS='|' read -r moddir _ keymod <<<"$spec"
  tool_works "$t" "$STREAMROOM_BIN/$t-$(module_version "$moddir" "$keymod")/$t" || missing=$((missing + 1))
done
if ((missing > 0)); then
  echo "== building $missing of ${#TOOLS[@]} tools from the Go module proxy (the first time on 2 cores takes" \
    "about 25 minutes, kube-apiserver alone about 5; later runs reuse $STREAMROOM_BIN and Go's caches)"
fi
i=0
for t in "${TOOLS[@]}"; do
  i=$((i + 1))
  build_one "$t" "[$i/${#TOOLS[@]}]"
done
echo "== build.sh done in $(fmt_secs $((SECONDS - TOTAL_START))) (cache: $STREAMROOM_BIN)"
