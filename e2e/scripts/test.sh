#!/usr/bin/env bash
# `npm test`: every check of the project, from a clean clone. Installs what is missing (as root on
# Debian) or stops at once saying what to install. Arguments go to jest (e.g. a file name filter).
# shellcheck source=errors.sh
source "$(dirname "${BASH_SOURCE[0]}")/errors.sh" # set -Eeuo pipefail; says what failed
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit
# shellcheck source=preflight.sh
source e2e/scripts/preflight.sh

need_node
need_node_modules
# Everything is checked (and installed) before the long build, so a missing package stops the run at
# once rather than after it. The real-container pass on the local cluster also needs the real node's
# packages and binaries and Docker for the images.
packages=("${TEST_PACKAGES[@]}")
node_tools=()
if [[ "${STREAMROOM_REAL_E2E:-1}" != 0 && "$(cluster_mode)" == local ]]; then
  packages+=("${NODE_PACKAGES[@]}" "${IMAGE_PACKAGES[@]}")
  node_tools=("${NODE_TOOLS[@]}")
fi
need_packages "${packages[@]}" || exit 1
build_cluster "${node_tools[@]+"${node_tools[@]}"}"

log "lint and typecheck"
npm run --silent lint
npm run --silent typecheck
npm run --silent build

log "go test (the media relay and the viewer swarm)"
(cd room-image/media && go test -count=1 ./...)

# Two jest passes: everything that runs beside each other, then the suite whose pods run real
# containers (one such cluster per machine; it brings the cluster up itself, see e2e/src/cluster/dev.ts).
# Jest arguments (e.g. a file filter) go to both; STREAMROOM_REAL_E2E=0 skips the second pass.
reports=()
trap 'rm -f "${reports[@]}"' EXIT
status=0
pass() { # <label> <jest args...>
  local label="$1" report
  shift
  report=$(mktemp)
  reports+=("$report")
  log "jest: $label"
  # --forceExit: a test that fails half-way may leave a socket open; CI must end rather than hang.
  node --experimental-vm-modules node_modules/jest/bin/jest.js --forceExit --json --outputFile="$report" "$@" || status=1
}
pass "unit, room server, control plane" --selectProjects operator room-image e2e "$@"
if [[ "${STREAMROOM_REAL_E2E:-1}" != 0 ]]; then
  pass "real containers" --selectProjects e2e-real --runInBand --passWithNoTests "$@"
fi
# shellcheck disable=SC2016 # (JavaScript, not shell)
# The summary names every failed test (and suite that failed to run), so the end of a CI log says what.
node -e '
  let passed = 0, failed = 0;
  const what = [];
  for (const f of process.argv.slice(1)) {
    try {
      const r = JSON.parse(require("fs").readFileSync(f, "utf8"));
      passed += r.numPassedTests;
      failed += r.numFailedTests;
      for (const s of r.testResults) {
        const file = require("path").relative(process.cwd(), s.name);
        const tests = s.assertionResults.filter((a) => a.status === "failed");
        for (const a of tests) what.push(`  ${file}: ${a.fullName}`);
        if (tests.length || s.status !== "failed") continue;
        const lines = (s.message || "").split("\n").map((l) => l.trim());
        what.push(`  ${file}: ${lines.find((l) => l && !l.startsWith("●")) ?? "failed to run"}`);
      }
    } catch (err) {
      what.push(`  no report in ${f}: ${err.message}`);
    }
  }
  console.log(`jest: ${passed} passed, ${failed} failed`);
  if (what.length) console.log(`failed:\n${what.join("\n")}`);
' "${reports[@]}" || true
exit "$status"
