# The real node of `up.sh --real-node`: settings, preflight, host network, containerd, kubelet,
# kube-proxy and CoreDNS configuration, the NetworkPolicy controller (kube-router), and the cleanup
# down.sh runs. Sourced by up.sh, down.sh and load-images.sh (after lib.sh); needs STATE (the
# cluster state dir).
# shellcheck shell=bash

export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# ---------------------------------------------------------------- settings
# Fixed per machine (one real-node cluster at a time): interface, bridge, containerd dirs, :10250.
node_settings() {
  NODE_NAME="${STREAMROOM_NODE_NAME:-streamroom-node}"
  NODE_IP="${STREAMROOM_NODE_IP:-10.250.0.1}"
  NODE_IFACE="${STREAMROOM_NODE_IFACE:-streamroom0}"
  NODE_BRIDGE="${STREAMROOM_NODE_BRIDGE:-streamroom-br0}"
  NODE_POD_CIDR="${STREAMROOM_NODE_POD_CIDR:-10.244.0.0/24}"
  NODE_CLUSTER_CIDR=10.244.0.0/16
  NODE_LABELS="${STREAMROOM_NODE_LABELS:-streamroom.dev/node=real}"
  NODE_KUBELET_PORT="${STREAMROOM_KUBELET_PORT:-10250}"
  # containerd's image store outlives the cluster (loaded images are kept, like the binary cache);
  # its state dir (tasks, sockets, mounts, pod netns) does not.
  CTRD_ROOT="${STREAMROOM_CONTAINERD_ROOT:-/var/lib/streamroom-containerd}"
  CTRD_STATE=/run/streamroom-containerd
  CTRD_SOCK="$CTRD_STATE/containerd.sock"
  NODE_DIR="$STATE/node"
  NODE_MARKER=/run/streamroom-real-node # holds the state dir of the running real-node cluster
  # NetworkPolicies enforced by kube-router's policy controller (iptables + ipsets); 0 = not enforced
  NODE_NETPOL="${STREAMROOM_NETWORK_POLICY:-1}"
  node_find_cni
}

# node_find_cni: CNI_BIN_DIR, the directory of the CNI plugins (empty until they are installed).
node_find_cni() {
  local d
  CNI_BIN_DIR=""
  for d in /usr/lib/cni /opt/cni/bin; do
    if [[ -x "$d/bridge" ]]; then
      CNI_BIN_DIR="$d"
      break
    fi
  done
  return 0
}

# node_save_env: what down.sh / load-images.sh need, written into the state dir.
node_save_env() {
  local v
  : >"$NODE_DIR/node.env"
  for v in NODE_NAME NODE_IP NODE_IFACE NODE_BRIDGE NODE_POD_CIDR NODE_CLUSTER_CIDR NODE_LABELS \
    NODE_KUBELET_PORT CTRD_ROOT CTRD_STATE CTRD_SOCK NODE_DIR NODE_MARKER CNI_BIN_DIR; do
    printf '%s=%q\n' "$v" "${!v}" >>"$NODE_DIR/node.env"
  done
}

