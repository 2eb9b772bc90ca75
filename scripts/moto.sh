#!/usr/bin/env bash
# Starts or stops a moto_server for Graven's `aws` tests.
#
#   eval "$(scripts/moto.sh start)"   # prints `export GRAVEN_MOTO_ENDPOINT=...`
#   cargo test -p graven-tests --features aws
#   scripts/moto.sh stop
#
# Without GRAVEN_MOTO_ENDPOINT, the test binary starts (and stops) its own moto_server.
set -euo pipefail

MOTO_VERSION=5.2.1
PORT="${GRAVEN_MOTO_PORT:-5000}"
DIR="${TMPDIR:-/tmp}/graven-moto"
PIDFILE="$DIR/moto-$PORT.pid"

case "${1:-}" in
  start)
    mkdir -p "$DIR"
    if ! command -v moto_server >/dev/null 2>&1; then
      python3 -m pip install --quiet "moto[server]==$MOTO_VERSION" >&2
    fi
    if [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "moto_server already runs on port $PORT (pid $(cat "$PIDFILE"))" >&2
    else
      nohup moto_server -H 127.0.0.1 -p "$PORT" >"$DIR/moto-$PORT.log" 2>&1 &
      echo $! >"$PIDFILE"
      for _ in $(seq 1 100); do
        if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/moto-api/', timeout=1)" 2>/dev/null; then
          break
        fi
        sleep 0.2
      done
    fi
    echo "export GRAVEN_MOTO_ENDPOINT=http://127.0.0.1:$PORT"
    ;;
  stop)
    if [[ -f "$PIDFILE" ]]; then
      pid="$(cat "$PIDFILE")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 25); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
      done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$PIDFILE"
    fi
    ;;
  reset)
    python3 -c "import urllib.request; urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:$PORT/moto-api/reset', method='POST'))"
    ;;
  *)
    echo "usage: $0 start|stop|reset" >&2
    exit 2
    ;;
esac
