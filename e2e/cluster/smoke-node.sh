#!/usr/bin/env bash
# Smoke-test the real node end to end (root; about 1-2 minutes):
#   up.sh --real-node -> load images -> Deployment + NodePort Service -> host to NodePort
#   (127.0.0.1 and node IP), ClusterIP and pod IP; pod to pod, to a Service by DNS name and to the
#   API server (service account); DNS (also getent in debian:bookworm-slim when docker has it);
#   kubectl logs / exec / port-forward; a NetworkPolicy enforced (kube-router); real CPU of a busy pod
#   in kubectl top and an HPA scaling on it -> down.sh -> the machine is as before (links, mounts,
#   iptables chains, ipsets, nftables tables, cgroups, sysctls, processes).
#
#   e2e/cluster/smoke-node.sh           # uses STREAMROOM_CLUSTER_DIR (default /tmp/streamroom-cluster)
#   e2e/cluster/smoke-node.sh --keep    # leave the cluster running at the end (no cleanliness check)
# shellcheck source-path=SCRIPTDIR source=../scripts/errors.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/errors.sh" # set -Eeuo pipefail; says what failed

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
KEEP=0
[[ "${1:-}" == --keep ]] && KEEP=1
export STREAMROOM_CLUSTER_DIR
STATE="$STREAMROOM_CLUSTER_DIR"
# shellcheck source=node/node.sh
source "$HERE/node/node.sh"
node_settings

