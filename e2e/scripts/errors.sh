# Sourced first by every entry script under e2e/ and .ci/ (a test checks that each one does): no
# script ends without saying what failed. It turns on `set -Eeuo pipefail` and an ERR trap that
# prints the script, line and command that failed, and the functions it was in.
#   source "<repo>/e2e/scripts/errors.sh"
# shellcheck shell=bash

set -Eeuo pipefail

_streamroom_on_err() {
  local rc="$1" cmd="$2" i
  # Only where a failure ends the script: with `set +e` (best-effort cleanup) a failed command is
  # expected and handled by the code itself.
  [[ $- == *e* ]] || return 0
  echo "streamroom: FAILED (exit $rc) at ${BASH_SOURCE[1]:-?}:${BASH_LINENO[0]}: $cmd" >&2
  for ((i = 1; i < ${#FUNCNAME[@]} - 1; i++)); do
    echo "streamroom:   in ${FUNCNAME[$i]}() called at ${BASH_SOURCE[$((i + 1))]}:${BASH_LINENO[$i]}" >&2
  done
}
trap '_streamroom_on_err $? "$BASH_COMMAND"' ERR

# run_logged <log file> <command...>: runs a step whose output is too long to show but must not be
# lost: everything goes to the log file, and when the step fails its last 40 lines are printed.
run_logged() {
  local logfile="$1" rc=0
  shift
  mkdir -p "$(dirname "$logfile")"
  "$@" >>"$logfile" 2>&1 || rc=$?
  if [[ $rc != 0 ]]; then
    echo "streamroom: '$*' failed (exit $rc); the last lines of $logfile:" >&2
    tail -n 40 "$logfile" | sed 's/^/  | /' >&2
  fi
  return "$rc"
}
