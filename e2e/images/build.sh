#!/usr/bin/env bash
# Build the StreamRoom images on a machine that cannot pull from a container registry.
#
#   e2e/images/build.sh                      # everything: base images, room, operator, redis
#   e2e/images/build.sh --only room,redis    # only some (base | room | operator | redis; repeatable)
#   e2e/images/build.sh --save DIR           # also `docker save` room, operator and redis to DIR
#
# Steps (each skipped when its result is already there):
#   1. a Docker engine: starts dockerd (installs Debian's docker.io first when root and missing);
#   2. debian:bookworm-slim, when missing: a debootstrap minbase rootfs, slimmed, `docker import`ed
#      (the rootfs tarball is cached in $STREAMROOM_CACHE/images/);
#      node:20-bookworm-slim, when missing: that plus the host's node and npm (e2e/images/node/);
#      golang:<host Go's minor>-bookworm, when missing: that plus the host's Go (e2e/images/go/);
#   3. the room and operator images from room-image/Dockerfile and operator/Dockerfile, unchanged
#      (their FROM node:20-bookworm-slim and the room's relay stage FROM golang:... now resolve to
#      the local images);
#   4. streamroom/redis:7 from e2e/images/redis/Dockerfile (Debian's redis-server).
# Progress goes to stderr; stdout gets the final table of images (name, ID, size).
#
# Environment:
#   STREAMROOM_ROOM_IMAGE      room image (default: DEFAULT_ROOM_IMAGE in operator/src/config.ts)
#   STREAMROOM_OPERATOR_IMAGE  operator image (default: the chart's image.repository:appVersion)
#   STREAMROOM_REDIS_IMAGE     redis image (default: streamroom/redis:7)
#   STREAMROOM_CACHE           cache dir (default: ~/.cache/streamroom)
#   STREAMROOM_DEBIAN_MIRROR   Debian mirror for debootstrap and the image's apt sources
#                              (default: http://deb.debian.org/debian)
#   STREAMROOM_DOCKER          docker client (default: /usr/bin/docker if present, else docker)
#   NODE_EXTRA_CA_CERTS        a CA bundle file, handed to `npm ci` in the builds as the BuildKit
#                              secret extra_ca (for a TLS-intercepting proxy)
# shellcheck source-path=SCRIPTDIR source=../scripts/errors.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/errors.sh" # set -Eeuo pipefail; says what failed

# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

SUITE=bookworm
DEBIAN_MIRROR="${STREAMROOM_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SECURITY_MIRROR="${STREAMROOM_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
# Bump when the way the rootfs is made changes (the cache key also covers e2e/images/debian/).
ROOTFS_REV=1
DOCKERD_TIMEOUT="${STREAMROOM_DOCKERD_TIMEOUT:-60}"
NODE_MAJOR=20
LABEL_KEY=dev.streamroom.local-base

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
  cat <<'EOF'
Options:
  --only LIST       build only these (comma-separated, repeatable): base room operator redis
  --rebuild-base    re-create debian:bookworm-slim and node:20-bookworm-slim even if present
  --refresh-rootfs  as --rebuild-base, and run debootstrap again instead of using the cached rootfs
  --save DIR        afterwards write `docker save` tarballs of the built room/operator/redis images
  -h, --help        this text
EOF
}

ONLY=()
REBUILD_BASE=0
REFRESH_ROOTFS=0
SAVE_DIR=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --only)
      [[ $# -ge 2 ]] || die "--only needs a value (base, room, operator, redis)"
      IFS=',' read -r -a parts <<<"$2"
      ONLY+=("${parts[@]}")
      shift 2
      ;;
    --only=*)
      IFS=',' read -r -a parts <<<"${1#--only=}"
      ONLY+=("${parts[@]}")
      shift
      ;;
    --rebuild-base) REBUILD_BASE=1; shift ;;
    --refresh-rootfs) REBUILD_BASE=1; REFRESH_ROOTFS=1; shift ;;
    --save)
      [[ $# -ge 2 ]] || die "--save needs a directory"
      SAVE_DIR="$2"
      shift 2
      ;;
    --save=*) SAVE_DIR="${1#--save=}"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ ${#ONLY[@]} -gt 0 ]] || ONLY=(base room operator redis)
for t in "${ONLY[@]}"; do
  case "$t" in
    base | room | operator | redis) ;;
    *) die "--only: unknown target '$t' (known: base room operator redis)" ;;
  esac
