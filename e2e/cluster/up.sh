#!/usr/bin/env bash
# Start a local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler) on 127.0.0.1, from binaries cached by build.sh; in full mode also kwok (simulated
# nodes that run pods) and metrics-server (pod CPU/memory from kwok, for kubectl top and the HPA).
#
# With --real-node also a real node beside them: containerd, kubelet, kube-proxy, CoreDNS and
# kube-router's NetworkPolicy controller as host processes, so pods run real containers, isolated
# by NetworkPolicies (root only; see node/node.sh and README.md).
#
#   e2e/cluster/up.sh [--apiserver-only | --real-node] [--owner-pid PID]
#   eval "$(e2e/cluster/up.sh)"        # progress goes to stderr, the export line to stdout
#
# Environment:
#   STREAMROOM_CLUSTER_DIR      state dir (certs, data, logs, pids, kubeconfig); default /tmp/streamroom-cluster
#   STREAMROOM_CACHE            binary cache (see build.sh); default ~/.cache/streamroom
#   STREAMROOM_APISERVER_ONLY=1 same as --apiserver-only (etcd + kube-apiserver only)
#   STREAMROOM_CLUSTER_OWNER_PID / --owner-pid: tear the cluster down when this process exits
#   STREAMROOM_ETCD_PORT, STREAMROOM_ETCD_PEER_PORT, STREAMROOM_APISERVER_PORT,
#   STREAMROOM_KCM_PORT, STREAMROOM_SCHEDULER_PORT, STREAMROOM_KWOK_PORT,
#   STREAMROOM_METRICS_SERVER_PORT: fixed ports (default: free ports)
#   STREAMROOM_KWOK_NODES       number of simulated nodes kwok-node-1..N (default 2; 0 = no kwok)
#   STREAMROOM_KWOK_NODE_CPU, STREAMROOM_KWOK_NODE_MEMORY, STREAMROOM_KWOK_NODE_PODS
#                               capacity of each simulated node (default 32, 128Gi, 110)
#   STREAMROOM_METRICS_SERVER=0 do not start metrics-server
#   STREAMROOM_HPA_SYNC_PERIOD  kube-controller-manager --horizontal-pod-autoscaler-sync-period (5s)
#   STREAMROOM_NODE_MONITOR_GRACE_PERIOD  kube-controller-manager --node-monitor-grace-period (its
#                               default, 50s): how long a silent node stays Ready
#   STREAMROOM_CONTROL_PLANE_QPS, STREAMROOM_CONTROL_PLANE_BURST: client rate limit of the
#                               controller-manager and the scheduler (100, 100; "default": theirs)
#   STREAMROOM_ADVERTISE_ADDRESS apiserver --advertise-address (default 127.0.0.1, see below)
#   STREAMROOM_AGGREGATOR_ROUTING apiserver --enable-aggregator-routing (default false: an APIService
#                               backed by an ExternalName Service "localhost" reaches a host process)
#   STREAMROOM_UP_TIMEOUT       seconds to wait for readiness (default 60)
#   STREAMROOM_BUILD=0          do not call build.sh for missing binaries (fail instead)
#   STREAMROOM_KEEP_ON_FAILURE=1 leave processes and state for debugging when up.sh fails
# Real node (--real-node or STREAMROOM_REAL_NODE=1; one per machine):
#   STREAMROOM_NODE_NAME (streamroom-node), STREAMROOM_NODE_IP (10.250.0.1, on interface
#   STREAMROOM_NODE_IFACE=streamroom0), STREAMROOM_NODE_POD_CIDR (10.244.0.0/24),
#   STREAMROOM_NODE_LABELS (streamroom.dev/node=real), STREAMROOM_KUBELET_PORT (10250),
#   STREAMROOM_CONTAINERD_ROOT (/var/lib/streamroom-containerd: image store, kept by down.sh).
#   STREAMROOM_KWOK_NODES defaults to 0 then; kwok nodes asked for get a NoSchedule taint.
#   STREAMROOM_NETWORK_POLICY=0 does not run kube-router: NetworkPolicies are then not enforced.
# shellcheck source-path=SCRIPTDIR source=../scripts/errors.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/errors.sh" # set -Eeuo pipefail; says what failed

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

