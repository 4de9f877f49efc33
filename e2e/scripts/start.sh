#!/usr/bin/env bash
# `npm start`: a local Kubernetes built from source (control plane, simulated kwok nodes, metrics-server),
# the StreamRoom CRD, the operator, and examples/basic-room.yaml, then the room's status.
# `npm stop` tears it all down.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=preflight.sh
source e2e/scripts/preflight.sh

export STREAMROOM_CLUSTER_DIR="${STREAMROOM_CLUSTER_DIR:-/tmp/streamroom-cluster}"
STATE="$STREAMROOM_CLUSTER_DIR"
need_node
need_node_modules
build_cluster

if [[ -f "$STATE/pids" ]] && KUBECONFIG="$STATE/kubeconfig" kubectl get --raw /readyz >/dev/null 2>&1; then
  log "the local cluster is already running ($STATE)"
else
  bash e2e/cluster/down.sh >/dev/null 2>&1 || true
  bash e2e/cluster/up.sh >/dev/null
fi
export KUBECONFIG="$STATE/kubeconfig"

kubectl apply -f crds/ >&2
kubectl wait --for=condition=Established crd/streamrooms.streamroom.dev --timeout=60s >/dev/null
npm run --silent build -w operator >&2

if ! grep -q '^operator ' "$STATE/pids" 2>/dev/null; then
  log "starting the operator (logs: $STATE/logs/operator.log)"
  setsid node operator/dist/main.js --health-address 127.0.0.1:0 >"$STATE/logs/operator.log" 2>&1 </dev/null &
  # down.sh stops every process group listed here.
  echo "operator $! node" >>"$STATE/pids"
fi

kubectl apply -f examples/basic-room.yaml >&2
log "waiting for the room's status"
for _ in $(seq 1 60); do
  phase=$(kubectl get streamroom basic -o jsonpath='{.status.phase}' 2>/dev/null || true)
  [[ "$phase" == Ready || "$phase" == Failed || "$phase" == Degraded ]] && break
  sleep 1
done
kubectl get streamrooms
url=$(kubectl get streamroom basic -o jsonpath='{.status.url}')
message=$(kubectl get streamroom basic -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}')
echo
echo "Room:     basic (phase ${phase:-unknown})"
echo "URL:      ${url:-not known yet}"
echo "Status:   $message"
echo "Kubeconfig: export KUBECONFIG=$KUBECONFIG"
echo "Note:     the nodes of this local cluster are simulated (kwok): the room's pods are scheduled and"
echo "          reported Ready, but no container runs, so nothing answers at the URL yet."
echo "Stop it:  npm stop"
