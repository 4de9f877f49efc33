#!/usr/bin/env bash
# Build one of our tiny images from a static Go program in this directory, without any registry or
# docker: the binary is packed by hand into a docker-archive tar (manifest.json + config + one
# layer), which `ctr images import` (or `docker load`) reads. Prints the tar's path.
#
#   e2e/cluster/node/image.sh pause     # streamroom/pause:3.10     (the pod sandbox image)
#   e2e/cluster/node/image.sh nettest   # streamroom/nettest:0.1.0  (HTTP server + probes for smoke-node.sh)
#
# Reproducible: fixed timestamps/owners and a -trimpath build, so the same sources give the same
# image ID (load-images.sh then skips the import). Cached in $STREAMROOM_CACHE/images/ keyed by a
# hash of the sources and the Go version.
# shellcheck source=../../scripts/errors.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/errors.sh" # set -Eeuo pipefail; says what failed

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/../lib.sh
source "$HERE/../lib.sh"

name="${1:-}"
case "$name" in
  pause) ref=streamroom/pause:3.10 entrypoint='["/pause"]' cmd='null' ;;
  nettest) ref=streamroom/nettest:0.1.0 entrypoint='["/nettest"]' cmd='["serve"]' ;;
  *) echo "usage: $0 pause|nettest" >&2; exit 2 ;;
esac

hash="$( (cd "$HERE" && cat go.mod "$name"/*.go image.sh; go env GOVERSION) | sha256sum | cut -c1-12)"
out_dir="$STREAMROOM_CACHE/images"
out="$out_dir/$name-$hash.tar"
if [[ -s "$out" ]]; then echo "$out"; exit 0; fi

mkdir -p "$out_dir"
work="$(mktemp -d "$out_dir/.build-$name.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs" "$work/image"
(cd "$HERE/$name" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -ldflags='-s -w' -o "$work/rootfs/$name" .)
chmod 0755 "$work/rootfs/$name"

tar_repro() { tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=ustar "$@"; }
tar_repro -C "$work/rootfs" -cf "$work/layer.tar" "$name"
layer_sha="$(sha256sum <"$work/layer.tar" | cut -d' ' -f1)"
mkdir -p "$work/image/$layer_sha"
mv "$work/layer.tar" "$work/image/$layer_sha/layer.tar"

printf '%s' "{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":\"1970-01-01T00:00:00Z\",\
\"config\":{\"Env\":[\"PATH=/\"],\"Entrypoint\":$entrypoint,\"Cmd\":$cmd,\"WorkingDir\":\"/\"},\
\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$layer_sha\"]},\
\"history\":[{\"created\":\"1970-01-01T00:00:00Z\",\"created_by\":\"e2e/cluster/node/image.sh $name\"}]}" \
  >"$work/config.json"
config_sha="$(sha256sum <"$work/config.json" | cut -d' ' -f1)"
mv "$work/config.json" "$work/image/$config_sha.json"
printf '%s' "[{\"Config\":\"$config_sha.json\",\"RepoTags\":[\"$ref\"],\"Layers\":[\"$layer_sha/layer.tar\"]}]" \
  >"$work/image/manifest.json"
tar_repro -C "$work/image" -cf "$work/image.tar" manifest.json "$config_sha.json" "$layer_sha"
mv -f "$work/image.tar" "$out"
find "$out_dir" -maxdepth 1 -name "$name-*.tar" ! -path "$out" -delete # older builds
echo "$out"
