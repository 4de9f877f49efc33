# The Debian packages the scripts need, and the one function that installs them (sourced by
# preflight.sh, e2e/cluster/node/node.sh and e2e/images/build.sh).
# shellcheck shell=bash

# <what>=<package>: <what> is a command on PATH, or absolute paths (any of them, `|`-separated).
# npm test: the browser tests, the Argo CD health check (lua), the backplane tests (redis-server),
# the cluster's certificates (openssl), npm run lint (shellcheck).
# shellcheck disable=SC2034 # used by the scripts that source this file
TEST_PACKAGES=(chromium=chromium lua5.4=lua5.4 redis-server=redis-server openssl=openssl shellcheck=shellcheck)
# the real node of the local cluster (e2e/cluster/node/node.sh); ipset for kube-router's network
# policy controller, nft for the node's rule that rejects pod traffic to Services without endpoints
NODE_PACKAGES=(containerd=containerd ctr=containerd containerd-shim-runc-v2=containerd runc=runc
  conntrack=conntrack iptables=iptables ip=iproute2 socat=socat mount=mount flock=util-linux
  "/usr/lib/cni/bridge|/opt/cni/bin/bridge=containernetworking-plugins" ipset=ipset nft=nftables)
# the images (e2e/images/build.sh): a Docker engine (debootstrap, for the base image, only when needed)
# shellcheck disable=SC2034
IMAGE_PACKAGES=(dockerd=docker.io docker=docker.io)

# exe_path <command>: its path when an executable of that name is on PATH (`command -v` alone also
# reports a file that is not executable).
exe_path() {
  local p
  p="$(type -P "$1")" && [[ -x "$p" ]] && echo "$p"
}

_pkg_have() { # <what>
  local alt alts
  IFS='|' read -ra alts <<<"$1"
  for alt in "${alts[@]}"; do
    if [[ "$alt" == /* ]]; then [[ -x "$alt" ]] && return 0; else exe_path "$alt" >/dev/null && return 0; fi
  done
  return 1
}

# (exported, so that the scripts this one starts do not update again)
export STREAMROOM_APT_UPDATED="${STREAMROOM_APT_UPDATED:-0}"
# need_packages <what>=<package>...: installs, in one apt-get call, the packages whose command or
# file is missing (as root on Debian), or else prints every missing one by name with the command
# that installs them all and returns 1. STREAMROOM_NO_APT=1 never installs (report only).
need_packages() {
  local spec what pkg missing=() pkgs=() p seen
  export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" # iptables, conntrack, ... live in sbin
  for spec in "$@"; do
    what="${spec%=*}" pkg="${spec##*=}"
    _pkg_have "$what" && continue
    missing+=("${what%%|*} ($pkg)")
    seen=0
    for p in "${pkgs[@]+"${pkgs[@]}"}"; do [[ "$p" == "$pkg" ]] && seen=1; done
    [[ $seen == 1 ]] || pkgs+=("$pkg")
  done
  [[ ${#pkgs[@]} -gt 0 ]] || return 0
  if [[ $(id -u) -ne 0 || "${STREAMROOM_NO_APT:-0}" == 1 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "streamroom: missing: ${missing[*]}" >&2
    echo "streamroom: install them with: sudo apt-get install -y ${pkgs[*]}" >&2
    echo "streamroom: and run this again" >&2
    return 1
  fi
  if [[ $STREAMROOM_APT_UPDATED == 0 ]]; then
    echo "streamroom: apt-get update" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || {
      echo "streamroom: apt-get update failed; install by hand: apt-get install -y ${pkgs[*]}" >&2
      return 1
    }
    STREAMROOM_APT_UPDATED=1
  fi
  echo "streamroom: installing ${pkgs[*]} (missing: ${missing[*]})" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2 || {
    echo "streamroom: apt-get install -y ${pkgs[*]} failed (see above)" >&2
    return 1
  }
  for spec in "$@"; do
    _pkg_have "${spec%=*}" || {
      echo "streamroom: ${spec##*=} is installed but ${spec%=*} is still missing" >&2
      return 1
    }
  done
}
