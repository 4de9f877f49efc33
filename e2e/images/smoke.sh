#!/usr/bin/env bash
# Smoke-test the images e2e/images/build.sh made, with plain `docker run` (no cluster):
#   room:     read-only root filesystem, uid 1000: /healthz, /readyz, the page, its JS and CSS;
#             then a second room on a Redis backplane (ROOM_REDIS_URL) must become ready;
#   operator: --help exits 0 and prints its flags (all modules load);
#   redis:    read-only root filesystem with a tmpfs /tmp, uid 999: PING -> PONG on a published
#             port; and with the operator's arguments (--requirepass, --dir /data) as uid 999.
# Containers and the network get a name with this script's pid and are removed at exit.
# Same image names and environment as build.sh. Exit status 0 when every check passed.
# shellcheck source-path=SCRIPTDIR source=../scripts/errors.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/errors.sh" # set -Eeuo pipefail; says what failed

# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

docker_ok || die "'${DOCKER:-docker} info' fails: no Docker engine (e2e/images/build.sh starts one)"
for img in "$ROOM_IMAGE" "$OPERATOR_IMAGE" "$REDIS_IMAGE"; do
  "$DOCKER" image inspect "$img" >/dev/null 2>&1 || die "no image $img: run e2e/images/build.sh first"
done

P="streamroom-smoke-$$"
CONTAINERS=()
NETWORK=""
cleanup() {
  local c
  for c in "${CONTAINERS[@]}"; do "$DOCKER" rm -f "$c" >/dev/null 2>&1 || true; done
  [[ -z "$NETWORK" ]] || "$DOCKER" network rm "$NETWORK" >/dev/null 2>&1 || true
}
trap cleanup EXIT

FAILED=0
pass() { log "ok   $*"; }
fail() {
  log "FAIL $*"
  FAILED=1
}

c=""
run() { # <name> <docker run args...>: detached, named $P-<name>, in $c; removed at exit
  c="$P-$1"
  shift
  CONTAINERS+=("$c")
  "$DOCKER" run -d --name "$c" "$@" >/dev/null
}

host_port() { # <container> <container port>: the 127.0.0.1 port docker published it on
  "$DOCKER" port "$1" "$2/tcp" | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p' | head -n1
}

wait_http() { # <url> <timeout s>: until it answers 200
  local i
  for ((i = 0; i < $2 * 5; i++)); do
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

redis_cmd() { # <port> <command words...>: one RESP command over bash's /dev/tcp, prints the reply line
  local port="$1" reply
  shift
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  local req="*$#"$'\r\n' w
  for w in "$@"; do req+="\$${#w}"$'\r\n'"$w"$'\r\n'; done
  printf '%s' "$req" >&3
  IFS= read -r -t 5 reply <&3 || reply=""
  exec 3<&- 3>&-
  printf '%s\n' "${reply%$'\r'}"
}

wait_redis() { # <port> <timeout s>: until it accepts connections
  local i
  for ((i = 0; i < $2 * 5; i++)); do
    [[ -n "$(redis_cmd "$1" PING 2>/dev/null)" ]] && return 0
    sleep 0.2
  done
  return 1
}

logs_on_failure() { "$DOCKER" logs --tail 20 "$1" 2>&1 | sed 's/^/    /' >&2; }

ROOM_ENV=(-e ROOM_NAME=smoke -e ROOM_NAMESPACE=default -e ROOM_BROADCASTER_KEY=abcdefghijklmnop)

# ---- room ---------------------------------------------------------------------------------------
run room --read-only --user 1000:1000 -p 127.0.0.1::8080 "${ROOM_ENV[@]}" "$ROOM_IMAGE"
port="$(host_port "$c" 8080)"
base="http://127.0.0.1:$port"
if wait_http "$base/healthz" 20; then
  pass "room: /healthz (read-only, uid $("$DOCKER" exec "$c" id -u))"
  if [[ "$(curl -fsS "$base/readyz")" == ready* ]]; then pass "room: /readyz"; else fail "room: /readyz"; fi
  page="$(curl -fsS "$base/")"
  js="$(grep -o 'src="/[^"]*\.js"' <<<"$page" | head -n1 | cut -d'"' -f2)"
  css="$(grep -o 'href="/[^"]*\.css"' <<<"$page" | head -n1 | cut -d'"' -f2)"
  if [[ -n "$js" && -n "$css" ]]; then pass "room: / links $js and $css"; else fail "room: / has no script or stylesheet"; fi
  for asset in "$js" "$css"; do
    [[ -n "$asset" ]] || continue
    out="$(curl -fsS -o /dev/null -w '%{http_code} %{content_type} %{size_download}' "$base$asset" || true)"
    if [[ "$out" == 200\ * ]]; then pass "room: $asset -> $out bytes"; else fail "room: $asset -> ${out:-no answer}"; fi
  done
else
  fail "room: /healthz did not answer"
  logs_on_failure "$c"
fi

# ---- operator -----------------------------------------------------------------------------------
if out="$("$DOCKER" run --rm --read-only "$OPERATOR_IMAGE" --help 2>&1)" && grep -q -- '--default-image' <<<"$out"; then
  pass "operator: --help"
else
  fail "operator: --help"
  tail -n 20 <<<"$out" | sed 's/^/    /' >&2
fi

# ---- redis --------------------------------------------------------------------------------------
run redis --read-only --tmpfs /tmp --user 999:999 -p 127.0.0.1::6379 "$REDIS_IMAGE"
port="$(host_port "$c" 6379)"
if wait_redis "$port" 10 && [[ "$(redis_cmd "$port" PING)" == +PONG ]]; then
  pass "redis: PING -> PONG on 127.0.0.1:$port (read-only, tmpfs /tmp, uid 999)"
  if [[ "$(redis_cmd "$port" SET k v)" == +OK ]]; then pass "redis: SET"; else fail "redis: SET"; fi
else
  fail "redis: no PONG on 127.0.0.1:$port"
  logs_on_failure "$c"
fi

# As the operator runs a room's own Redis (see buildRedisDeployment in operator/src/builders.ts),
# with a room on it as its backplane.
NETWORK="$P"
"$DOCKER" network create "$NETWORK" >/dev/null
run backplane --network "$NETWORK" --network-alias redis --read-only --user 999:999 \
  --cap-drop ALL --security-opt no-new-privileges --tmpfs /data:uid=999,gid=999 \
  -p 127.0.0.1::6379 "$REDIS_IMAGE" --port 6379 --requirepass smoke-password --save '' \
  --appendonly no --dir /data --maxmemory 96mb --maxmemory-policy noeviction
port="$(host_port "$c" 6379)"
if wait_redis "$port" 10 && [[ "$(redis_cmd "$port" AUTH smoke-password)" == +OK ]]; then
  pass "redis: operator arguments (--requirepass, --dir /data, cap-drop ALL)"
else
  fail "redis: operator arguments"
  logs_on_failure "$c"
fi
run room-backplane --network "$NETWORK" --read-only --user 1000:1000 -p 127.0.0.1::8080 \
  "${ROOM_ENV[@]}" -e ROOM_REDIS_URL=redis://:smoke-password@redis:6379 "$ROOM_IMAGE"
port="$(host_port "$c" 8080)"
if wait_http "http://127.0.0.1:$port/readyz" 20; then
  pass "room on the Redis backplane: /readyz"
else
  fail "room on the Redis backplane: not ready"
  logs_on_failure "$c"
fi

if [[ "$FAILED" -ne 0 ]]; then die "smoke test failed"; fi
log "all checks passed"