APISERVER_ONLY="${STREAMROOM_APISERVER_ONLY:-0}"
REAL_NODE="${STREAMROOM_REAL_NODE:-0}"
OWNER_PID="${STREAMROOM_CLUSTER_OWNER_PID:-}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --apiserver-only) APISERVER_ONLY=1 ;;
    --real-node) REAL_NODE=1 ;;
    --owner-pid) OWNER_PID="$2"; shift ;;
    -h | --help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "up.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

STATE="$STREAMROOM_CLUSTER_DIR"
TIMEOUT="${STREAMROOM_UP_TIMEOUT:-60}"
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1
# The address published in the default/kubernetes Endpoints. Endpoints may not be loopback, so with
# the default 127.0.0.1 the endpoint reconciler is turned off; set a host IP (e.g. for a real kubelet
# whose pods reach the API through the service) to get the usual lease reconciler.
ADVERTISE="${STREAMROOM_ADVERTISE_ADDRESS:-127.0.0.1}"
if [[ "$ADVERTISE" == 127.* ]]; then RECONCILER=none; else RECONCILER=lease; fi
KWOK_NODES="${STREAMROOM_KWOK_NODES:-2}"
METRICS_SERVER="${STREAMROOM_METRICS_SERVER:-1}"
if [[ "$APISERVER_ONLY" == 1 ]]; then KWOK_NODES=0 METRICS_SERVER=0 REAL_NODE=0; fi
# Address of the API server for the cluster's own components (kubeconfigs of kcm, scheduler, ...).
API_HOST=127.0.0.1
KWOK_TAINTS="[]"
if [[ "$REAL_NODE" == 1 ]]; then
  # shellcheck source=node/node.sh
  source "$HERE/node/node.sh"
  node_settings
  # pods run on the real node; simulated nodes only on request, and then not for normal pods
  KWOK_NODES="${STREAMROOM_KWOK_NODES:-0}"
  KWOK_TAINTS="[{key: kwok.x-k8s.io/node, value: fake, effect: NoSchedule}]"
  if [[ -n "${STREAMROOM_ADVERTISE_ADDRESS:-}" && "$STREAMROOM_ADVERTISE_ADDRESS" != "$NODE_IP" ]]; then
    echo "up.sh: --real-node: STREAMROOM_ADVERTISE_ADDRESS must be the node IP ($NODE_IP) or unset" >&2; exit 2
  fi
  # The API server listens on the node IP (pods reach it there through the kubernetes Service);
  # 127.0.0.1:<port> stays valid for the admin kubeconfig through a socat forwarder.
  ADVERTISE="$NODE_IP" RECONCILER=lease API_HOST="$NODE_IP"
fi
# (node i gets podCIDR 10.244.<i>.0/24)
if ! [[ "$KWOK_NODES" =~ ^[0-9]+$ ]] || ((KWOK_NODES > 250)); then
  echo "up.sh: STREAMROOM_KWOK_NODES must be a number 0..250" >&2; exit 2
fi
# Simulated nodes' InternalIP: kwok serves their kubelet endpoints (metrics) on this address.
KWOK_NODE_IP=127.0.0.1
log() { echo "up.sh: $*" >&2; }
T0=$(date +%s%N)
elapsed() { local ms=$((($(date +%s%N) - T0) / 1000000)); printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100)); }

# ---------------------------------------------------------------- state dir
if [[ -f "$STATE/pids" ]]; then
  while read -r _name pid _bin; do
    if kill -0 "$pid" 2>/dev/null; then
      echo "up.sh: a cluster is already running from $STATE (pid $pid); run e2e/cluster/down.sh first" >&2
      exit 1
    fi
  done <"$STATE/pids"