KUBECTL="${KUBECTL:-$(tool_bin kubectl)}"
k() { "$KUBECTL" --kubeconfig="$STATE/kubeconfig" "$@"; }
step() { echo "--- $*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs_since() { local ms=$(($(now_ms) - $1)); printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100)); }
until_ok() { # <seconds> <what> <command...>
  local limit="$1" what="$2" deadline
  shift 2
  deadline=$(($(date +%s) + limit))
  until "$@"; do
    (($(date +%s) < deadline)) || { echo "timed out after ${limit}s: $what" >&2; return 1; }
    sleep 1
  done
}
TIMINGS=()
timing() { TIMINGS+=("$(printf '%-44s %s' "$1" "$2")"); echo "    ($1: $2)"; }

# ---------------------------------------------------------------- the machine before
links() { ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -vE '^veth' | sort; }
sysctls() { local s; for s in "${NODE_SYSCTLS[@]}"; do echo "$s=$(cat "$(_sysctl_path "$s")" 2>/dev/null)"; done; }
our_mounts() { grep -E "streamroom|$STATE" /proc/self/mountinfo || true; }
chains() { { iptables-save; ip6tables-save; } 2>/dev/null | grep -E '^:(KUBE-|CNI-)' || true; }
# kube-router's ipsets and the node's own nftables table (node_netpol_net_up)
netpol_state() {
  { ipset -n list 2>/dev/null | grep -E '^(inet6:)?(KUBE-(SRC|DST)-|TMP-)'
    nft list tables 2>/dev/null | grep -F " $NODE_NFT_TABLE"; } || true
}
LINKS_BEFORE="$(links)"
SYSCTLS_BEFORE="$(sysctls)"

UP_DONE=0 DOWN_DONE=0
on_exit() {
  local rc=$?
  # only a cluster this script started (up.sh cleans up after itself when it fails)
  if [[ "$UP_DONE" == 1 && "$DOWN_DONE" == 0 && "$KEEP" == 0 ]]; then
    if [[ "$rc" != 0 && "${STREAMROOM_KEEP_ON_FAILURE:-0}" == 1 ]]; then
      echo "smoke-node.sh: failed; cluster left running (STREAMROOM_KEEP_ON_FAILURE=1), logs in $STATE/logs" >&2
    else
      [[ "$rc" == 0 ]] || { echo "smoke-node.sh: failed; kubelet log tail:" >&2; tail -n 20 "$STATE/logs/kubelet.log" >&2 || true; }
      "$HERE/down.sh" >/dev/null 2>&1 || true
    fi
  fi
  exit "$rc"
}
trap on_exit EXIT

step "up.sh --real-node"
t=$(now_ms)
"$HERE/up.sh" --real-node >/dev/null
UP_DONE=1
timing "up.sh --real-node" "$(secs_since "$t")"
k get nodes -o wide

step "load images (pause, nettest$(/usr/bin/docker image inspect debian:bookworm-slim >/dev/null 2>&1 && echo ', debian:bookworm-slim'))"
t=$(now_ms)
DEBIAN=0
imgs=(pause nettest)
if /usr/bin/docker image inspect debian:bookworm-slim >/dev/null 2>&1; then imgs+=(debian:bookworm-slim); DEBIAN=1; fi
"$HERE/load-images.sh" "${imgs[@]}"
timing "load-images.sh ${imgs[*]}" "$(secs_since "$t")"

NS="smoke-node-$$"
k create namespace "$NS" >/dev/null
kn() { k -n "$NS" "$@"; }
# pods are refused until the controller-manager has created the namespace's default ServiceAccount
until_ok 30 "ServiceAccount $NS/default" kn get serviceaccount default -o name >/dev/null 2>&1

step "one pod: created -> Running and Ready"
t=$(now_ms)
kn run one --image=streamroom/nettest:0.1.0 --restart=Never -- sleep >/dev/null
kn wait --for=condition=Ready --timeout=60s pod/one
timing "1 pod created -> Ready" "$(secs_since "$t")"
kn delete pod one --wait=false >/dev/null

step "Deployment web (2 replicas of streamroom/nettest:0.1.0) + NodePort Service"
t=$(now_ms)
kn apply -f - <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: streamroom/nettest:0.1.0
        args: [serve, ":8080"]
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
EOF
kn wait --for=condition=Available --timeout=60s deploy/web
timing "2 pods created -> Ready (Deployment Available)" "$(secs_since "$t")"
kn get pods -o wide
[[ -z "$(kn get pods -l app=web -o jsonpath='{range .items[?(@.spec.nodeName!="'"$NODE_NAME"'")]}{.metadata.name}{end}')" ]] ||
  fail "a pod is not on $NODE_NAME"
NP="$(kn get svc web -o jsonpath='{.spec.ports[0].nodePort}')"
CIP="$(kn get svc web -o jsonpath='{.spec.clusterIP}')"
read -r P1 P2 <<<"$(kn get pods -l app=web -o jsonpath='{.items[*].metadata.name}')"
P2IP="$(kn get pod "$P2" -o jsonpath='{.status.podIP}')"
[[ "$P2IP" == 10.244.0.* ]] || fail "pod IP $P2IP is not in the node's podCIDR"
# kube-proxy may need a moment after the endpoints appear
until_ok 20 "NodePort rules" curl -fs -m 2 -o /dev/null "http://127.0.0.1:$NP/"

step "host -> NodePort 127.0.0.1:$NP and $NODE_IP:$NP, ClusterIP $CIP:80, pod IP $P2IP:8080"
for url in "http://127.0.0.1:$NP/" "http://$NODE_IP:$NP/" "http://$CIP/" "http://$P2IP:8080/"; do
  out="$(curl -fsS -m 5 "$url")" || fail "GET $url"
  echo "$url -> $out"
  [[ "$out" == "hello from web-"* ]] || fail "unexpected answer from $url"
done
step "NodePort not served on the machine's other addresses"
for ip in $(ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1); do
  [[ "$ip" == "$NODE_IP" || "$ip" == 10.244.* ]] && continue
  if curl -fsS -m 2 -o /dev/null "http://$ip:$NP/" 2>/dev/null; then fail "NodePort $NP answers on $ip"; fi
  echo "$ip:$NP closed"
done

step "pod -> pod IP, Service by DNS name, API server via the kubernetes Service"
kn exec "$P1" -- /nettest get "http://$P2IP:8080/"
kn exec "$P1" -- /nettest get http://web/
kn exec "$P1" -- /nettest get "http://web.$NS.svc.cluster.local/"
out="$(kn exec "$P1" -- /nettest api /api)"
echo "$out"
[[ "$out" == *'"kind":"APIVersions"'* ]] || fail "pod -> https://kubernetes.default.svc/api"

step "DNS from a pod"
out="$(kn exec "$P1" -- /nettest lookup kubernetes.default.svc.cluster.local)"
echo "kubernetes.default.svc.cluster.local -> $out"
[[ "$out" == 10.96.0.1 ]] || fail "kubernetes.default.svc.cluster.local resolved to '$out'"
if [[ "$DEBIAN" == 1 ]]; then
  kn run deb --image=debian:bookworm-slim --restart=Never --command -- sleep 3600 >/dev/null
  kn wait --for=condition=Ready --timeout=60s pod/deb
  out="$(kn exec deb -- getent hosts kubernetes.default.svc.cluster.local)"
  echo "getent hosts (debian:bookworm-slim): $out"
  [[ "$out" == "10.96.0.1 "* ]] || fail "getent hosts kubernetes.default.svc.cluster.local"
  kn exec deb -- getent hosts web >/dev/null || fail "getent hosts web"
fi

step "kubectl logs / exec / port-forward"
kn logs "$P1" | grep -q "serving on :8080" || fail "kubectl logs"
kn exec "$P1" -- /nettest get http://127.0.0.1:8080/healthz >/dev/null || fail "kubectl exec"
PF_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
kn port-forward "pod/$P1" "$PF_PORT:8080" >/dev/null 2>&1 &
PF_PID=$!
until_ok 15 "port-forward" curl -fs -m 2 -o /dev/null "http://127.0.0.1:$PF_PORT/" || { kill "$PF_PID"; fail "port-forward"; }
echo "port-forward 127.0.0.1:$PF_PORT -> $P1:8080: $(curl -fsS -m 2 "http://127.0.0.1:$PF_PORT/")"
kill "$PF_PID" 2>/dev/null || true
wait "$PF_PID" 2>/dev/null || true

if [[ "$NODE_NETPOL" != 0 ]]; then
  step "NetworkPolicy (kube-router): deny all ingress to web; pod -> pod refused, node -> pod still allowed"
  t=$(now_ms)
  kn apply -f - <<'EOF' >/dev/null
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-deny-ingress}
spec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Ingress]}
EOF
  refused() { ! kn exec "$P1" -- /nettest get "http://$P2IP:8080/" >/dev/null 2>&1; }
  until_ok 20 "$P1 -> $P2IP:8080 refused by the policy" refused
  timing "NetworkPolicy applied -> enforced" "$(secs_since "$t")"
  # the kubelet's readiness probes come from the node too: traffic from the node itself is allowed
  curl -fsS -m 5 -o /dev/null "http://$P2IP:8080/" || fail "node -> pod IP blocked by the NetworkPolicy"
  kn delete networkpolicy web-deny-ingress >/dev/null
  until_ok 20 "$P1 -> $P2IP:8080 allowed again" kn exec "$P1" -- /nettest get "http://$P2IP:8080/" >/dev/null
  echo "$P1 -> $P2IP:8080 refused while the policy existed; allowed again after it was deleted"
