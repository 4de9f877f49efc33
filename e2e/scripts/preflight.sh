# Sourced by start.sh, test.sh and cluster.sh: checks what the machine needs and installs what it can.
# As root on Debian, missing packages are installed with apt-get (packages.sh); otherwise the script
# stops at once, saying exactly what to install.
log() { echo "streamroom: $*" >&2; }
die() {
  echo "streamroom: $*" >&2
  exit 1
}

# shellcheck source=packages.sh
source "$(dirname "${BASH_SOURCE[0]}")/packages.sh"

need_node() {
  command -v node >/dev/null 2>&1 || die "Node.js is missing: install Node.js 20 (20.19 or newer) and run this again"
  node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>20||(a===20&&b>=19)?0:1)' ||
    die "Node.js $(node --version) is too old: install Node.js 20.19 or newer"
}

need_go() {
  command -v go >/dev/null 2>&1 ||
    die "Go is missing: the local Kubernetes is built from source; install Go 1.24 or newer (https://go.dev/dl) and run this again"
  local v
  v=$(go env GOVERSION | sed 's/^go//')
  [[ $(printf '%s\n' "1.24" "$v" | sort -V | head -1) == "1.24" ]] ||
    die "Go $v is too old: install Go 1.24 or newer (https://go.dev/dl)"
}

need_node_modules() {
  if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
    log "npm ci"
    npm ci --no-audit --no-fund >&2 || die "npm ci failed"
  fi
}

# The binaries of the local control plane, built once from the Go module proxy and cached; extra
# tools as arguments (e.g. the real node's kubelet kube-proxy coredns crictl).
CLUSTER_TOOLS=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok metrics-server helm)
NODE_TOOLS=(kubelet kube-proxy coredns crictl kube-router)

# cluster_mode: which cluster has real containers (e2e/scripts/cluster.sh): STREAMROOM_CLUSTER, else
# kind when the kind command exists, else local.
cluster_mode() { echo "${STREAMROOM_CLUSTER:-$(command -v kind >/dev/null 2>&1 && echo kind || echo local)}"; }
build_cluster() {
  need_go
  bash e2e/cluster/build.sh "${CLUSTER_TOOLS[@]}" "$@" >&2 || die "building the local Kubernetes failed (see above)"
  # Use the kubectl and helm built with the cluster (kubectl of the API server's version).
  local bin
  for bin in kubectl helm; do
    bin=$(source e2e/cluster/lib.sh && tool_bin "$bin")
    PATH="$(dirname "$bin"):$PATH"
  done
  export PATH
}