fi
if [[ "$REAL_NODE" == 1 ]]; then
  node_preflight || exit 1
  # one real node per machine (fixed interface, bridge, ports 10250 and <node IP>:53); the lock
  # only serialises concurrent up.sh runs (the components do not inherit it)
  exec 9>"$NODE_MARKER.lock"
  flock -n 9 || { echo "up.sh: another up.sh --real-node is starting right now" >&2; exit 1; }
  if other="$(node_running_elsewhere)"; then
    echo "up.sh: a real-node cluster is already running from $other (only one per machine);" \
      "stop it with: STREAMROOM_CLUSTER_DIR=$other $HERE/down.sh" >&2
    exit 1
  fi
  if [[ -n "$(ss -Htln "sport = :$NODE_KUBELET_PORT" 2>/dev/null)" ]]; then
    echo "up.sh: --real-node: port $NODE_KUBELET_PORT is in use (another kubelet?):" \
      "$(ss -Htlnp "sport = :$NODE_KUBELET_PORT")" >&2
    exit 1
  fi
  if [[ -f "$NODE_MARKER" || -d "$CTRD_STATE" ]] || ip link show "$NODE_IFACE" >/dev/null 2>&1; then
    # a real node that was not shut down (crash, kill -9): clear what it left, with its settings
    echo "up.sh: removing leftovers of a real node that was not stopped" >&2
    node_cleanup_stale
  fi
fi
remove_state_dir "$STATE"
mkdir -p "$STATE"/{pki,logs,etcd-data}
touch "$STATE/.streamroom-cluster"
chmod 700 "$STATE/etcd-data"
: >"$STATE/pids"
if [[ "$REAL_NODE" == 1 ]]; then
  mkdir -p "$NODE_DIR"
  node_save_env # from here on down.sh (also the one on failure) cleans the node up
  echo "$STATE" >"$NODE_MARKER"
  node_save_sysctls
  node_net_up
fi

