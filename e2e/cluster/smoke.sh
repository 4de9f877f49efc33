#!/usr/bin/env bash
# Smoke-test a cluster started by up.sh:
#   readyz, version, admin RBAC, Deployment -> ReplicaSet (controller-manager), CRD CEL validation;
#   full mode with kwok nodes also: nodes Ready, a Deployment with CPU requests Available, emulated
#   pod CPU in `kubectl top pods`, an autoscaling/v2 HPA scaling up on high and down on low usage.
#
#   e2e/cluster/smoke.sh [--apiserver-only]     # uses $STREAMROOM_CLUSTER_DIR/kubeconfig
# KUBECTL=... picks the kubectl (default: the cached one from build.sh, else kubectl on PATH).
# shellcheck source-path=SCRIPTDIR source=../scripts/errors.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/errors.sh" # set -Eeuo pipefail; says what failed

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
now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs_since() { local ms=$(($(now_ms) - $1)); printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100)); }
# until_ok <seconds> <what> <command...>: retry every second until the command succeeds (bounded).
until_ok() {
  local limit="$1" what="$2" deadline
  shift 2
  deadline=$(($(date +%s) + limit))
  until "$@"; do
    if (($(date +%s) >= deadline)); then echo "timed out after ${limit}s: $what" >&2; return 1; fi
    sleep 1
  done
}
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

KWOK_NODES=0
[[ "$APISERVER_ONLY" == 1 ]] || KWOK_NODES="$(k get nodes -l type=kwok -o name | wc -l)"
if [[ "$KWOK_NODES" -gt 0 ]]; then
  step "kwok nodes Ready ($KWOK_NODES)"
  nodes_ready() {
    [[ "$(k get nodes -l type=kwok -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
      grep -c '^True$')" == "$KWOK_NODES" ]]
  }
  until_ok 30 "all kwok nodes Ready" nodes_ready
  k get nodes -o wide

  step "deployment with CPU requests -> 3/3 Available on kwok nodes"
  t=$(now_ms)
  k -n "$NS" apply -f - <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: load
spec:
  replicas: 3
  selector: {matchLabels: {app: load}}
  template:
    metadata:
      labels: {app: load}
    spec:
      containers:
      - name: main
        image: registry.k8s.io/pause:3.10
        resources: {requests: {cpu: 100m, memory: 32Mi}}
EOF
  k -n "$NS" wait --for=condition=Available --timeout=30s deploy/load
  [[ "$(k -n "$NS" get deploy load -o jsonpath='{.status.availableReplicas}')" == 3 ]]
  echo "3/3 Available in $(secs_since "$t")"
  k -n "$NS" get pods -l app=load -o wide
  [[ -z "$(k -n "$NS" get pods -l app=load -o jsonpath='{range .items[?(@.status.podIP=="")]}{.metadata.name}{end}')" ]]

  if k get apiservice v1beta1.metrics.k8s.io >/dev/null 2>&1; then
    # Emulated usage: kwok reports the pod annotation kwok.x-k8s.io/usage-cpu per container.
    step "kubectl top pods shows the emulated usage (900m)"
    t=$(now_ms)
    k -n "$NS" annotate pods -l app=load kwok.x-k8s.io/usage-cpu=900m --overwrite >/dev/null
    top_high() { # every load pod reports 850m..950m
      local out
      out="$(k -n "$NS" top pods -l app=load --no-headers 2>/dev/null)" || return 1
      [[ "$(wc -l <<<"$out")" == 3 ]] &&
        awk '{ v = $2; sub(/m$/, "", v); if (v < 850 || v > 950) bad = 1 } END { exit bad }' <<<"$out"
    }
    until_ok 90 "kubectl top pods showing ~900m" top_high
    echo "usage visible in $(secs_since "$t")"
    k -n "$NS" top pods -l app=load

    step "HPA (CPU 50%, 1..5) scales up on high usage"
    t=$(now_ms)
    k -n "$NS" apply -f - <<'EOF'
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: load
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: load}
  minReplicas: 1
  maxReplicas: 5
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 50}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 0
EOF
    replicas_are() { # <n>: spec.replicas and available replicas both n
      [[ "$(k -n "$NS" get deploy load -o jsonpath='{.spec.replicas}/{.status.availableReplicas}')" == "$1/$1" ]]
    }
    until_ok 120 "HPA scaling load up to 5" replicas_are 5
    echo "scaled up 3 -> 5 (Available) in $(secs_since "$t")"
    k -n "$NS" get hpa load

    step "HPA scales down on low usage"
    t=$(now_ms)
    k -n "$NS" annotate pods -l app=load kwok.x-k8s.io/usage-cpu=10m --overwrite >/dev/null
    until_ok 120 "HPA scaling load down to 1" replicas_are 1
    echo "scaled down 5 -> 1 in $(secs_since "$t")"
    k -n "$NS" get hpa load
    k -n "$NS" delete hpa load --wait=false
  else
    echo "--- no metrics.k8s.io APIService: skipping kubectl top / HPA checks"
  fi
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
