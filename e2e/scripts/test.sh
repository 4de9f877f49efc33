#!/usr/bin/env bash
# `npm test`: every check of the project, from a clean clone. Installs what is missing (as root on
# Debian) or stops at once saying what to install. Arguments go to jest (e.g. a file name filter).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=preflight.sh
source e2e/scripts/preflight.sh

need_node
need_node_modules
need_apt chromium chromium
need_apt lua5.4 lua5.4 # runs the Argo CD health check of examples/gitops
need_apt redis-server redis-server # the backplane tests of room-image
build_cluster

log "lint and typecheck"
npm run --silent lint
npm run --silent typecheck
npm run --silent build

log "jest"
report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
# --forceExit: a test that fails half-way may leave a socket open; CI must end rather than hang.
node --experimental-vm-modules node_modules/jest/bin/jest.js --forceExit --json --outputFile="$report" "$@" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests} failed`);
' "$report" || true
exit "$status"
