#!/usr/bin/env bash
# emulators.sh start|stop|status|env [DIR]
# emulators.sh restart DIR pubsub|firestore
#
# Starts the Pub/Sub and Firestore emulators from the Google Cloud CLI, each in
# its own process group, waits until both answer, and records what it started
# in DIR (default .run/emulators). `stop` signals exactly those process groups
# (the gcloud launchers leave the java process behind otherwise). `env` prints
# the export lines for the client variables.
#
# Ports: PUBSUB_PORT (default 8085), FIRESTORE_PORT (default 8086).
set -euo pipefail
cd "$(dirname "$0")/.."

cmd="${1:-}"
DIR="${2:-${EMULATOR_DIR:-.run/emulators}}"
PUBSUB_PORT="${PUBSUB_PORT:-8085}"
FIRESTORE_PORT="${FIRESTORE_PORT:-8086}"
PROJECT="${GOOGLE_CLOUD_PROJECT:-courier-local}"

answers() { curl -fsS -m 2 "http://127.0.0.1:$1/" >/dev/null 2>&1; }

wait_ready() { # name port pidfile log
  local deadline=$((SECONDS + 60))
  until answers "$2"; do
    if ! kill -0 "$(cat "$3")" 2>/dev/null; then
      echo "emulators: $1 exited during start; its log ($4):" >&2; tail -20 "$4" >&2; exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "emulators: $1 did not answer on 127.0.0.1:$2 within 60 s; log: $4" >&2; tail -20 "$4" >&2; exit 1
    fi
    sleep 0.2
  done
}

start_one() { # name port -- command...
  local name=$1 port=$2; shift 3
  local pidfile="$DIR/$name.pid" log="$DIR/$name.log"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && answers "$port"; then
    echo "emulators: $name already running on 127.0.0.1:$port" >&2; return
  fi
  if answers "$port"; then
    echo "emulators: port $port already answers but was not started by this script; stop it or set ${name^^}_PORT" >&2; exit 1
  fi
  # setsid gives the launcher its own process group, so stop can end the JVM too.
  setsid "$@" >"$log" 2>&1 < /dev/null &
  echo $! >"$pidfile"
  wait_ready "$name" "$port" "$pidfile" "$log"
  echo "emulators: $name ready on 127.0.0.1:$port" >&2
}

stop_one() {
  local pidfile="$DIR/$1.pid"
  [ -f "$pidfile" ] || return 0
  local pid; pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  echo "emulators: $1 stopped" >&2
}

case "$cmd" in
  start)
    scripts/ensure-tool.sh java >/dev/null
    scripts/ensure-tool.sh gcloud >/dev/null
    SDK="$(gcloud info --format='value(installation.sdk_root)')"
    mkdir -p "$DIR"
    start_one pubsub "$PUBSUB_PORT" -- "$SDK/platform/pubsub-emulator/bin/cloud-pubsub-emulator" \
      --host=127.0.0.1 --port="$PUBSUB_PORT"
    start_one firestore "$FIRESTORE_PORT" -- "$SDK/platform/cloud-firestore-emulator/cloud_firestore_emulator" \
      start --host=127.0.0.1 --port="$FIRESTORE_PORT"
    echo "$PUBSUB_PORT" >"$DIR/pubsub.port"; echo "$FIRESTORE_PORT" >"$DIR/firestore.port"
    ;;
  stop)
    stop_one pubsub; stop_one firestore ;;
  restart)
    # Stops one emulator and starts it again on the port it had. The
    # emulators keep no state: topics, subscriptions, messages (or
    # documents) are gone afterwards, as after a real emulator crash.
    name="${3:-}"
    case "$name" in pubsub|firestore) ;; *) echo "usage: $0 restart DIR pubsub|firestore" >&2; exit 2 ;; esac
    port="$(cat "$DIR/$name.port")"
    stop_one "$name"
    SDK="$(gcloud info --format='value(installation.sdk_root)')"
    if [ "$name" = pubsub ]; then
      start_one pubsub "$port" -- "$SDK/platform/pubsub-emulator/bin/cloud-pubsub-emulator" --host=127.0.0.1 --port="$port"
    else
      start_one firestore "$port" -- "$SDK/platform/cloud-firestore-emulator/cloud_firestore_emulator" \
        start --host=127.0.0.1 --port="$port"
    fi ;;
  status)
    for n in pubsub firestore; do
      if [ -f "$DIR/$n.pid" ] && kill -0 "$(cat "$DIR/$n.pid")" 2>/dev/null; then
        echo "$n: running (pgid $(cat "$DIR/$n.pid"), port $(cat "$DIR/$n.port" 2>/dev/null))"
      else echo "$n: stopped"; fi
    done ;;
  env)
    echo "export PUBSUB_EMULATOR_HOST=127.0.0.1:$PUBSUB_PORT"
    echo "export FIRESTORE_EMULATOR_HOST=127.0.0.1:$FIRESTORE_PORT"
    echo "export GOOGLE_CLOUD_PROJECT=$PROJECT" ;;
  *) echo "usage: $0 start|stop|status|env [DIR] | restart DIR pubsub|firestore" >&2; exit 2 ;;
esac
