#!/usr/bin/env bash
# Runs one k6 load-test scenario against a local Portcullis stack made of
# real components (registry with generated signed images, Notary, Redis,
# N verifiers, the gateway), prints a results table and writes the results
# JSON under .local/loadtest/results/. See loadtest/README.md.
#
#   loadtest/run.sh SCENARIO [--verifiers N] [--rate R] [--duration D] [options]
#   SCENARIO: warm | mixed | rollout | cold | deny | static | baseline
#   loadtest/run.sh --help      all options
#
# Environment: PORTCULLIS_NO_BUILD=1 (or --no-build) skips
# `cargo build --release --workspace`; PORTCULLIS_BIN_DIR uses other
# binaries; K6=/path/to/k6; PORTCULLIS_LOG sets the components' log filter;
# PORTCULLIS_VERIFIER_ARGS adds flags to every verifier (e.g. --verdict-ttl-secs 5).
set -euo pipefail
cd "$(dirname "$0")/.."

args=()
build=1
[ "${PORTCULLIS_NO_BUILD:-0}" = 1 ] && build=0
for a in "$@"; do
  case "$a" in
    --no-build) build=0; args+=("$a") ;;
    -h|--help) exec python3 loadtest/stack.py --help ;;
    *) args+=("$a") ;;
  esac
done
if [ ${#args[@]} -eq 0 ]; then
  python3 loadtest/stack.py --help
  exit 2
fi

bash scripts/install-deps.sh >&2
if [ "$build" = 1 ] && [ -z "${PORTCULLIS_BIN_DIR:-}" ]; then
  PROTOC=${PROTOC:-/usr/bin/protoc} cargo build --release --workspace >&2
fi

# stack.py stops every process it started on exit, on SIGINT/SIGTERM/SIGHUP
# (and its children die with it through PR_SET_PDEATHSIG); the trap makes
# sure it is told when this script is.
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM HUP
.local/venv/bin/python loadtest/stack.py "${args[@]}" &
pid=$!
set +e
wait "$pid"
rc=$?
set -e
pid=
exit "$rc"
