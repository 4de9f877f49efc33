#!/usr/bin/env bash
# A Kubernetes cluster that runs real room containers: the images built from this checkout, the
# operator installed in the cluster by its Helm chart. Used by `npm start` and the real-node e2e suite.
#
#   e2e/scripts/cluster.sh up      # progress on stderr; `export KUBECONFIG=... PATH=...` lines on stdout
#   e2e/scripts/cluster.sh down
#   e2e/scripts/cluster.sh tag IMAGE NEW  # tag an image and load it into the cluster's nodes
#
# Which cluster (STREAMROOM_CLUSTER):
#   local  this repository's Kubernetes built from source (e2e/cluster/up.sh --real-node: containerd,
#          kubelet, kube-proxy, CoreDNS on this machine), images built offline (e2e/images/build.sh)
#          and loaded into the node's containerd. Needs root; for machines without a registry.
#   kind   `kind create cluster` + `kind load docker-image`, for a machine with Docker and internet.
#   default: kind when the `kind` command exists, else local.
# shellcheck source=errors.sh
source "$(dirname "${BASH_SOURCE[0]}")/errors.sh" # set -Eeuo pipefail; says what failed
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=preflight.sh
source e2e/scripts/preflight.sh

export STREAMROOM_CLUSTER_DIR="${STREAMROOM_CLUSTER_DIR:-/tmp/streamroom-cluster}"
STATE="$STREAMROOM_CLUSTER_DIR"
MODE="$(cluster_mode)"
KIND_NAME="${STREAMROOM_KIND_NAME:-streamroom}"
RELEASE=streamroom-operator
RELEASE_NS=streamroom-system
# the image names e2e/images/build.sh builds (the ones the operator and the chart ask for)
read -r ROOM_IMAGE OPERATOR_IMAGE REDIS_IMAGE < <(
  # shellcheck disable=SC1091
  source e2e/images/lib.sh && echo "$ROOM_IMAGE $OPERATOR_IMAGE $REDIS_IMAGE"
)
IMAGES=("$ROOM_IMAGE" "$OPERATOR_IMAGE" "$REDIS_IMAGE")
TURN_NODE_PORT=31478

kubeconfig_path() { if [[ "$MODE" == kind ]]; then echo "$STATE/kind.kubeconfig"; else echo "$STATE/kubeconfig"; fi; }

local_up() {
  [[ $(id -u) -eq 0 ]] || die "the local cluster runs a real kubelet and needs root (or install kind and Docker, and set STREAMROOM_CLUSTER=kind)"
  # every package first, so that a missing one stops this at once, not after the long build
  need_packages "${NODE_PACKAGES[@]}" "${IMAGE_PACKAGES[@]}" || exit 1
  build_cluster "${NODE_TOOLS[@]}"
  bash e2e/images/build.sh >&2 || die "building the images failed (see above)"
  if [[ -f "$STATE/pids" ]] && KUBECONFIG="$STATE/kubeconfig" kubectl get --raw /readyz >/dev/null 2>&1 &&
    KUBECONFIG="$STATE/kubeconfig" kubectl get node -l streamroom.dev/node=real -o name 2>/dev/null | grep -q .; then
    log "the local cluster with a real node is already running ($STATE)"
  else
    bash e2e/cluster/down.sh >&2 || log "e2e/cluster/down.sh failed (see above); starting anyway"
    bash e2e/cluster/up.sh --real-node >/dev/null # (stdout: the export line; progress is on stderr)
  fi
  bash e2e/cluster/load-images.sh "${IMAGES[@]}" >&2
}

