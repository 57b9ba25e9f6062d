#!/usr/bin/env bash
# test.sh: every test of every module, against emulators this script starts
# (on their own ports, so a `make run` stack is left alone) and always stops.
set -euo pipefail
cd "$(dirname "$0")/.."

export EMULATOR_DIR="${EMULATOR_DIR:-$PWD/.run/test-emulators}"
export PUBSUB_PORT="${TEST_PUBSUB_PORT:-8185}" FIRESTORE_PORT="${TEST_FIRESTORE_PORT:-8186}"
trap 'scripts/emulators.sh stop "$EMULATOR_DIR"' EXIT
scripts/emulators.sh start "$EMULATOR_DIR"
eval "$(scripts/emulators.sh env)"
export COURIER_REQUIRE_EMULATORS=1
# The demo client's browser test needs Chromium: install it when absent, and
# make its absence a failure rather than a skip.
scripts/ensure-tool.sh chromium >/dev/null
export COURIER_REQUIRE_CHROMIUM=1
# tests/e2e TestJSClient runs the JavaScript client's integration tests with
# node: install Node.js and the client's pinned packages when absent.
scripts/js.sh deps
# Tests make their own projects; this one only keeps stray clients off prod.
export GOOGLE_CLOUD_PROJECT=courier-test

RACE="${RACE:--race}"
status=0
for m in $(scripts/modules.sh); do
  echo "== go test $m"
  (cd "$m" && go test $RACE -count=1 -timeout 20m ${GOTESTFLAGS:-} ./...) || status=1
done
scripts/fuzz.sh || status=1 # every fuzz target for FUZZTIME (8s) each; a crash fails
# The benchmark in its quick mode, as a smoke test: it fails only when a
# phase errors or a frame is mis-delivered, missing, duplicated or out of
# order, never on timing. It starts
# emulators of its own.
echo "== bench smoke (scripts/bench.sh --quick)"
env -u PUBSUB_EMULATOR_HOST -u FIRESTORE_EMULATOR_HOST scripts/bench.sh --quick || status=1
exit $status
