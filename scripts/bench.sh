#!/usr/bin/env bash
# bench.sh: Courier's benchmarks, side by side in one run on this machine.
#  1. Go benchmarks of the hot paths (every module's Benchmark* functions).
#  2. Fan-out cost: the real binaries on private emulators with 1, 2 and 4
#     ws-edge pods; `courierctl bench` posts at a fixed rate and receives on
#     WebSockets; we record end-to-end latency and the CPU seconds the edges
#     spent (every pod receives every delivery without targeted routing),
#     once without and once with targeted routing (BENCH_ROUTING="off on");
#     with it, the edges' count of deliveries routed elsewhere is what a GCP
#     subscription filter keeps away (the emulator applies no filter).
# Results go to .run/bench/ and are summarised on stdout; docs/benchmarks.md
# quotes a run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=.run/bench; mkdir -p "$OUT"
RATE="${BENCH_RATE:-100}"; DURATION="${BENCH_DURATION:-20s}"; USERS="${BENCH_USERS:-40}"
EDGE_COUNTS="${BENCH_EDGES:-1 2 4}"; COUNT="${BENCH_COUNT:-5}"; ROUTING_MODES="${BENCH_ROUTING:-off on}"
GO_BENCH="${BENCH_GO:-1}" # 0 skips the Go benchmarks

make -s build >/dev/null
BIN=.run/bin
export EMULATOR_DIR="$PWD/$OUT/emulators" PUBSUB_PORT=8285 FIRESTORE_PORT=8286
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/emulators.sh stop "$EMULATOR_DIR" >/dev/null 2>&1 || true
}
trap cleanup EXIT
scripts/emulators.sh start "$EMULATOR_DIR"
eval "$(scripts/emulators.sh env)"

if [ "$GO_BENCH" != 0 ]; then
  echo "== Go benchmarks (count=$COUNT; the emulator-backed ones use the emulators above)"
  for m in $(scripts/modules.sh); do
    (cd "$m" && GOOGLE_CLOUD_PROJECT=bench-go COURIER_REQUIRE_EMULATORS=1 go test -run '^$' -bench . -benchmem -count "$COUNT" ./... 2>&1 | grep -E '^(Benchmark|pkg:)' || true)
  done | tee "$OUT/go-bench.txt"
fi
export AUTH_HS256_SECRET=bench-secret-0123456789abcdef LOG_LEVEL=warn

cpu_seconds() { # pid → user+system CPU seconds
  awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"
}
wait_ready() {
  for _ in $(seq 300); do curl -fsS -m 1 "http://$1/readyz" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "bench: $1 not ready" >&2; return 1
}

printf '\n== Fan-out cost: %s msg/s for %s, %s users, 200-byte payloads\n' "$RATE" "$DURATION" "$USERS" | tee "$OUT/fanout.txt"
printf '%-8s %-6s %-10s %-10s %-10s %-10s %-8s %-16s %-14s %-16s\n' routing edges accepted delivered e2e_p50 e2e_p99 lost edge_cpu_s_total cpu_ms/1k_msg routed_elsewhere | tee -a "$OUT/fanout.txt"
metric_sum() { # addr metric → sum of its samples
  curl -fsS -m 2 "http://$1/metrics" 2>/dev/null | awk -v m="$2" '$1==m || index($1, m"{")==1 {s+=$2} END{print s+0}'
}
# The first run warms the emulators' JVMs (the Firestore emulator's first
# writes take over a second); it is discarded.
RUNS="warmup:off"
for routing in $ROUTING_MODES; do for n in $EDGE_COUNTS; do RUNS="$RUNS $n:$routing"; done; done
for run in $RUNS; do
  n=${run%%:*}; routing=${run##*:}
  label=$n; [ "$n" = warmup ] && n=1
  flag=false; [ "$routing" = on ] && flag=true
  export WORKER_TARGETED_ROUTING=$flag EDGE_TARGETED_ROUTING=$flag
  export GOOGLE_CLOUD_PROJECT="bench-$n-$routing-$(date +%s)"
  "$BIN/courierctl" provision >/dev/null
  PIDS=()
  HTTP_ADDR=127.0.0.1:18080 GRPC_ADDR=127.0.0.1:19090 RATE_LIMIT_PER_SECOND=100000 RATE_LIMIT_BURST=100000 \
    "$BIN/api-gateway" 2>"$OUT/gateway-$n.log" & PIDS+=($!)
  HTTP_ADDR=127.0.0.1:18083 "$BIN/pipeline-worker" 2>"$OUT/worker-$n.log" & PIDS+=($!)
  EDGES=(); EDGE_PIDS=()
  for i in $(seq 1 "$n"); do
    port=$((18100 + i))
    HTTP_ADDR=127.0.0.1:$port POD_NAME="bench-$i" "$BIN/ws-edge" 2>"$OUT/edge-$n-$i.log" & PIDS+=($!); EDGE_PIDS+=($!)
    EDGES+=("127.0.0.1:$port")
  done
  wait_ready 127.0.0.1:18080; wait_ready 127.0.0.1:18083
  for e in "${EDGES[@]}"; do wait_ready "$e"; done
  before=0; for p in "${EDGE_PIDS[@]}"; do before=$(awk -v a="$before" -v b="$(cpu_seconds "$p")" 'BEGIN{print a+b}'); done
  edges_csv=$(IFS=,; echo "${EDGES[*]}")
  "$BIN/courierctl" bench -gateway http://127.0.0.1:18080 -edges "$edges_csv" -users "$USERS" -rate "$RATE" \
    -duration "$DURATION" -json >"$OUT/bench-$n-$routing.json" || true
  after=0; for p in "${EDGE_PIDS[@]}"; do after=$(awk -v a="$after" -v b="$(cpu_seconds "$p")" 'BEGIN{print a+b}'); done
  received=0; elsewhere=0
  for e in "${EDGES[@]}"; do
    received=$((received + $(metric_sum "$e" courier_ws_edge_deliveries_received_total | cut -d. -f1)))
    elsewhere=$((elsewhere + $(metric_sum "$e" courier_ws_edge_deliveries_routed_elsewhere_total | cut -d. -f1)))
  done
  [ "$label" = warmup ] || python3 - "$OUT/bench-$n-$routing.json" "$n" "$before" "$after" "$routing" "$received" "$elsewhere" <<'PY' | tee -a "$OUT/fanout.txt"
import json, sys
r = json.load(open(sys.argv[1])); n = sys.argv[2]; cpu = float(sys.argv[4]) - float(sys.argv[3])
routing, received, elsewhere = sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
per_k = cpu * 1000 / max(r["Delivered"], 1) * 1000
share = f"{elsewhere}/{received} ({100 * elsewhere / max(received, 1):.0f}%)"
print(f'{routing:<8} {n:<6} {r["Accepted"]:<10} {r["Delivered"]:<10} {r["EndToEnd"]["P50"]:<10.1f} {r["EndToEnd"]["P99"]:<10.1f} {r["Lost"]:<8} {cpu:<16.2f} {per_k:<14.1f} {share:<16}')
PY
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait "${PIDS[@]}" 2>/dev/null || true
  PIDS=()
done
echo "results in $OUT/"
