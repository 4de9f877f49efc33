#!/usr/bin/env bash
# Smoke-test a cluster started by up.sh:
#   readyz, version, admin RBAC, Deployment -> ReplicaSet (controller-manager), CRD CEL validation.
#
#   e2e/cluster/smoke.sh [--apiserver-only]     # uses $STREAMROOM_CLUSTER_DIR/kubeconfig
# KUBECTL=... picks the kubectl (default: the cached one from build.sh, else kubectl on PATH).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
APISERVER_ONLY="${STREAMROOM_APISERVER_ONLY:-0}"
[[ "${1:-}" == --apiserver-only ]] && APISERVER_ONLY=1

export KUBECONFIG="${KUBECONFIG:-$STREAMROOM_CLUSTER_DIR/kubeconfig}"
if [[ -z "${KUBECTL:-}" ]]; then
  KUBECTL="$(tool_bin kubectl)"
  [[ -x "$KUBECTL" ]] || KUBECTL=kubectl
fi
k() { "$KUBECTL" "$@"; }
step() { echo "--- $*"; }
NS="smoke-$$"

step "readyz";          [[ "$(k get --raw /readyz)" == ok ]]
step "version";         k version
step "auth can-i";      [[ "$(k auth can-i '*' '*')" == yes ]]
step "namespace $NS";   k create namespace "$NS"
trap 'k delete namespace "$NS" --wait=false >/dev/null 2>&1 || true; k delete crd widgets.smoke.streamroom.dev --wait=false >/dev/null 2>&1 || true' EXIT

if [[ "$APISERVER_ONLY" != 1 ]]; then
  step "deployment -> replicaset"
  k -n "$NS" create deployment web --image=registry.k8s.io/pause:3.10 --replicas=1
  for _ in $(seq 150); do
    rs="$(k -n "$NS" get rs -l app=web -o jsonpath='{.items[*].metadata.name}')"
    [[ -n "$rs" ]] && break
    sleep 0.2
  done
  [[ -n "$rs" ]] || { echo "no ReplicaSet created (is kube-controller-manager running?)" >&2; exit 1; }
  echo "replicaset: $rs"
  for _ in $(seq 150); do
    pods="$(k -n "$NS" get pods -l app=web -o jsonpath='{.items[*].metadata.name}')"
    [[ -n "$pods" ]] && break
    sleep 0.2
  done
  [[ -n "$pods" ]] || { echo "no Pod created by the ReplicaSet" >&2; exit 1; }
  k -n "$NS" get deploy,rs,pods -o wide
fi

step "CRD with x-kubernetes-validations (CEL)"
k apply -f - <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.streamroom.dev
spec:
  group: smoke.streamroom.dev
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              min: {type: integer}
              max: {type: integer}
            x-kubernetes-validations:
            - rule: "self.min <= self.max"
              message: "min must not exceed max"
          status:
            type: object
            properties:
              phase: {type: string}
EOF
k wait --for=condition=Established --timeout=30s crd/widgets.smoke.streamroom.dev
good='{"apiVersion":"smoke.streamroom.dev/v1","kind":"Widget","metadata":{"name":"ok"},"spec":{"min":1,"max":2}}'
bad='{"apiVersion":"smoke.streamroom.dev/v1","kind":"Widget","metadata":{"name":"bad"},"spec":{"min":3,"max":2}}'
# The CRD's REST endpoint can take a moment after Established; retry the valid create briefly.
for i in $(seq 50); do
  if k -n "$NS" create -f - <<<"$good" 2>/dev/null; then break; fi
  [[ $i == 50 ]] && { k -n "$NS" create -f - <<<"$good"; exit 1; }
  sleep 0.2
done
if out="$(k -n "$NS" create -f - <<<"$bad" 2>&1)"; then
  echo "invalid Widget was accepted: $out" >&2
  exit 1
fi
echo "rejected as expected: $out"
grep -q "min must not exceed max" <<<"$out"

step "status subresource"
k -n "$NS" patch widget ok --subresource=status --type=merge -p '{"status":{"phase":"Ready"}}'
[[ "$(k -n "$NS" get widget ok -o jsonpath='{.status.phase}')" == Ready ]]

echo "--- smoke OK"