done
wants() {
  local t
  for t in "${ONLY[@]}"; do [[ "$t" == "$1" ]] && return 0; done
  return 1
}

# ---- temp dirs, removed on exit ---------------------------------------------------------------
TMP_DIRS=()
cleanup() {
  local d m
  for d in "${TMP_DIRS[@]}"; do
    [[ -d "$d" ]] || continue
    # A failed debootstrap can leave proc/sys mounted inside the rootfs: unmount before removing.
    while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done < <(awk -v p="$d/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r)
    rm -rf --one-file-system "$d" || log "warning: could not remove $d"
  done
}
trap cleanup EXIT
# new_tmp: a new temp dir in $NEW_TMP (a global, not printed: a $(...) subshell would lose the
# TMP_DIRS entry and leak the dir).
NEW_TMP=""
new_tmp() {
  NEW_TMP="$(mktemp -d "${TMPDIR:-/tmp}/streamroom-images.XXXXXX")"
  TMP_DIRS+=("$NEW_TMP")
}

since() { printf '%ss' "$((SECONDS - $1))"; }

# ---- 1. Docker engine -------------------------------------------------------------------------
dockerd_bin() {
  local p
  p="$(exe_path dockerd || true)"
  if [[ -z "$p" ]]; then
    for p in /usr/sbin/dockerd /usr/bin/dockerd ""; do if [[ -x "$p" ]]; then break; fi; done
  fi
  printf '%s\n' "$p"
}

ensure_engine() {
  docker_ok && return 0
  local dockerd
  dockerd="$(dockerd_bin)"
  if [[ -z "$DOCKER" || -z "$dockerd" ]]; then
    need_packages "${IMAGE_PACKAGES[@]}" || die "no Docker engine (see above)"
    pick_docker
    dockerd="$(dockerd_bin)"
    [[ -n "$DOCKER" && -n "$dockerd" ]] || die "docker.io is installed but there is no docker or dockerd"
    docker_ok && return 0
  fi
  if ! is_root; then
    if [[ -S /var/run/docker.sock ]]; then
      die "'$DOCKER info' fails: dockerd runs but $(id -un) may not use /var/run/docker.sock (run as root or join the docker group)"
    fi
    die "dockerd is not running: start it as root (setsid dockerd >/tmp/dockerd.log 2>&1 &) and rerun"
  fi
  local dir="$STREAMROOM_CACHE/docker" pid start=$SECONDS
  mkdir -p "$dir"
  if [[ -f "$dir/dockerd.pid" ]] && pid="$(cat "$dir/dockerd.pid")" && [[ "$pid" =~ ^[0-9]+$ ]] &&
    kill -0 "$pid" 2>/dev/null && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]]; then
    log "dockerd (pid $pid, started earlier by this script) is not answering yet; waiting"
  else
    log "starting dockerd (log: $dir/dockerd.log)"
    # setsid: dockerd gets a session of its own and outlives this script and its terminal. Without
    # job control a background job stays in this script's process group, so it is no group leader:
    # setsid does not fork and $! is dockerd's pid.
    setsid "$dockerd" >"$dir/dockerd.log" 2>&1 </dev/null &
    pid=$!
    printf '%s\n' "$pid" >"$dir/dockerd.pid"
  fi
  until docker_ok; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$dir/dockerd.log" >&2 || true
      die "dockerd exited; see $dir/dockerd.log"
    fi
    if ((SECONDS - start >= DOCKERD_TIMEOUT)); then
      tail -n 20 "$dir/dockerd.log" >&2 || true
      die "dockerd did not answer within ${DOCKERD_TIMEOUT}s; see $dir/dockerd.log"
    fi
    sleep 0.5
  done
  log "dockerd is up (pid $pid, $(since "$start"))"
}

image_present() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# DOCKER_BUILDKIT=1: the Dockerfiles use RUN --mount (secret, cache) and <Dockerfile>.dockerignore.
docker_build() { DOCKER_BUILDKIT=1 "$DOCKER" build "$@" >&2; }

