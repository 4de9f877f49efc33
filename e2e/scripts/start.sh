#!/usr/bin/env bash
# `npm start`: a cluster that runs real containers (e2e/scripts/cluster.sh: this repository's Kubernetes
# with a real node, or kind on a machine with Docker and internet), the images built from this
# checkout, the operator installed by its Helm chart, and examples/basic-room.yaml; then the room's
# URL, for viewers and for the broadcaster. `npm stop` tears it all down.
# shellcheck source=errors.sh
source "$(dirname "${BASH_SOURCE[0]}")/errors.sh" # set -Eeuo pipefail; says what failed
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=preflight.sh
source e2e/scripts/preflight.sh

started=$(date +%s)
# (not `eval "$(...)"`: that would hide a failure of cluster.sh behind eval's own status)
exports="$(bash e2e/scripts/cluster.sh up)" || die "e2e/scripts/cluster.sh up failed (see above)"
eval "$exports"
[[ -n "${KUBECONFIG:-}" ]] || die "e2e/scripts/cluster.sh printed no KUBECONFIG"

kubectl apply -f examples/basic-room.yaml >&2
log "waiting for the room to be Ready"
phase=""
for _ in $(seq 1 180); do
  phase=$(kubectl get streamroom basic -o jsonpath='{.status.phase}' 2>/dev/null || true)
  [[ "$phase" == Ready || "$phase" == Failed ]] && break
  sleep 1
done
kubectl get streamrooms
url=$(kubectl get streamroom basic -o jsonpath='{.status.url}')
message=$(kubectl get streamroom basic -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}')
key=$(kubectl get secret basic-keys -o jsonpath='{.data.broadcasterKey}' | base64 -d)
echo
echo "Room:        basic (phase ${phase:-unknown}; ready in $(($(date +%s) - started)) s)"
echo "Viewers:     ${url:-not known yet}"
[[ -z "$url" ]] || echo "Broadcaster: ${url}#key=${key}"
echo "Status:      $message"
echo "Kubeconfig:  export KUBECONFIG=$KUBECONFIG"
echo "Stop it:     npm stop"
