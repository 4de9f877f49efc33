# Sourced by start.sh and test.sh: checks what the machine needs and installs what it can.
# As root on Debian, missing packages are installed with apt-get; otherwise the script stops at once,
# saying exactly what to install.
log() { echo "streamroom: $*" >&2; }
die() {
  echo "streamroom: $*" >&2
  exit 1
}

APT_UPDATED=0
# need_apt <command> <debian package>: installs the package when the command is missing.
need_apt() {
  local cmd="$1" pkg="$2"
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    if [[ $APT_UPDATED == 0 ]]; then
      log "apt-get update"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
      APT_UPDATED=1
    fi
    log "installing $pkg (for $cmd)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >&2 ||
      die "apt-get install $pkg failed"
    command -v "$cmd" >/dev/null 2>&1 || die "$pkg is installed but $cmd is still missing"
  else
    die "$cmd is missing: install it with 'sudo apt-get install -y $pkg' and run this again"
  fi
}

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
build_cluster() {
  need_go
  need_apt openssl openssl
  bash e2e/cluster/build.sh "${CLUSTER_TOOLS[@]}" "$@" >&2 || die "building the local Kubernetes failed (see above)"
  # Use the kubectl and helm built with the cluster (kubectl of the API server's version).
  local bin
  for bin in kubectl helm; do
    bin=$(source e2e/cluster/lib.sh && tool_bin "$bin")
    PATH="$(dirname "$bin"):$PATH"
  done
  export PATH
}