image_id() { "$DOCKER" image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

# drop_replaced <old image ID> <tag>: after a rebuild moved <tag> to a new image, remove the old one
# if nothing else uses it (no other tag, no container; `docker rmi` without -f refuses otherwise).
drop_replaced() {
  [[ -n "$1" && "$1" != "$(image_id "$2")" ]] || return 0
  if "$DOCKER" rmi "$1" >/dev/null 2>&1; then log "removed the previous $2 (${1#sha256:})"; fi
}

# ---- 2a. debian:bookworm-slim -----------------------------------------------------------------
debian_arch() { dpkg --print-architecture 2>/dev/null || echo amd64; }

# Sets ROOTFS_TARBALL: the cached, slimmed rootfs tarball; made with debootstrap when missing.
ROOTFS_TARBALL=""
rootfs_tarball() {
  local arch key out
  arch="$(debian_arch)"
  key="$({
    printf '%s\n' "$ROOTFS_REV" "$SUITE" "$arch" "$DEBIAN_MIRROR" "$DEBIAN_SECURITY_MIRROR"
    (cd "$IMAGES_DIR/debian" && find . -type f | LC_ALL=C sort | while read -r f; do
      printf '%s\n' "$f"
      cat "$f"
    done)
  } | sha256sum | cut -c1-12)"
  out="$STREAMROOM_CACHE/images/debian-$SUITE-slim-$arch-$key.tar"
  if [[ -s "$out" && "$REFRESH_ROOTFS" -eq 0 ]]; then
    log "cached rootfs: $out"
    ROOTFS_TARBALL="$out"
    return 0
  fi
  is_root || die "making the Debian rootfs needs root (debootstrap, chroot); rerun as root"
  need_packages debootstrap=debootstrap || die "the Debian base image needs debootstrap (see above)"

  local tmp start=$SECONDS
  new_tmp
  tmp="$NEW_TMP"
  log "debootstrap --variant=minbase $SUITE from $DEBIAN_MIRROR (about 30-60 s; log: $tmp/debootstrap.log)"
  if ! debootstrap --variant=minbase --arch="$arch" "$SUITE" "$tmp/rootfs" "$DEBIAN_MIRROR" \
    >"$tmp/debootstrap.log" 2>&1; then
    tail -n 30 "$tmp/debootstrap.log" >&2 || true
    die "debootstrap failed"
  fi
  slim_rootfs "$tmp/rootfs"
  mkdir -p "$STREAMROOM_CACHE/images"
  tar --numeric-owner -C "$tmp/rootfs" -cf "$out.tmp" .
  mv -f "$out.tmp" "$out"
  log "rootfs made in $(since "$start"): $out ($(du -h "$out" | cut -f1))"
  ROOTFS_TARBALL="$out"
}

# Make a debootstrap minbase tree look like the official debian:*-slim image: apt sources for
# bookworm, -updates and -security; no apt lists or downloaded .debs; no docs (but copyrights),
# man pages, info pages or translations (and dpkg/apt config that keeps it so, from
# e2e/images/debian/overlay); no logs or host files (hostname, resolv.conf) left by debootstrap.
slim_rootfs() {
  local r="$1"
  cp -a "$IMAGES_DIR/debian/overlay/." "$r/"
  rm -f "$r/etc/apt/sources.list"
  cat >"$r/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $DEBIAN_SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "$r/var/lib/apt/lists" "$r/var/log/apt"
  mkdir -p "$r/var/lib/apt/lists/partial" "$r/var/log/apt"
  find "$r/var/cache/apt" -type f -delete
  find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$r/usr/share/doc" -mindepth 1 -depth -type d -empty -delete
  local d
  for d in man info groff linda lintian/overrides locale; do
    [[ -d "$r/usr/share/$d" ]] && find "$r/usr/share/$d" -mindepth 1 -delete
  done
  rm -f "$r/var/log/bootstrap.log" "$r/var/log/dpkg.log" "$r/var/log/alternatives.log" \
    "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old
  find "$r/tmp" "$r/var/tmp" -mindepth 1 -delete
  : >"$r/etc/resolv.conf"
  : >"$r/etc/hostname"
  [[ -x "$r/usr/bin/apt-get" && -e "$r/usr/share/keyrings/debian-archive-keyring.gpg" ]] ||
    die "the rootfs has no apt or no Debian archive keyring"
}