# ---------------------------------------------------------------- preflight
# shellcheck source=../../scripts/packages.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/packages.sh"
node_preflight() {
  [[ $(id -u) -eq 0 ]] || { log "--real-node needs root (containerd, kubelet, network and iptables setup)"; return 1; }
  need_packages "${NODE_PACKAGES[@]}" || return 1
  [[ -n "$CNI_BIN_DIR" ]] || node_find_cni
  local p
  for p in bridge host-local portmap loopback firewall; do
    [[ -x "$CNI_BIN_DIR/$p" ]] || { log "CNI plugin $CNI_BIN_DIR/$p is missing (apt-get install -y containernetworking-plugins)"; return 1; }
  done
  if [[ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then
    modprobe br_netfilter 2>/dev/null || true
    [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] ||
      { log "--real-node needs the br_netfilter kernel module (modprobe br_netfilter)"; return 1; }
  fi
  [[ -d /sys/fs/cgroup/memory || -f /sys/fs/cgroup/cgroup.controllers ]] ||
    { log "--real-node needs cgroups (memory controller not found under /sys/fs/cgroup)"; return 1; }
  if [[ "$NODE_NETPOL" != 0 ]]; then
    # kube-router's rules: ipsets (hash:ip, hash:net) and the iptables matches set, physdev, addrtype,
    # conntrack, mark, multiport, comment, limit and targets REJECT, MARK, NFLOG (all built into
    # this VM's kernel). Without ip_set, ipset fails at once.
    local err
    err="$(ipset -n list 2>&1 >/dev/null)" ||
      { log "NetworkPolicy (kube-router) needs the kernel's ip_set (ipset -n list: $err); STREAMROOM_NETWORK_POLICY=0 runs without it"; return 1; }
  fi
}

# node_running_elsewhere: prints the state dir of a live real-node cluster (any state dir), if any.
node_running_elsewhere() {
  local other pid
  [[ -f "$NODE_MARKER" ]] || return 1
  other="$(cat "$NODE_MARKER")"
  [[ -f "$other/pids" ]] || return 1
  while read -r _ pid _; do
    if kill -0 "$pid" 2>/dev/null; then echo "$other"; return 0; fi
  done <"$other/pids"
  return 1
}

# ---------------------------------------------------------------- sysctls
# Values the node changes (we and the kubelet / kube-proxy); saved at start, restored by cleanup.
NODE_SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.ipv4.conf.all.route_localnet
  vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys
  kernel.keys.root_maxbytes)
_sysctl_path() { echo "/proc/sys/${1//.//}"; }
node_save_sysctls() {
  local s
  [[ -f "$NODE_DIR/sysctl.orig" ]] && return 0
  for s in "${NODE_SYSCTLS[@]}"; do
    [[ -r "$(_sysctl_path "$s")" ]] && echo "$s $(cat "$(_sysctl_path "$s")")"
  done >"$NODE_DIR/sysctl.orig"
}
node_restore_sysctls() { # <file>
  local s v
  [[ -f "$1" ]] || return 0
  while read -r s v; do
    [[ "$(cat "$(_sysctl_path "$s")" 2>/dev/null)" == "$v" ]] || echo "$v" >"$(_sysctl_path "$s")" 2>/dev/null || true
  done <"$1"
}

# ---------------------------------------------------------------- network
# The node's address lives on its own interface: a dummy device, or (kernels without CONFIG_DUMMY,
# like this VM's) a bridge without ports, which holds a local address just the same.
node_net_up() {
  if ! ip link show "$NODE_IFACE" >/dev/null 2>&1; then
    ip link add "$NODE_IFACE" type dummy 2>/dev/null || ip link add "$NODE_IFACE" type bridge
  fi
  ip addr replace "$NODE_IP/32" dev "$NODE_IFACE"
  ip link set "$NODE_IFACE" up
  echo 1 >/proc/sys/net/ipv4/ip_forward
  # bridged pod <-> pod traffic must go through iptables (Service DNAT for pods on the same bridge)
  echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
}

# ---------------------------------------------------------------- NetworkPolicy (kube-router)
# node_netpol_ready: kube-router's policy controller has finished a full sync: its jump is the first
# rule of FORWARD (before kube-proxy's, docker's and the CNI's) and KUBE-ROUTER-FORWARD ends with
# the ACCEPT of policy-compliant traffic (mark 0x20000), which a sync appends after the pods' chains.
node_netpol_ready() {
  local rules
  rules="$(iptables -w 5 -S FORWARD 2>/dev/null)" || return 1
  [[ "$(grep -m1 -- '^-A FORWARD' <<<"$rules")" == *"-j KUBE-ROUTER-FORWARD" ]] || return 1
  rules="$(iptables -w 5 -S KUBE-ROUTER-FORWARD 2>/dev/null)" || return 1
  [[ "$rules" == *"--mark 0x20000/0x20000 -j ACCEPT"* ]]
}

# Our own nftables table (beside iptables-nft's), only while kube-router runs.
NODE_NFT_TABLE=streamroom-node

# node_netpol_net_up <service CIDR>: pods' connections to a Service IP that kube-proxy did not DNAT
# (a Service without endpoints, or no Service at all) are refused, as kube-proxy alone does: its
# REJECT rules sit in filter FORWARD behind kube-router's jump, and kube-router ACCEPTs every pod
# packet that its policies allow, so without this such a packet would leave through the default
# route. An nftables base chain of its own on the forward hook rejects them whatever iptables
# accepted (an accept ends only its own chain; a reject ends the packet).
node_netpol_net_up() {
  nft -f - <<EOF
add table ip $NODE_NFT_TABLE
delete table ip $NODE_NFT_TABLE
table ip $NODE_NFT_TABLE {
  chain services {
    type filter hook forward priority filter - 5; policy accept;
    iifname "$NODE_BRIDGE" ip daddr $1 counter reject comment "not DNATed by kube-proxy: no endpoints"
  }
}
EOF
}

# _destroy_netpol_ipsets: kube-router's ipsets (KUBE-SRC-*, KUBE-DST-* per policy, TMP-<16 chars>
# left by a restore it did not finish; inet6: for IPv6); only after the iptables rules using them
# are gone (a referenced set cannot be destroyed).
_destroy_netpol_ipsets() {
  local set
  command -v ipset >/dev/null 2>&1 || return 0
  for set in $(ipset -n list 2>/dev/null | grep -E '^(inet6:)?(KUBE-(SRC|DST)-|TMP-[A-Z2-7]{16}$)'); do
    ipset destroy "$set" 2>/dev/null || log "could not destroy ipset $set"
  done
}

# ---------------------------------------------------------------- config files
node_write_configs() { # needs PKI, API_PORT, the ports below, CNI_BIN_DIR
  mkdir -p "$NODE_DIR"/{cni/net.d,cni/ipam,kubelet,pod-logs}
  # Without CAP_SYS_RESOURCE (e.g. this Firecracker VM: root, but CapEff lacks bit 24) no process
  # may lower its oom_score_adj, and runc fails to start the pod sandbox (-998) with "can't get
  # final child's PID from pipe"; containerd then clamps scores to its own.
  local restrict_oom=false capeff
  capeff="$(awk '/^CapEff:/ {print $2}' /proc/self/status)"
  (( (16#${capeff:-0} >> 24) & 1 )) || restrict_oom=true
  cat >"$NODE_DIR/containerd.toml" <<EOF
# containerd for the streamroom real node (not docker's): own root, state and socket.
version = 2
root = "$CTRD_ROOT"
state = "$CTRD_STATE"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$CTRD_SOCK"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "streamroom/pause:3.10"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  restrict_oom_score_adj = $restrict_oom
  # pod network namespaces under our state dir, not /var/run/netns
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        # runc's state apart from any other containerd on the machine
        Root = "$CTRD_STATE/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$NODE_DIR/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ""
EOF
  # bridge + host-local on the node's podCIDR, masquerade out of the pod network, hostPort
  # (portmap) and FORWARD accept rules for pod traffic (firewall; docker sets FORWARD to DROP).
  # containerd adds the loopback interface itself (loopback plugin from bin_dir).
  cat >"$NODE_DIR/cni/net.d/10-streamroom.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "streamroom",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$NODE_DIR/cni/ipam",
        "ranges": [[{"subnet": "$NODE_POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "firewall", "backend": "iptables"}
  ]
}
EOF
  cat >"$NODE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$CTRD_SOCK
address: $NODE_IP
port: $NODE_KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
rotateCertificates: false
serverTLSBootstrap: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true, cacheTTL: 30s}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
  webhook: {cacheAuthorizedTTL: 30s, cacheUnauthorizedTTL: 5s}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
podLogsDir: $NODE_DIR/pod-logs
maxPods: 110
serializeImagePulls: false
# nothing may be pulled (no registry) and nothing re-pulled: never garbage-collect images
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 87600h
# a busy dev VM must not evict test pods
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%", imagefs.inodesFree: "1%"}
evictionPressureTransitionPeriod: 10s
nodeStatusUpdateFrequency: 10s
nodeStatusReportFrequency: 1m
syncFrequency: 10s
fileCheckFrequency: 20s
staticPodPath: ""
protectKernelDefaults: false
enableDebuggingHandlers: true
shutdownGracePeriod: 0s
EOF
  cat >"$NODE_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $STATE/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
mode: iptables
clusterCIDR: $NODE_CLUSTER_CIDR
detectLocalMode: ClusterCIDR
# NodePorts only on loopback and the node IP (not on the machine's public interfaces)
nodePortAddresses: ["127.0.0.0/8", "$NODE_IP/32"]
iptables:
  localhostNodePorts: true
  masqueradeAll: false
  syncPeriod: 30s
  minSyncPeriod: 0s
# leave the machine's conntrack sysctls alone
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
  cat >"$NODE_DIR/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    health 127.0.0.1:$COREDNS_HEALTH_PORT
    ready 127.0.0.1:$COREDNS_READY_PORT
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $STATE/coredns.kubeconfig streamroom-e2e
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }
    forward . /etc/resolv.conf
    cache 30
    loop
    loadbalance
}
EOF
}

# node_object: the Node, created before the kubelet registers so that it has its podCIDR (no
# controller-manager CIDR allocation here) and our labels (the kubelet applies --node-labels only
# when it creates the Node itself).
node_object() {
  local labels="" kv
  IFS=',' read -ra kvs <<<"$NODE_LABELS"
  for kv in "${kvs[@]}"; do
    [[ -n "$kv" ]] && labels+="    ${kv%%=*}: \"${kv#*=}\""$'\n'
  done
  cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $NODE_NAME
  labels:
    kubernetes.io/hostname: $NODE_NAME
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
$labels
spec:
  podCIDR: $NODE_POD_CIDR
  podCIDRs: [$NODE_POD_CIDR]
EOF
}

# ---------------------------------------------------------------- cleanup
# node_owned: is the machine's real node ours (NODE_DIR's cluster), or nobody's? It may belong to
# another cluster if this one died without down.sh and another up.sh --real-node took over.
node_owned() {
  local owner
  owner="$(cat "$NODE_MARKER" 2>/dev/null || true)"
  [[ -z "$owner" || "$owner" == "${NODE_DIR%/node}" ]] && return 0
  log "leaving the real node alone: it belongs to the cluster in $owner now"
  return 1
}

# node_cleanup_stale: node_cleanup with the settings of the node named in the marker (if its state
# dir still exists), else with ours.
node_cleanup_stale() {
  local stale
  stale="$(cat "$NODE_MARKER" 2>/dev/null || true)"
  (
    # shellcheck disable=SC1091
    if [[ -n "$stale" && -f "$stale/node/node.env" ]]; then source "$stale/node/node.env"; else rm -f "$NODE_MARKER"; fi
    node_cleanup
  )
  rm -f "$NODE_MARKER"
}

# node_stop_pods: stop and remove every pod sandbox through the CRI (runs CNI DEL: IPAM, veth,
# portmap/firewall rules), while containerd is still up and after the kubelet has stopped.
node_stop_pods() {
  local crictl
  node_owned || return 0
  crictl="$(tool_bin crictl 2>/dev/null)"
  [[ -S "$CTRD_SOCK" && -x "$crictl" ]] || return 0
  timeout 60 "$crictl" --runtime-endpoint "unix://$CTRD_SOCK" --timeout 30s rmp --all --force >/dev/null 2>&1 ||
    log "crictl rmp --all --force failed (leftovers are removed below)"
}

# _purge_chains <iptables|ip6tables>: delete the KUBE-* and CNI-* chains (kube-proxy, kubelet, CNI
# bridge/portmap/firewall) and every rule jumping to them; docker's and other chains are untouched.
_purge_chains() {
  local ipt="$1" t rules script chains
  command -v "$ipt-save" >/dev/null 2>&1 || return 0
  for t in filter nat mangle raw; do
    rules="$("$ipt-save" -t "$t" 2>/dev/null)" || continue
    chains="$(grep -oE '^:(KUBE-|CNI-)[^ ]+' <<<"$rules" | cut -c2-)"
    [[ -n "$chains" ]] || continue
    script="*$t"$'\n'
    script+="$(grep -E -- '-j (KUBE-|CNI-)' <<<"$rules" | grep -vE '^-A (KUBE-|CNI-)' | sed 's/^-A /-D /')"$'\n'
    # shellcheck disable=SC2001
    script+="$(sed 's/^/-F /' <<<"$chains")"$'\n'"$(sed 's/^/-X /' <<<"$chains")"$'\n'"COMMIT"$'\n'
    "$ipt-restore" --noflush <<<"$script" 2>/dev/null || log "could not remove all $ipt $t KUBE-/CNI- chains"
  done
}

_unmount_under() { # <dir>...: unmount everything mounted at or below these dirs, deepest first
  local d mp
  for d in "$@"; do
    [[ -n "$d" && "$d" == /* ]] || continue
    awk '{print $5}' /proc/self/mountinfo | grep -E "^${d//./\\.}(/|$)" | sort -r | while read -r mp; do
      umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
    done
  done
}

# node_cleanup: make the machine as before the node started. Idempotent; every step tolerates
# things that do not exist. Runs after all node processes are stopped (down.sh), or at up.sh to
# clear leftovers of a node that was not shut down (crash, kill -9).
node_cleanup() {
  local - # best effort: no step may stop the others (set -e of the caller off in here)
  set +e
  local id pid runc_root="$CTRD_STATE/runc/k8s.io" d
  node_owned || return 0
  # containers whose shim or containerd died: kill them through runc, then the shims
  if [[ -d "$runc_root" ]]; then
    for id in $(runc --root "$runc_root" list -q 2>/dev/null); do
      runc --root "$runc_root" kill -a "$id" KILL 2>/dev/null || true
    done
    sleep 0.2
    for id in $(runc --root "$runc_root" list -q 2>/dev/null); do
      runc --root "$runc_root" delete -f "$id" 2>/dev/null || true
    done
  fi
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $CTRD_SOCK" 2>/dev/null); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  _unmount_under "$CTRD_STATE" "$NODE_DIR" "$CTRD_ROOT"
  rm -rf "$CTRD_STATE"
  # network: pod veths still on the bridge (normally gone with their netns), the bridge, the node
  # address, iptables
  local veth
  for veth in $(ip -o link show master "$NODE_BRIDGE" 2>/dev/null | awk -F': ' '{print $2}'); do
    ip link del "${veth%@*}" 2>/dev/null || true
  done
  ip link del "$NODE_BRIDGE" 2>/dev/null || true
  ip link del "$NODE_IFACE" 2>/dev/null || true
  local kp
  kp="$(tool_bin kube-proxy 2>/dev/null)"
  [[ -x "$kp" ]] && timeout 30 "$kp" --cleanup >/dev/null 2>&1 # exits 1 when e.g. IPVS is missing
  # (also kube-router's KUBE-ROUTER-*, KUBE-NWPLCY-*, KUBE-POD-FW-* chains; then its ipsets)
  _purge_chains iptables
  _purge_chains ip6tables
  _destroy_netpol_ipsets
  command -v nft >/dev/null 2>&1 && nft delete table ip "$NODE_NFT_TABLE" 2>/dev/null
  conntrack -D -s "$NODE_CLUSTER_CIDR" >/dev/null 2>&1 || true
  conntrack -D -d "$NODE_CLUSTER_CIDR" >/dev/null 2>&1 || true
  # the kubelet's pod cgroups (cgroupfs driver), deepest first
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d "$d" ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  node_restore_sysctls "$NODE_DIR/sysctl.orig"
  if [[ -f "$NODE_MARKER" && "$(cat "$NODE_MARKER" 2>/dev/null)" == "${NODE_DIR%/node}" ]]; then
    rm -f "$NODE_MARKER" "$NODE_MARKER.lock"
  fi
  return 0
}
