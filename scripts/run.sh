#!/usr/bin/env bash
# run.sh [stop]: the whole Courier system on this machine, on the emulators:
# Pub/Sub + Firestore emulators, the topology, one api-gateway, one
# pipeline-worker and two ws-edge pods (and Jaeger when it was built with
# `make traces-build`). Logs go to .run/logs/. Ctrl-C (or `make stop`) stops
# everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=.run; BIN=$RUN/bin; LOGS=$RUN/logs; PIDS=$RUN/pids
mkdir -p "$LOGS" "$PIDS"

stop_services() {
  for f in "$PIDS"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f"); kill -TERM "$pid" 2>/dev/null || true
  done
  for f in "$PIDS"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$f"
  done
  scripts/emulators.sh stop "$RUN/emulators" || true
}

if [ "${1:-}" = "stop" ]; then stop_services; exit 0; fi

for b in api-gateway pipeline-worker ws-edge courierctl; do
  [ -x "$BIN/$b" ] || { echo "run: $BIN/$b is missing; run 'make build' (make run does)" >&2; exit 1; }
done

export GOOGLE_CLOUD_PROJECT="${GOOGLE_CLOUD_PROJECT:-courier-local}"
export PUBSUB_PORT="${PUBSUB_PORT:-8085}" FIRESTORE_PORT="${FIRESTORE_PORT:-8086}"
trap stop_services EXIT
trap 'exit 0' INT TERM
scripts/emulators.sh start "$RUN/emulators"
eval "$(scripts/emulators.sh env)"

# Development settings: an HS256 secret, and DEV_TOKENS=true for the dev
# token endpoint of the demo client. Never use either in production
# (values-prod.yaml uses AUTH_JWKS_URL with AUTH_ISSUER and AUTH_AUDIENCE).
export AUTH_HS256_SECRET="${AUTH_HS256_SECRET:-courier-dev-secret-not-for-production}"
export DEV_TOKENS=true
export LOG_LEVEL="${LOG_LEVEL:-info}"
GW_PORT=8080; GRPC_PORT=9090; WORKER_PORT=8083; EDGE_A_PORT=8081; EDGE_B_PORT=8082
# Metrics listeners (ADMIN_ADDR; :9464 in a pod, where each service is alone): one port each here.
GW_ADMIN=9464; WORKER_ADMIN=9465; EDGE_A_ADMIN=9466; EDGE_B_ADMIN=9467
ORIGINS="http://localhost:$EDGE_A_PORT,http://localhost:$EDGE_B_PORT,http://127.0.0.1:$EDGE_A_PORT,http://127.0.0.1:$EDGE_B_PORT"

if [ -x .tools/bin/jaeger ]; then
  setsid .tools/bin/jaeger >"$LOGS/jaeger.log" 2>&1 < /dev/null & echo $! > "$PIDS/jaeger.pid"
  export OTEL_EXPORTER_OTLP_ENDPOINT="${OTEL_EXPORTER_OTLP_ENDPOINT:-http://127.0.0.1:4317}"
  TRACES="traces:            Jaeger query API http://localhost:16686/api/traces (scripts/trace-view.py TRACE_ID renders one; docs/tracing.md)"
else
  TRACES="traces:            no local viewer (build one once with 'make traces-build', ~10 min)"
fi

"$BIN/courierctl" provision

start() { # name env... -- binary
  local name=$1; shift
  env "$@" >"$LOGS/$name.log" 2>&1 < /dev/null & echo $! > "$PIDS/$name.pid"
}
start api-gateway HTTP_ADDR=127.0.0.1:$GW_PORT ADMIN_ADDR=127.0.0.1:$GW_ADMIN GRPC_ADDR=127.0.0.1:$GRPC_PORT CORS_ALLOWED_ORIGINS="$ORIGINS" "$BIN/api-gateway"
start pipeline-worker HTTP_ADDR=127.0.0.1:$WORKER_PORT ADMIN_ADDR=127.0.0.1:$WORKER_ADMIN "$BIN/pipeline-worker"
start ws-edge-a HTTP_ADDR=127.0.0.1:$EDGE_A_PORT ADMIN_ADDR=127.0.0.1:$EDGE_A_ADMIN POD_NAME=local-a GATEWAY_URL=http://localhost:$GW_PORT WS_ALLOWED_ORIGINS="localhost:$EDGE_A_PORT,localhost:$EDGE_B_PORT,127.0.0.1:$EDGE_A_PORT,127.0.0.1:$EDGE_B_PORT" "$BIN/ws-edge"
start ws-edge-b HTTP_ADDR=127.0.0.1:$EDGE_B_PORT ADMIN_ADDR=127.0.0.1:$EDGE_B_ADMIN POD_NAME=local-b GATEWAY_URL=http://localhost:$GW_PORT WS_ALLOWED_ORIGINS="localhost:$EDGE_A_PORT,localhost:$EDGE_B_PORT,127.0.0.1:$EDGE_A_PORT,127.0.0.1:$EDGE_B_PORT" "$BIN/ws-edge"

wait_ready() {
  local name=$1 url=$2 deadline=$((SECONDS + 60))
  until curl -fsS -m 2 "$url" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "run: $name not ready at $url; see $LOGS/$name.log" >&2; tail -20 "$LOGS/$name.log" >&2; exit 1; fi
    if ! kill -0 "$(cat "$PIDS/$name.pid")" 2>/dev/null; then echo "run: $name exited; see $LOGS/$name.log" >&2; tail -20 "$LOGS/$name.log" >&2; exit 1; fi
    sleep 0.2
  done
}
wait_ready api-gateway http://127.0.0.1:$GW_PORT/readyz
wait_ready pipeline-worker http://127.0.0.1:$WORKER_PORT/readyz
wait_ready ws-edge-a http://127.0.0.1:$EDGE_A_PORT/readyz
wait_ready ws-edge-b http://127.0.0.1:$EDGE_B_PORT/readyz

cat <<EOT

Courier is running on the emulators (project $GOOGLE_CLOUD_PROJECT).
  demo client:       http://localhost:$EDGE_A_PORT/   (and http://localhost:$EDGE_B_PORT/ — the second edge pod)
  REST API:          http://localhost:$GW_PORT/v1/messages   (OpenAPI: http://localhost:$GW_PORT/v1/openapi.yaml)
  gRPC API:          localhost:$GRPC_PORT (courier.v1.Messages)
  metrics:           http://localhost:$GW_ADMIN/metrics (gateway), :$WORKER_ADMIN (worker), :$EDGE_A_ADMIN and :$EDGE_B_ADMIN (edges)
  $TRACES
  logs:              $LOGS/
  a token:           AUTH_HS256_SECRET=$AUTH_HS256_SECRET $BIN/courierctl token alice
Ctrl-C stops everything.
EOT
# Exit (and clean up) as soon as any service dies, or on Ctrl-C.
while :; do
  for f in "$PIDS"/*.pid; do
    if ! kill -0 "$(cat "$f")" 2>/dev/null; then echo "run: $(basename "$f" .pid) exited; see $LOGS/" >&2; exit 1; fi
  done
  sleep 1
done