ensure_debian() {
  if image_present "$DEBIAN_IMAGE" && [[ "$REBUILD_BASE" -eq 0 ]]; then
    log "$DEBIAN_IMAGE: present"
    return 0
  fi
  local start=$SECONDS old
  old="$(image_id "$DEBIAN_IMAGE")"
  rootfs_tarball
  "$DOCKER" import \
    --change 'CMD ["bash"]' \
    --change "LABEL $LABEL_KEY=\"debootstrap --variant=minbase $SUITE, made by e2e/images/build.sh\"" \
    --message "e2e/images/build.sh: debootstrap minbase $SUITE (slim)" \
    "$ROOTFS_TARBALL" "$DEBIAN_IMAGE" >/dev/null
  log "$DEBIAN_IMAGE: imported ($(since "$start"))"
  drop_replaced "$old" "$DEBIAN_IMAGE"
}

# ---- 2b. node:20-bookworm-slim ----------------------------------------------------------------
ensure_node() {
  if image_present "$NODE_IMAGE" && [[ "$REBUILD_BASE" -eq 0 ]]; then
    log "$NODE_IMAGE: present"
    return 0
  fi
  ensure_debian
  local node npm_cli npm_dir version libs ctx old start=$SECONDS
  old="$(image_id "$NODE_IMAGE")"
  node="$(command -v node || true)"
  [[ -n "$node" ]] || die "no node on PATH: install Node.js $NODE_MAJOR (it is copied into $NODE_IMAGE)"
  node="$(readlink -f "$node")"
  version="$("$node" -p process.versions.node)"
  [[ "${version%%.*}" == "$NODE_MAJOR" ]] ||
    die "the host's node is $version ($node), not $NODE_MAJOR.x: put Node.js $NODE_MAJOR first on PATH to make $NODE_IMAGE"
  npm_cli="$(readlink -f "$(command -v npm || echo /nonexistent)")"
  if [[ "$npm_cli" == */bin/npm-cli.js ]]; then
    npm_dir="${npm_cli%/bin/npm-cli.js}"
  else
    npm_dir="$(dirname "$(dirname "$node")")/lib/node_modules/npm"
  fi
  [[ -f "$npm_dir/bin/npm-cli.js" && -f "$npm_dir/bin/npx-cli.js" ]] ||
    die "cannot find npm next to $node (looked in $npm_dir)"
  if libs="$(ldd "$node" 2>&1)"; then
    if grep -q 'not found' <<<"$libs"; then die "ldd $node: $libs"; fi
    log "node $version ($node) needs: $(awk '$1 !~ /^linux-vdso/ { printf "%s ", $1 }' <<<"$libs")"
  fi
  log "making $NODE_IMAGE from $DEBIAN_IMAGE + node $version + npm $("$node" "$npm_dir/bin/npm-cli.js" --version) ($npm_dir)"

  new_tmp
  ctx="$NEW_TMP"
  cp "$IMAGES_DIR/node/Dockerfile" "$IMAGES_DIR/node/docker-entrypoint.sh" "$ctx/"
  cp "$node" "$ctx/node"
  mkdir -p "$ctx/lib/node_modules"
  cp -a "$npm_dir" "$ctx/lib/node_modules/npm"
  if [[ -f "$(dirname "$npm_dir")/corepack/dist/corepack.js" ]]; then
    cp -a "$(dirname "$npm_dir")/corepack" "$ctx/lib/node_modules/corepack"
  fi
  docker_build --build-arg "NODE_VERSION=$version" --build-arg "BASE_IMAGE=$DEBIAN_IMAGE" \
    --label "$LABEL_KEY=host node $version and npm on $DEBIAN_IMAGE, made by e2e/images/build.sh" \
    -t "$NODE_IMAGE" "$ctx"
  log "$NODE_IMAGE: built ($(since "$start"))"
  drop_replaced "$old" "$NODE_IMAGE"
}

# ---- 2c. golang:<version>-bookworm --------------------------------------------------------------
# The room image builds its media relay in a Go stage (FROM golang:...): this machine's Go, on the
# Debian base, under the name of the official image of the same minor version.
GO_VERSION="$(go env GOVERSION 2>/dev/null | sed 's/^go//')"
GO_IMAGE="golang:$(cut -d. -f1,2 <<<"$GO_VERSION")-bookworm"