fi

step "real CPU: a busy pod (limit 300m) in kubectl top, and an HPA scaling on it"
t=$(now_ms)
kn apply -f - <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: burn}
spec:
  replicas: 1
  selector: {matchLabels: {app: burn}}
  template:
    metadata: {labels: {app: burn}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: burn
        image: streamroom/nettest:0.1.0
        args: [burn]
        resources: {requests: {cpu: 100m}, limits: {cpu: 300m}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: burn}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: burn}
  minReplicas: 1
  maxReplicas: 2
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
EOF
top_busy() { # the burn pod uses 200m..350m (its CFS limit is 300m)
  local out
  out="$(kn top pods -l app=burn --no-headers 2>/dev/null | head -n1)" || return 1
  [[ -n "$out" ]] && awk '{ v = $2; sub(/m$/, "", v); exit !(v >= 200 && v <= 350) }' <<<"$out"
}
until_ok 120 "kubectl top showing the busy pod's CPU" top_busy
timing "busy pod created -> CPU in kubectl top" "$(secs_since "$t")"
kn top pods
scaled() { [[ "$(kn get deploy burn -o jsonpath='{.spec.replicas}')" == 2 ]]; }
until_ok 120 "HPA scaling burn to 2" scaled
timing "busy pod created -> HPA scaled 1 -> 2" "$(secs_since "$t")"
kn get hpa burn

if [[ "$KEEP" == 1 ]]; then
  echo "--- smoke-node OK (cluster kept: namespace $NS; stop with e2e/cluster/down.sh)"
  printf '%s\n' "${TIMINGS[@]}"
  exit 0
fi

step "down.sh, then the machine is as before"
t=$(now_ms)
"$HERE/down.sh" 2>&1 | grep -vE 'stopped [a-z-]+ \(pgid|\.\.\. in' || true
DOWN_DONE=1
timing "down.sh" "$(secs_since "$t")"
[[ "$(links)" == "$LINKS_BEFORE" ]] || fail "network links differ: $(diff <(echo "$LINKS_BEFORE") <(links) | tr '\n' ' ')"
ip -o link show master "$NODE_BRIDGE" 2>/dev/null | grep -q . && fail "veths left on $NODE_BRIDGE"
[[ -z "$(our_mounts)" ]] || fail "mounts left: $(our_mounts)"
[[ -z "$(chains)" ]] || fail "iptables chains left: $(chains | tr '\n' ' ')"
[[ -z "$(netpol_state)" ]] || fail "ipsets / nftables table left: $(netpol_state | tr '\n' ' ')"
[[ "$(sysctls)" == "$SYSCTLS_BEFORE" ]] || fail "sysctls differ: $(diff <(echo "$SYSCTLS_BEFORE") <(sysctls) | tr '\n' ' ')"
compgen -G "/sys/fs/cgroup/*/kubepods" >/dev/null && fail "kubepods cgroups left"
pgrep -f "containerd-shim-runc-v2 .*-address $CTRD_SOCK" >/dev/null && fail "containerd shims left"
pgrep -f "$STATE/" >/dev/null && fail "processes left: $(pgrep -af "$STATE/")"
[[ ! -e "$CTRD_STATE" && ! -e "$NODE_MARKER" && ! -e "$STATE" ]] || fail "state left: $CTRD_STATE $NODE_MARKER $STATE"
echo "clean: links, mounts, KUBE-/CNI- chains, ipsets, nftables, sysctls, cgroups, processes, state dirs"
echo "--- smoke-node OK"
printf '%s\n' "${TIMINGS[@]}"
