#!/usr/bin/env bash
# bench.sh [--quick] [courier-bench flags…]: Courier's benchmark, one report.
#
# Builds the services and cmd/courier-bench, then runs it: private emulators
# on free ports, the emulators' raw limits, the system end to end (open
# loop), the worker alone, the edge alone, the Go benchmarks; results,
# report.md and charts in .run/bench/<timestamp>/ (docs/benchmarks.md
# explains them). --quick (or BENCH_QUICK=1) runs every phase small, in
# under two minutes: `make test` uses it as a smoke test that fails only
# when a phase errors or a message is unaccounted for (never on timing).
#
# Environment: BENCH_BASELINE=<git rev> also builds that revision and
# measures it side by side (ratios new/old); BENCH_PHASES=raw,e2e,worker,
# edge,go runs a subset; BENCH_GO=0 skips the Go benchmarks;
# BENCH_PUBSUB_PORT / BENCH_FIRESTORE_PORT pin the emulators' ports;
# BENCH_PEER=1 also runs the group fan-out on a well-known peer, centrifugo
# (built once from tools/centrifugo into .tools/bin, several minutes), with
# and without history. Shortening a run (docs/benchmarks.md): BENCH_REPEATS
# (rounds, 3 full), BENCH_STEP (30s full), BENCH_EXTEND, BENCH_NO_BURST=1,
# BENCH_E2E_LADDER, BENCH_E2E_GROUP_LADDER, BENCH_EDGE_GROUP_LADDER,
# BENCH_EDGE_ONE_LADDER, BENCH_IDLE (comma-separated).
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
for a in "$@"; do
  case "$a" in
    --quick) args+=(-quick) ;;
    *) args+=("$a") ;;
  esac
done
make -s build >/dev/null
go build -o .run/bin/courier-bench ./cmd/courier-bench
if [ "${BENCH_PEER:-0}" != 0 ]; then
  if [ ! -x .tools/bin/centrifugo ]; then
    echo "bench: building centrifugo (tools/centrifugo) once into .tools/bin" >&2
    (cd tools/centrifugo && GOWORK=off go build -o ../../.tools/bin/centrifugo github.com/centrifugal/centrifugo/v6)
  fi
  args+=(-peer .tools/bin/centrifugo)
fi
exec .run/bin/courier-bench -repo . -bin .run/bin -out .run/bench "${args[@]}"
