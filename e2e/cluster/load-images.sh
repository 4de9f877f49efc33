#!/usr/bin/env bash
# Load images into the real node's containerd (namespace k8s.io, where the kubelet finds them), so
# pods can use them with imagePullPolicy IfNotPresent (the default for a tag other than :latest;
# nothing can be pulled here).
#
#   e2e/cluster/load-images.sh streamroom/room:0.1.0 streamroom/operator:0.1.0   # from docker
#   e2e/cluster/load-images.sh /path/image.tar                                   # docker-archive / OCI tar
#   e2e/cluster/load-images.sh pause nettest       # our own tiny images (e2e/cluster/node/image.sh)
#
# An image already in containerd with the same image ID (config digest) is skipped, so repeated
# calls are fast. Docker names are normalised as containerd and the kubelet do:
# streamroom/room:0.1.0 -> docker.io/streamroom/room:0.1.0, debian:bookworm-slim ->
# docker.io/library/debian:bookworm-slim; a pod may use either form.
# Needs a running `up.sh --real-node` cluster (STREAMROOM_CLUSTER_DIR) and root.
# shellcheck source-path=SCRIPTDIR source=../scripts/errors.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/errors.sh" # set -Eeuo pipefail; says what failed

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
STATE="$STREAMROOM_CLUSTER_DIR"
log() { echo "load-images.sh: $*" >&2; }

[[ $# -gt 0 ]] || { sed -n '2,15p' "$0" >&2; exit 2; }
if [[ ! -f "$STATE/node/node.env" ]]; then
  log "no real node in $STATE (start the cluster with: e2e/cluster/up.sh --real-node)"
  exit 1
fi
# shellcheck source=node/node.sh
source "$HERE/node/node.sh"
# shellcheck disable=SC1091
source "$STATE/node/node.env"
CTR=(ctr --address "$CTRD_SOCK" --namespace k8s.io)
CRICTL="$(tool_bin crictl)"
DOCKER="$(command -v /usr/bin/docker docker 2>/dev/null | head -n1 || true)"

# normalize <ref>: the fully qualified name containerd stores (docker's normalisation).
normalize() {
  local ref="$1" first rest
  [[ "$ref" == *@* ]] && { echo "$ref"; return; }
  first="${ref%%/*}"
  if [[ "$ref" != */* ]]; then ref="docker.io/library/$ref"
  elif [[ "$first" != *.* && "$first" != *:* && "$first" != localhost ]]; then ref="docker.io/$ref"
  fi
  rest="${ref##*/}"
  [[ "$rest" == *:* ]] || ref="$ref:latest"
  echo "$ref"
}

# loaded_id <full ref>: the image ID (config digest) the CRI reports for that name, or nothing.
loaded_id() {
  "$CRICTL" --runtime-endpoint "unix://$CTRD_SOCK" inspecti -o go-template --template '{{.status.id}}' "$1" 2>/dev/null || true
}

# tar_info <tar>: "<image id> <ref>" per RepoTag of a docker-archive (manifest.json).
tar_info() {
  local m cfg
  m="$(tar -xOf "$1" manifest.json 2>/dev/null)" || return 0
  cfg="$(grep -o '"Config":"[^"]*"' <<<"$m" | head -n1 | sed 's/.*:"//; s/"$//; s/\.json$//; s/^blobs\/sha256\///')"
  grep -o '"RepoTags":\[[^]]*\]' <<<"$m" | sed 's/^"RepoTags":\[//; s/\]$//' | tr ',' '\n' | tr -d '" ' |
    while read -r ref; do if [[ -n "$ref" ]]; then echo "sha256:$cfg $ref"; fi; done
}

import() { # reads a tar stream on stdin
  "${CTR[@]}" images import - >/dev/null
}

t0=$(date +%s%N)
from_docker=()
for arg in "$@"; do
  case "$arg" in
    pause | nettest) arg="$("$HERE/node/image.sh" "$arg")" ;;
  esac
  if [[ -f "$arg" ]]; then
    info="$(tar_info "$arg")"
    need=1
    if [[ -n "$info" ]]; then
      need=0
      while read -r id ref; do
        [[ "$(loaded_id "$(normalize "$ref")")" == "$id" ]] || need=1
      done <<<"$info"
    fi
    if [[ "$need" == 1 ]]; then
      import <"$arg"
      log "imported $arg (${info:-OCI archive})"
    else
      log "up to date: $(awk '{print $2}' <<<"$info" | paste -sd' ') ($(awk '{print substr($1, 8, 12); exit}' <<<"$info"))"
    fi
    continue
  fi
  [[ -n "$DOCKER" ]] || { log "$arg: not a file and docker is not installed"; exit 1; }
  id="$("$DOCKER" image inspect -f '{{.Id}}' "$arg" 2>/dev/null)" ||
    { log "$arg: no such image in docker (docker image ls) and not a file"; exit 1; }
  if [[ "$(loaded_id "$(normalize "$arg")")" == "$id" ]]; then
    log "up to date: $(normalize "$arg") (${id:7:12})"
  else
    from_docker+=("$arg")
  fi
done
if [[ ${#from_docker[@]} -gt 0 ]]; then
  # one `docker save` stream for all of them (shared layers once)
  "$DOCKER" save "${from_docker[@]}" | import
  for arg in "${from_docker[@]}"; do
    ref="$(normalize "$arg")"
    [[ -n "$(loaded_id "$ref")" ]] || { log "$arg was imported but containerd has no $ref"; exit 1; }
    log "imported $ref from docker"
  done
fi
log "done in $((($(date +%s%N) - t0) / 1000000)) ms"
