#!/usr/bin/env bash
# Write `docker save` tarballs of images, one per image, e.g. to load them into another container
# runtime (containerd: `ctr -n k8s.io images import FILE`; kind: `kind load image-archive FILE`).
#
#   e2e/images/save.sh [-o DIR] [IMAGE...]
#
# IMAGE defaults to the room, operator and redis images (same names and env overrides as build.sh).
# DIR defaults to $STREAMROOM_CACHE/images/save. Files are named after the image reference
# (streamroom/room:0.1.0 -> DIR/streamroom_room_0.1.0.tar); a tarball whose image ID has not
# changed since it was written (recorded in FILE.id) is kept as is. Prints the tarballs' paths,
# one per line, on stdout; progress goes to stderr.
# shellcheck source-path=SCRIPTDIR source=../scripts/errors.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/errors.sh" # set -Eeuo pipefail; says what failed

# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

dir="$STREAMROOM_CACHE/images/save"
images=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -o | --output)
      [[ $# -ge 2 ]] || die "$1 needs a directory"
      dir="$2"
      shift 2
      ;;
    -h | --help)
      sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    -*) die "unknown option: $1 (see --help)" ;;
    *) images+=("$1"); shift ;;
  esac
done
[[ ${#images[@]} -gt 0 ]] || images=("$ROOM_IMAGE" "$OPERATOR_IMAGE" "$REDIS_IMAGE")
docker_ok || die "'${DOCKER:-docker} info' fails: no Docker engine (e2e/images/build.sh starts one)"

mkdir -p "$dir"
for img in "${images[@]}"; do
  id="$("$DOCKER" image inspect --format '{{.Id}}' "$img" 2>/dev/null)" ||
    die "no image $img (build it with e2e/images/build.sh)"
  file="$dir/$(tr '/:@' '___' <<<"$img").tar"
  if [[ -s "$file" && -f "$file.id" && "$(cat "$file.id")" == "$id" ]]; then
    log "$img: $file is up to date"
  else
    log "$img: docker save -> $file"
    rm -f "$file.id"
    "$DOCKER" save -o "$file.tmp" "$img"
    chmod 0644 "$file.tmp"
    mv -f "$file.tmp" "$file"
    printf '%s\n' "$id" >"$file.id"
  fi
  printf '%s\n' "$file"
done
