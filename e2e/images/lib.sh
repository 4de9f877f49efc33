# Shared by e2e/images/build.sh and e2e/images/save.sh (sourced, not run).
# shellcheck shell=bash
# (the image names below are used by the scripts that source this file)
# shellcheck disable=SC2034

IMAGES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$IMAGES_DIR/../.." && pwd)"
STREAMROOM_CACHE="${STREAMROOM_CACHE:-${HOME:-/tmp}/.cache/streamroom}"

# shellcheck source=../scripts/packages.sh
source "$IMAGES_DIR/../scripts/packages.sh"

log() { printf '[images] %s\n' "$*" >&2; }
die() {
  printf '[images] error: %s\n' "$*" >&2
  exit 1
}
is_root() { [[ "$(id -u)" -eq 0 ]]; }

# The docker client. Debian's /usr/bin/docker (20.10) has BuildKit built in; a newer client found
# first on PATH may need the buildx plugin for DOCKER_BUILDKIT=1. STREAMROOM_DOCKER overrides.
DOCKER=""
pick_docker() {
  if [[ -n "${STREAMROOM_DOCKER:-}" ]]; then
    DOCKER="$STREAMROOM_DOCKER"
  elif [[ -x /usr/bin/docker ]]; then
    DOCKER=/usr/bin/docker
  else
    DOCKER="$(exe_path docker || true)"
  fi
}
pick_docker

docker_ok() { [[ -n "$DOCKER" ]] && timeout 20 "$DOCKER" info >/dev/null 2>&1; }

# Image names. The room and operator defaults come from the sources that reference them, so the
# images built here are the ones the operator and the chart ask for:
#   room:     DEFAULT_ROOM_IMAGE in operator/src/config.ts (the operator's --default-image)
#   operator: image.repository in charts/streamroom-operator/values.yaml : the chart's appVersion
#             (values.yaml image.tag is empty, which means appVersion)
default_room_image() {
  local v
  v="$(sed -n "s/^export const DEFAULT_ROOM_IMAGE = '\([^']*\)';.*/\1/p" "$REPO_ROOT/operator/src/config.ts" 2>/dev/null)"
  if [[ "$v" =~ ^[a-z0-9./_-]+:[A-Za-z0-9._-]+$ ]]; then
    printf '%s\n' "$v"
  else
    log "warning: no DEFAULT_ROOM_IMAGE in operator/src/config.ts; using streamroom/room:0.1.0"
    printf '%s\n' streamroom/room:0.1.0
  fi
}

default_operator_image() {
  local chart="$REPO_ROOT/charts/streamroom-operator" repo tag
  repo="$(awk '/^image:/ { f = 1; next } f && /^[^ #]/ { f = 0 }
    f && $1 == "repository:" { gsub(/["\047]/, "", $2); print $2; exit }' "$chart/values.yaml" 2>/dev/null)"
  tag="$(sed -n "s/^appVersion: *[\"']\{0,1\}\([^\"']*\)[\"']\{0,1\} *$/\1/p" "$chart/Chart.yaml" 2>/dev/null)"
  if [[ "$repo" =~ ^[a-z0-9./_-]+$ && "$tag" =~ ^[A-Za-z0-9._-]+$ ]]; then
    printf '%s:%s\n' "$repo" "$tag"
  else
    log "warning: cannot read image.repository / appVersion from $chart; using streamroom/operator:0.1.0"
    printf '%s\n' streamroom/operator:0.1.0
  fi
}

# The base images the Dockerfiles name (FROM); fixed, since the point is to satisfy those FROMs.
DEBIAN_IMAGE=debian:bookworm-slim
NODE_IMAGE=node:20-bookworm-slim
ROOM_IMAGE="${STREAMROOM_ROOM_IMAGE:-$(default_room_image)}"
OPERATOR_IMAGE="${STREAMROOM_OPERATOR_IMAGE:-$(default_operator_image)}"
REDIS_IMAGE="${STREAMROOM_REDIS_IMAGE:-streamroom/redis:7}"