kind_up() {
  command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 || die "kind needs a running Docker engine"
  mkdir -p "$STATE"
  # On a machine with a registry the Dockerfiles' base images are pulled as usual.
  for f in room-image/Dockerfile operator/Dockerfile; do
    docker build -f "$f" -t "$([[ $f == room-image/* ]] && echo "$ROOM_IMAGE" || echo "$OPERATOR_IMAGE")" . >&2
  done
  docker build -t "$REDIS_IMAGE" e2e/images/redis >&2
  kind get clusters 2>/dev/null | grep -qx "$KIND_NAME" || kind create cluster --name "$KIND_NAME" --wait 120s >&2
  kind get kubeconfig --name "$KIND_NAME" >"$STATE/kind.kubeconfig"
  kind load docker-image --name "$KIND_NAME" "${IMAGES[@]}" >&2
  # The HPA needs resource metrics; kind ships no metrics-server (its kubelets use self-signed certs).
  KUBECONFIG="$STATE/kind.kubeconfig" kubectl apply -f \
    https://github.com/kubernetes-sigs/metrics-server/releases/download/v0.8.0/components.yaml >&2
  KUBECONFIG="$STATE/kind.kubeconfig" kubectl -n kube-system get deployment metrics-server -o yaml |
    grep -q -- --kubelet-insecure-tls ||
    KUBECONFIG="$STATE/kind.kubeconfig" kubectl -n kube-system patch deployment metrics-server --type json -p \
      '[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--kubelet-insecure-tls"}]' >&2
}

up() {
  need_node
  need_node_modules
  case "$MODE" in
    local) local_up ;;
    kind)
      command -v kubectl >/dev/null 2>&1 && command -v helm >/dev/null 2>&1 ||
        die "with kind, install kubectl and helm (https://helm.sh/docs/intro/install/) and run this again"
      kind_up
      ;;
    *) die "STREAMROOM_CLUSTER must be local or kind, got '$MODE'" ;;
  esac
  export KUBECONFIG
  KUBECONFIG="$(kubeconfig_path)"
  log "installing the operator with its Helm chart ($OPERATOR_IMAGE)"
  # The chart carries the CRD (helm installs it on first install only; apply keeps it current).
  kubectl apply --server-side --force-conflicts -f crds/ >&2
  # The local cluster's NodePorts answer on 127.0.0.1, and only there is http a secure page that a
  # broadcaster's browser lets use the camera: room URLs name it (kind: the node's own address).
  local extra=() node_ip
  [[ "$MODE" != local ]] || extra=(--set nodeAddress=127.0.0.1)
  # The TURN gateway (rooms on media.network TURN), reached by browsers on this machine at a NodePort
  # of the node's address.
  node_ip="$(kubectl get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')"
  # (a development cluster: rooms in any namespace; the chart's default is the release namespace only)
  extra+=(--set rbac.clusterWide=true)
  extra+=(--set turn.enabled=true --set turn.service.type=NodePort --set turn.service.nodePort="$TURN_NODE_PORT"
    --set "turn.urls={turn:$node_ip:$TURN_NODE_PORT}")
  helm upgrade --install "$RELEASE" charts/streamroom-operator -n "$RELEASE_NS" --create-namespace \
    "${extra[@]}" \
    --set image.repository="${OPERATOR_IMAGE%:*}" --set image.tag="${OPERATOR_IMAGE##*:}" \
    --set defaultRoomImage="$ROOM_IMAGE" --set backplane.redisImage="$REDIS_IMAGE" \
    --wait --timeout 5m >&2
  echo "export KUBECONFIG=$KUBECONFIG"
  # the kubectl and helm used here (the local cluster's own builds come first on this PATH)
  printf 'export PATH=%q\n' "$PATH"
}

# tag <image> <new name>: the image under another name, in the cluster's nodes too (for rollout tests).
tag() {
  local from="$1" to="$2"
  case "$MODE" in
    local)
      /usr/bin/docker tag "$from" "$to"
      bash e2e/cluster/load-images.sh "$to" >&2
      ;;
    kind)
      docker tag "$from" "$to"
      kind load docker-image --name "$KIND_NAME" "$to" >&2
      ;;
  esac
}

down() {
  case "$MODE" in
    local) bash e2e/cluster/down.sh ;;
    kind) kind delete cluster --name "$KIND_NAME" ;;
  esac
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  tag) [[ $# -eq 3 ]] || die "usage: $0 tag <image> <new name>"; tag "$2" "$3" ;;
  *) die "usage: $0 up|down|tag <image> <new name>" ;;
esac