UP_OK=0
on_exit() {
  local rc=$?
  [[ "$UP_OK" == 1 ]] && return 0
  [[ "$rc" != 0 ]] || rc=1
  log "FAILED (exit $rc) after $(elapsed); last log lines:"
  for f in "$STATE"/logs/*.log; do
    [[ -f "$f" ]] || continue
    echo "----- $f" >&2
    tail -n 15 "$f" >&2
  done
  if [[ "${STREAMROOM_KEEP_ON_FAILURE:-0}" == 1 ]]; then
    log "keeping processes and $STATE (STREAMROOM_KEEP_ON_FAILURE=1)"
  else
    "$HERE/down.sh" >&2 || true
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- binaries
need=(etcd kube-apiserver)
[[ "$APISERVER_ONLY" == 1 ]] || need+=(kube-controller-manager kube-scheduler)
[[ "$KWOK_NODES" == 0 && "$METRICS_SERVER" != 1 ]] || need+=(kubectl)
[[ "$KWOK_NODES" == 0 ]] || need+=(kwok)
[[ "$METRICS_SERVER" != 1 ]] || need+=(metrics-server)
[[ "$REAL_NODE" != 1 ]] || need+=(kubectl kubelet kube-proxy coredns crictl)
[[ "$REAL_NODE" != 1 || "$NODE_NETPOL" == 0 ]] || need+=(kube-router)
declare -A BIN
missing=()
for t in "${need[@]}"; do
  BIN[$t]="$(tool_bin "$t")"
  [[ -x "${BIN[$t]}" ]] || missing+=("$t")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ "${STREAMROOM_BUILD:-1}" == 0 ]]; then
    log "missing binaries: ${missing[*]} (run e2e/cluster/build.sh)"; false
  fi
  log "building missing binaries: ${missing[*]}"
  "$HERE/build.sh" "${missing[@]}" >&2
fi

# ---------------------------------------------------------------- ports
# free_ports <n>: n distinct free loopback ports (sockets stay bound until all are picked).
free_ports() {
  local py
  py="$(command -v /usr/bin/python3 python3 2>/dev/null | head -n1)"
  if [[ -n "$py" ]]; then
    "$py" -c 'import socket,sys
ss=[socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
  else
    node -e 'const net=require("net");const n=+process.argv[1];const ss=[];const next=()=>{if(ss.length===n){console.log(ss.map(s=>s.address().port).join(" "));ss.forEach(s=>s.close());return}const s=net.createServer();s.listen(0,"127.0.0.1",()=>{ss.push(s);next()})};next()' "$1"
  fi
}
read -r p1 p2 p3 p4 p5 p6 p7 <<<"$(free_ports 7)"
ETCD_PORT="${STREAMROOM_ETCD_PORT:-$p1}"
ETCD_PEER_PORT="${STREAMROOM_ETCD_PEER_PORT:-$p2}"
API_PORT="${STREAMROOM_APISERVER_PORT:-$p3}"
KCM_PORT="${STREAMROOM_KCM_PORT:-$p4}"
SCHED_PORT="${STREAMROOM_SCHEDULER_PORT:-$p5}"
KWOK_PORT="${STREAMROOM_KWOK_PORT:-$p6}"
MS_PORT="${STREAMROOM_METRICS_SERVER_PORT:-$p7}"
if [[ "$REAL_NODE" == 1 ]]; then
  read -r KUBELET_HEALTHZ_PORT PROXY_HEALTHZ_PORT PROXY_METRICS_PORT COREDNS_HEALTH_PORT COREDNS_READY_PORT \
    <<<"$(free_ports 5)"
fi

# ---------------------------------------------------------------- certificates
PKI="$STATE/pki"
# (openssl's chatter goes to logs/pki.log, whose tail on_exit prints if a step fails)
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$1.key" 2>>"$STATE/logs/pki.log"; }
ca() { # <name> <CN>
  key "$1"
  openssl req -x509 -new -key "$PKI/$1.key" -subj "/CN=$2" -days 3650 -out "$PKI/$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
}
cert() { # <name> <ca> <subject> <serverAuth|clientAuth|serverAuth,clientAuth> [subjectAltName]
  local name="$1" ca="$2" subj="$3" eku="$4" san="${5:-}" ext
  key "$name"
  ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$eku"
  [[ -z "$san" ]] || ext+=$'\n'"subjectAltName=$san"
  openssl req -new -key "$PKI/$name.key" -subj "$subj" |
    openssl x509 -req -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial -days 3650 \
      -extfile <(echo "$ext") -out "$PKI/$name.crt" 2>>"$STATE/logs/pki.log"
}
ca ca streamroom-e2e-ca
ca front-proxy-ca streamroom-e2e-front-proxy-ca
cert apiserver ca "/CN=kube-apiserver" serverAuth \
  "IP:127.0.0.1,$([[ "$ADVERTISE" == 127.0.0.1 ]] || echo "IP:$ADVERTISE,")IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert admin ca "/O=system:masters/CN=streamroom-admin" clientAuth
cert apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
cert kube-controller-manager ca "/CN=system:kube-controller-manager" clientAuth
cert kube-scheduler ca "/CN=system:kube-scheduler" clientAuth
cert front-proxy-client front-proxy-ca "/CN=front-proxy-client" clientAuth
if [[ "$REAL_NODE" == 1 ]]; then
  # kubelet: client cert (Node authorizer identity) and serving cert (the API server and
  # metrics-server reach it at its InternalIP and verify it against our CA); kube-proxy: user bound
  # to the built-in system:node-proxier role; CoreDNS: node/coredns-rbac.yaml; kube-router:
  # node/kube-router-rbac.yaml
  cert kubelet ca "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  cert kubelet-serving ca "/CN=$NODE_NAME" serverAuth "IP:$NODE_IP,DNS:$NODE_NAME"
  cert kube-proxy ca "/CN=system:kube-proxy" clientAuth
  cert coredns ca "/CN=streamroom:coredns" clientAuth
  [[ "$NODE_NETPOL" == 0 ]] || cert kube-router ca "/CN=streamroom:kube-router" clientAuth
fi
if [[ "$KWOK_NODES" != 0 ]]; then
  # kwok's server is the "kubelet" of every simulated node (metrics-server scrapes it over TLS,
  # verified with our CA); its API client is cluster-admin (like kwokctl's setup)
  cert kwok-serving ca "/CN=kwok" serverAuth "IP:$KWOK_NODE_IP,DNS:localhost"
  cert kwok ca "/O=system:masters/CN=kwok-controller" clientAuth
fi
if [[ "$METRICS_SERVER" == 1 ]]; then
  # the aggregator checks the serving cert against <service>.<namespace>.svc
  cert metrics-server-serving ca "/CN=metrics-server" serverAuth \
    "DNS:metrics-server.kube-system.svc,DNS:localhost,IP:127.0.0.1"
  cert metrics-server ca "/O=system:masters/CN=metrics-server" clientAuth
fi
key sa
openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>>"$STATE/logs/pki.log"
chmod 600 "$PKI"/*.key

kubeconfig() { # <file> <user cert name> [API host]
  local b64='base64 -w0'
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: streamroom-e2e
  cluster:
    server: https://${3:-$API_HOST}:$API_PORT
    certificate-authority-data: $($b64 <"$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $($b64 <"$PKI/$2.crt")
    client-key-data: $($b64 <"$PKI/$2.key")
contexts:
- name: streamroom-e2e
  context:
    cluster: streamroom-e2e
    user: $2
current-context: streamroom-e2e
EOF
  chmod 600 "$1"
}
kubeconfig "$STATE/kubeconfig" admin 127.0.0.1
kubeconfig "$STATE/kube-controller-manager.kubeconfig" kube-controller-manager
kubeconfig "$STATE/kube-scheduler.kubeconfig" kube-scheduler
[[ "$KWOK_NODES" == 0 ]] || kubeconfig "$STATE/kwok.kubeconfig" kwok
[[ "$METRICS_SERVER" != 1 ]] || kubeconfig "$STATE/metrics-server.kubeconfig" metrics-server
if [[ "$REAL_NODE" == 1 ]]; then
  kubeconfig "$STATE/kubelet.kubeconfig" kubelet
  kubeconfig "$STATE/kube-proxy.kubeconfig" kube-proxy
  kubeconfig "$STATE/coredns.kubeconfig" coredns
  [[ "$NODE_NETPOL" == 0 ]] || kubeconfig "$STATE/kube-router.kubeconfig" kube-router
  node_write_configs
fi

# ---------------------------------------------------------------- processes
# Each component runs in its own session/process group (setsid) so down.sh can signal the whole
# group; the group id is written to $STATE/pids as "<name> <pgid> <binary>".
start() { # <name> <binary> args...
  local name="$1" bin="$2" pidfile="$STATE/logs/.$1.pid"
  shift 2
  # shellcheck disable=SC2016 # expanded by the inner shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$bin" "$@" \
    >"$STATE/logs/$name.log" 2>&1 </dev/null 9>&- &
  for _ in $(seq 50); do [[ -s "$pidfile" ]] && break; sleep 0.05; done
  echo "$name $(cat "$pidfile") $bin" >>"$STATE/pids"
  rm -f "$pidfile"
}

# wait_for <what> <command...>: retry until the command succeeds or TIMEOUT passes.
wait_for() {
  local what="$1" deadline=$(($(date +%s) + TIMEOUT))
  shift
  until "$@" >/dev/null 2>&1; do
    if (($(date +%s) >= deadline)); then log "timed out after ${TIMEOUT}s waiting for $what"; false; fi
    # stop early if a component died
    while read -r name pid _bin; do
      kill -0 "$pid" 2>/dev/null || { log "$name (pid $pid) exited; see $STATE/logs/$name.log"; false; }
    done <"$STATE/pids"
    sleep 0.2
  done
}

if [[ "$REAL_NODE" == 1 ]]; then
  # first, so that it is up (to load the pause image) by the time the API server is
  start containerd "$(command -v containerd)" --config "$NODE_DIR/containerd.toml"
fi
start etcd "${BIN[etcd]}" \
  --name=streamroom-e2e \
  --data-dir="$STATE/etcd-data" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="streamroom-e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync=true \
  --heartbeat-interval=20 \
  --election-timeout=200 \
  --quota-backend-bytes=1073741824 \
  --log-level=warn
wait_for "etcd" curl -fsS "http://127.0.0.1:$ETCD_PORT/health"
log "etcd ready on 127.0.0.1:$ETCD_PORT ($(elapsed))"

APISERVER_EXTRA=()
if [[ "$REAL_NODE" == 1 ]]; then
  # logs/exec/port-forward: dial kubelets at their InternalIP and verify their serving certs
  # shellcheck disable=SC2054 # commas inside one flag
  APISERVER_EXTRA+=(--kubelet-preferred-address-types=InternalIP,Hostname --kubelet-certificate-authority="$PKI/ca.crt")
fi
start kube-apiserver "${BIN[kube-apiserver]}" \
  --advertise-address="$ADVERTISE" \
  --endpoint-reconciler-type="$RECONCILER" \
  --bind-address="$API_HOST" \
  --secure-port="$API_PORT" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --tls-cert-file="$PKI/apiserver.crt" \
  --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" \
  --authorization-mode=Node,RBAC \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" \
  --service-account-signing-key-file="$PKI/sa.key" \
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
  --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User \
  --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
  --proxy-client-key-file="$PKI/front-proxy-client.key" \
  --enable-aggregator-routing="${STREAMROOM_AGGREGATOR_ROUTING:-false}" \
  --allow-privileged=true \
  --profiling=false \
  ${APISERVER_EXTRA[@]+"${APISERVER_EXTRA[@]}"} \
  --v=1
if [[ "$REAL_NODE" == 1 ]]; then
  start apiserver-loopback "$(command -v socat)" \
    "TCP-LISTEN:$API_PORT,bind=127.0.0.1,reuseaddr,fork" "TCP:$NODE_IP:$API_PORT"
fi
wait_for "kube-apiserver /readyz" curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
  "https://127.0.0.1:$API_PORT/readyz"
log "kube-apiserver ready on https://$API_HOST:$API_PORT ($(elapsed))"
if [[ "$REAL_NODE" == 1 ]]; then
  wait_for "containerd ($CTRD_SOCK)" ctr --address "$CTRD_SOCK" version
  "$HERE/load-images.sh" "$("$HERE/node/image.sh" pause)" >&2
  log "containerd ready, pause image loaded ($(elapsed))"
fi

if [[ "$APISERVER_ONLY" != 1 ]]; then
  # Client rate limits of the controller-manager and the scheduler: Kubernetes' own scalability jobs
  # (kubemark, ClusterLoader2) run them at 100 QPS / burst 100, as large production control planes
  # do; the components' defaults (kcm 20/30, scheduler 50/100) remain one setting away ("default").
  QPS_FLAGS=()
  if [[ "${STREAMROOM_CONTROL_PLANE_QPS:-100}" != default ]]; then
    QPS_FLAGS=(--kube-api-qps="${STREAMROOM_CONTROL_PLANE_QPS:-100}" --kube-api-burst="${STREAMROOM_CONTROL_PLANE_BURST:-100}")
  fi
  start kube-controller-manager "${BIN[kube-controller-manager]}" \
    --kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$KCM_PORT" \
    --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" \
    --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" \
    --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --horizontal-pod-autoscaler-sync-period="${STREAMROOM_HPA_SYNC_PERIOD:-5s}" \
    ${STREAMROOM_NODE_MONITOR_GRACE_PERIOD:+--node-monitor-grace-period="$STREAMROOM_NODE_MONITOR_GRACE_PERIOD"} \
    "${QPS_FLAGS[@]}" \
    --profiling=false \
    --v=1
  start kube-scheduler "${BIN[kube-scheduler]}" \
    --kubeconfig="$STATE/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$STATE/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$STATE/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$SCHED_PORT" \
    --leader-elect=false \
    "${QPS_FLAGS[@]}" \
    --profiling=false \
    --v=1
  if [[ "$KWOK_NODES" != 0 ]]; then
    # Stages and metrics emulation come from our config files (kwok/*.yaml), so no kwok CRDs are
    # installed. Only nodes annotated kwok.x-k8s.io/node=fake are managed.
    start kwok "${BIN[kwok]}" \
      --kubeconfig="$STATE/kwok.kubeconfig" \
      --config="$HERE/kwok/stages.yaml" \
      --config="$HERE/kwok/metrics.yaml" \
      --manage-all-nodes=false \
      --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
      --node-ip="$KWOK_NODE_IP" \
      --node-port="$KWOK_PORT" \
      --server-address="127.0.0.1:$KWOK_PORT" \
      --tls-cert-file="$PKI/kwok-serving.crt" \
      --tls-private-key-file="$PKI/kwok-serving.key" \
      --cidr=10.244.0.0/16 \
      --node-lease-duration-seconds=40
  fi
  if [[ "$METRICS_SERVER" == 1 ]]; then
    # --metric-resolution 10s is metrics-server's minimum (its request timeout must stay below 90%).
    start metrics-server "${BIN[metrics-server]}" \
      --kubeconfig="$STATE/metrics-server.kubeconfig" \
      --authentication-kubeconfig="$STATE/metrics-server.kubeconfig" \
      --authorization-kubeconfig="$STATE/metrics-server.kubeconfig" \
      --bind-address=127.0.0.1 \
      --secure-port="$MS_PORT" \
      --tls-cert-file="$PKI/metrics-server-serving.crt" \
      --tls-private-key-file="$PKI/metrics-server-serving.key" \
      --kubelet-preferred-address-types=InternalIP,Hostname \
      --kubelet-use-node-status-port \
      --kubelet-certificate-authority="$PKI/ca.crt" \
      --metric-resolution=10s \
      --kubelet-request-timeout=5s \
      --profiling=false \
      --v=1
  fi
  KUBECTL=("${BIN[kubectl]:-kubectl}" --kubeconfig="$STATE/kubeconfig" --request-timeout=20s)
  manifests=""
  for i in $(seq "$KWOK_NODES"); do
    manifests+="$(sed -e "s|@NAME@|kwok-node-$i|g" -e "s|@POD_CIDR@|10.244.$i.0/24|g" -e "s|@TAINTS@|$KWOK_TAINTS|g" \
      -e "s|@CPU@|${STREAMROOM_KWOK_NODE_CPU:-32}|g" -e "s|@MEMORY@|${STREAMROOM_KWOK_NODE_MEMORY:-128Gi}|g" \
      -e "s|@PODS@|${STREAMROOM_KWOK_NODE_PODS:-110}|g" "$HERE/kwok/node.yaml")"$'\n---\n'
  done
  if [[ "$METRICS_SERVER" == 1 ]]; then
    manifests+="$(sed -e "s|@PORT@|$MS_PORT|g" -e "s|@CA_BUNDLE@|$(base64 -w0 <"$PKI/ca.crt")|g" \
      "$HERE/metrics-server/apiservice.yaml")"$'\n---\n'
  fi
  if [[ "$REAL_NODE" == 1 ]]; then
    manifests+="$(node_object)"$'\n---\n'"$(cat "$HERE/node/coredns-rbac.yaml")"
    [[ "$NODE_NETPOL" == 0 ]] || manifests+=$'\n---\n'"$(cat "$HERE/node/kube-router-rbac.yaml")"
  fi
  if [[ -n "$manifests" ]]; then
    wait_for "kube-system namespace" "${KUBECTL[@]}" get namespace kube-system
    "${KUBECTL[@]}" create -f - <<<"$manifests" >&2
  fi

  wait_for "kube-controller-manager /healthz" curl -fsSk "https://127.0.0.1:$KCM_PORT/healthz"
  wait_for "kube-scheduler /readyz" curl -fsSk "https://127.0.0.1:$SCHED_PORT/readyz"
  log "kube-controller-manager (:$KCM_PORT) and kube-scheduler (:$SCHED_PORT) healthy ($(elapsed))"
  nodes_ready() { # all kwok nodes Ready
    local n
    n="$("${KUBECTL[@]}" get nodes -l type=kwok \
      -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$')"
    [[ "$n" == "$KWOK_NODES" ]]
  }
  if [[ "$KWOK_NODES" != 0 ]]; then
    wait_for "kwok /healthz" curl -fsS --cacert "$PKI/ca.crt" "https://127.0.0.1:$KWOK_PORT/healthz"
    wait_for "$KWOK_NODES kwok nodes Ready" nodes_ready
    log "kwok (:$KWOK_PORT): $KWOK_NODES nodes Ready ($(elapsed))"
  fi
  if [[ "$REAL_NODE" == 1 ]]; then
    start kubelet "${BIN[kubelet]}" \
      --config="$NODE_DIR/kubelet.yaml" \
      --kubeconfig="$STATE/kubelet.kubeconfig" \
      --root-dir="$NODE_DIR/kubelet" \
      --cert-dir="$NODE_DIR/kubelet/pki" \
      --hostname-override="$NODE_NAME" \
      --node-ip="$NODE_IP" \
      --node-labels="$NODE_LABELS" \
      --v=1
    start kube-proxy "${BIN[kube-proxy]}" --config="$NODE_DIR/kube-proxy.yaml" --v=1
    start coredns "${BIN[coredns]}" -conf "$NODE_DIR/Corefile"
    node_ready() {
      [[ "$("${KUBECTL[@]}" get node "$NODE_NAME" \
        -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
    }
    wait_for "kubelet /healthz" curl -fsS "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
    wait_for "node $NODE_NAME Ready" node_ready
    wait_for "kube-proxy /healthz" curl -fsS "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz"
    netpol=""
    if [[ "$NODE_NETPOL" != 0 ]]; then
      # kube-router's NetworkPolicy controller only (no routing, no service proxy: the bridge CNI and
      # kube-proxy do those). It reads the node's InternalIP at start, which the kubelet has set by
      # now. Its health server (--health-port) would listen on every interface: off; readiness is its
      # first full sync (node_netpol_ready). Pod traffic it does not reject it ACCEPTs in
      # KUBE-ROUTER-FORWARD/-INPUT/-OUTPUT, whose jumps it keeps first in FORWARD/INPUT/OUTPUT
      # (started after kube-proxy's first sync, so that kube-proxy's jumps do not land before them).
      # That ACCEPT also passes pods' packets to Service IPs without endpoints, which kube-proxy's
      # REJECT rules behind it would refuse: node_netpol_net_up refuses them again.
      node_netpol_net_up "$SERVICE_CIDR"
      start kube-router "${BIN[kube-router]}" \
        --kubeconfig="$STATE/kube-router.kubeconfig" \
        --hostname-override="$NODE_NAME" \
        --run-firewall=true \
        --run-router=false \
        --run-service-proxy=false \
        --run-loadbalancer=false \
        --enable-cni=false \
        --enable-ipv4=true \
        --enable-ipv6=false \
        --service-cluster-ip-range="$SERVICE_CIDR" \
        --iptables-sync-period=30s \
        --health-port=0 \
        --metrics-port=0 \
        --v=1
      netpol=", kube-router (NetworkPolicy)"
    fi
    wait_for "CoreDNS /ready" curl -fsS "http://127.0.0.1:$COREDNS_READY_PORT/ready"
    [[ "$NODE_NETPOL" == 0 ]] || wait_for "kube-router's first NetworkPolicy sync (iptables KUBE-ROUTER-FORWARD)" node_netpol_ready
    log "real node $NODE_NAME ($NODE_IP) Ready: kubelet :$NODE_KUBELET_PORT, kube-proxy, CoreDNS $NODE_IP:53$netpol ($(elapsed))"
  fi
  if [[ "$METRICS_SERVER" == 1 ]]; then
    wait_for "APIService v1beta1.metrics.k8s.io Available" "${KUBECTL[@]}" wait --timeout=1s \
      --for=condition=Available apiservice/v1beta1.metrics.k8s.io
    log "metrics-server (:$MS_PORT) serving metrics.k8s.io ($(elapsed))"
  fi
fi

# ---------------------------------------------------------------- watchdog
if [[ -n "$OWNER_PID" ]]; then
  # Tear everything down when the owning process (e.g. the test runner) exits, even on a crash.
  export STREAMROOM_CLUSTER_DIR="$STATE"
  # shellcheck disable=SC2016 # expanded by the inner shell
  start watchdog bash -c 'while kill -0 "$0" 2>/dev/null; do sleep 1; done; exec "$1"' "$OWNER_PID" "$HERE/down.sh"
fi

cat >"$STATE/env" <<EOF
export KUBECONFIG=$STATE/kubeconfig
export STREAMROOM_APISERVER_URL=https://127.0.0.1:$API_PORT
export STREAMROOM_ETCD_URL=http://127.0.0.1:$ETCD_PORT
export STREAMROOM_CA_FILE=$PKI/ca.crt
EOF
[[ "$KWOK_NODES" == 0 ]] || echo "export STREAMROOM_KWOK_URL=https://127.0.0.1:$KWOK_PORT" >>"$STATE/env"
[[ "$METRICS_SERVER" != 1 ]] || echo "export STREAMROOM_METRICS_SERVER_URL=https://127.0.0.1:$MS_PORT" >>"$STATE/env"
if [[ "$REAL_NODE" == 1 ]]; then
  cat >>"$STATE/env" <<EOF
export STREAMROOM_REAL_NODE=1
export STREAMROOM_NODE_NAME=$NODE_NAME
export STREAMROOM_NODE_IP=$NODE_IP
export CONTAINER_RUNTIME_ENDPOINT=unix://$CTRD_SOCK
EOF
fi
UP_OK=1
log "cluster up in $(elapsed) (state: $STATE; logs: $STATE/logs; stop: $HERE/down.sh)"
echo "export KUBECONFIG=$STATE/kubeconfig"
