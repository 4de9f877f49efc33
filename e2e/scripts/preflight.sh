# shellcheck shell=bash
# Sourced by start.sh and test.sh: checks what the machine needs and installs what it can.
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

# The real node's binaries (the control plane's are always built; e2e/src/build/tools.ts).
# shellcheck disable=SC2034 # (used by test.sh)
NODE_TOOLS=(--real-node)

# cluster_mode: which cluster has real containers (e2e/src/cluster/dev.ts): STREAMROOM_CLUSTER, else
# kind when the kind command exists, else local.
cluster_mode() { echo "${STREAMROOM_CLUSTER:-$(command -v kind >/dev/null 2>&1 && echo kind || echo local)}"; }
# build_cluster [--real-node]: the local Kubernetes, built once from the Go module proxy and cached;
# the kubectl and helm built with it go first on PATH (kubectl of the API server's version).
build_cluster() {
  need_go
  local paths
  paths="$(node --import tsx e2e/src/build/cli.ts tools --print-paths "$@")" || die "building the local Kubernetes failed (see above)"
  PATH="$(dirname "$(grep '/kubectl$' <<<"$paths")"):$(dirname "$(grep '/helm$' <<<"$paths")"):$PATH"
  export PATH
}