ensure_go() {
  [[ -n "$GO_VERSION" ]] || die "no go on PATH: install Go (it is copied into the relay's build image)"
  if image_present "$GO_IMAGE" && [[ "$REBUILD_BASE" -eq 0 ]]; then
    log "$GO_IMAGE: present"
    return 0
  fi
  ensure_debian
  local ctx old start=$SECONDS goroot
  old="$(image_id "$GO_IMAGE")"
  goroot="$(go env GOROOT)"
  log "making $GO_IMAGE from $DEBIAN_IMAGE + go $GO_VERSION ($goroot)"
  new_tmp
  ctx="$NEW_TMP"
  cp "$IMAGES_DIR/go/Dockerfile" "$ctx/"
  cp -a "$goroot" "$ctx/go"
  docker_build --build-arg "GO_VERSION=$GO_VERSION" --build-arg "BASE_IMAGE=$DEBIAN_IMAGE" \
    --label "$LABEL_KEY=host go $GO_VERSION on $DEBIAN_IMAGE, made by e2e/images/build.sh" \
    -t "$GO_IMAGE" "$ctx"
  log "$GO_IMAGE: built ($(since "$start"))"
  drop_replaced "$old" "$GO_IMAGE"
}

# ---- 3. room and operator ---------------------------------------------------------------------
build_app() { # <Dockerfile relative to the repo root> <tag> [docker build args...]
  local start=$SECONDS old args=(-f "$REPO_ROOT/$1" -t "$2" "${@:3}")
  old="$(image_id "$2")"
  if [[ -n "${NODE_EXTRA_CA_CERTS:-}" && -f "$NODE_EXTRA_CA_CERTS" ]]; then
    args+=(--secret "id=extra_ca,src=$NODE_EXTRA_CA_CERTS")
  fi
  log "building $2 from $1"
  docker_build "${args[@]}" "$REPO_ROOT"
  log "$2: built ($(since "$start"))"
  drop_replaced "$old" "$2"
}

# ---- 4. redis ---------------------------------------------------------------------------------
build_redis() {
  local start=$SECONDS old
  old="$(image_id "$REDIS_IMAGE")"
  log "building $REDIS_IMAGE from e2e/images/redis/Dockerfile"
  docker_build --build-arg "BASE_IMAGE=$DEBIAN_IMAGE" -t "$REDIS_IMAGE" "$IMAGES_DIR/redis"
  log "$REDIS_IMAGE: built ($(since "$start"))"
  drop_replaced "$old" "$REDIS_IMAGE"
}

# ---- main -------------------------------------------------------------------------------------
T0=$SECONDS
ensure_engine
# One build.sh at a time per cache (two would debootstrap or import the same base images at once).
# Taken after ensure_engine, so that no dockerd (started here or by docker.io's postinst) inherits it.
mkdir -p "$STREAMROOM_CACHE/images"
exec 9>"$STREAMROOM_CACHE/images/.build.lock"
if ! flock -n 9; then
  log "waiting for another e2e/images/build.sh to finish (lock: $STREAMROOM_CACHE/images/.build.lock)"
  flock 9
fi
if wants base || wants room || wants operator; then ensure_node; fi
if wants redis; then ensure_debian; fi
if wants room; then
  ensure_go
  build_app room-image/Dockerfile "$ROOM_IMAGE" --build-arg "GO_IMAGE=$GO_IMAGE"
fi
if wants operator; then build_app operator/Dockerfile "$OPERATOR_IMAGE"; fi
if wants redis; then build_redis; fi

BUILT=()
SHOWN=()
if wants base || wants room || wants operator; then SHOWN+=("$DEBIAN_IMAGE" "$NODE_IMAGE"); fi
if wants room; then SHOWN+=("$GO_IMAGE"); fi
if wants redis && ! wants base && ! wants room && ! wants operator; then SHOWN+=("$DEBIAN_IMAGE"); fi
if wants room; then BUILT+=("$ROOM_IMAGE"); fi
if wants operator; then BUILT+=("$OPERATOR_IMAGE"); fi
if wants redis; then BUILT+=("$REDIS_IMAGE"); fi
SHOWN+=("${BUILT[@]}")

if [[ -n "$SAVE_DIR" ]]; then
  if [[ ${#BUILT[@]} -gt 0 ]]; then
    "$IMAGES_DIR/save.sh" -o "$SAVE_DIR" "${BUILT[@]}" >/dev/null
  else
    log "--save: nothing built but base images; nothing saved"
  fi
fi

log "done in $(since "$T0")"
printf '%-36s %-14s %s\n' IMAGE ID SIZE
for img in "${SHOWN[@]}"; do
  "$DOCKER" image ls --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' "$img" |
    while read -r name id size; do printf '%-36s %-14s %s\n' "$name" "$id" "$size"; done
done
