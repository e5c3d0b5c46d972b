#!/usr/bin/env bash
# The quick start: set up .venv, start `schedsearch serve` on the embedded default (SQLite in .schedsearch/demo/,
# a local Ray, the digits task) in the background, create a token, submit the example job over REST with a live
# progress bar, print the results table and the plot's path, then stop the server. Safe to run again.
#
#   scripts/demo.sh [JOB_FILE]        (default: examples/digits-demo.json; DEMO_PORT=8000 to pick the port)
set -euo pipefail
cd "$(dirname "$0")/.."

JOB_FILE=${1:-examples/digits-demo.json}
# A data directory of its own: the demo owns the SQLite file and the local Ray head recorded there, and
# leaves a `schedsearch serve` of yours (default .schedsearch/) alone.
DATA_DIR=.schedsearch/demo
LOG="$DATA_DIR/server.log"
PLOT="$DATA_DIR/plot.png"

scripts/setup.sh
. .venv/bin/activate
mkdir -p "$DATA_DIR"

# The embedded default, whatever the calling shell has set: SQLite in $DATA_DIR, a local Ray, the dispatcher
# inside the server.
unset SCHEDSEARCH_DATABASE_URL SCHEDSEARCH_RAY_ADDRESS SCHEDSEARCH_TOKEN
export SCHEDSEARCH_DATA_DIR="$DATA_DIR" SCHEDSEARCH_EMBEDDED_DISPATCHER=true SCHEDSEARCH_HOST=127.0.0.1
# A free port unless DEMO_PORT names one, so a server already on 8000 does not get in the way.
SCHEDSEARCH_PORT=${DEMO_PORT:-$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
export SCHEDSEARCH_PORT
export SCHEDSEARCH_URL="http://127.0.0.1:$SCHEDSEARCH_PORT"

# The embedded dispatcher starts a local Ray head and records it in $DATA_DIR/ray/head.json, so that a
# restarted server finds it again. The demo stops it at the end, and stops one left by an interrupted run.
stop_local_ray() {
  python - "$DATA_DIR/ray/head.json" <<'PY'
import sys
from pathlib import Path

from workers import raycluster

path = Path(sys.argv[1])
node = raycluster.load_node(path)
if node is not None and raycluster.is_running(node):
    raycluster.stop_node(node)
    print(f"stopped the local Ray head (process group {node.pgid})")
path.unlink(missing_ok=True)
PY
}
stop_local_ray

schedsearch migrate

echo "starting schedsearch serve on $SCHEDSEARCH_URL (log: $LOG)"
schedsearch serve >"$LOG" 2>&1 &
SERVER_PID=$!
stop_server() {
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "stopping the server (pid $SERVER_PID)"
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    # Give uvicorn and the local Ray time to shut down cleanly, then insist.
    for _ in $(seq 1 60); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 1; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "the server did not stop within 60 s; killing it" >&2
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  stop_local_ray
}
trap stop_server EXIT
trap 'exit 130' INT TERM

for i in $(seq 1 120); do
  if python -c "import httpx, sys; sys.exit(0 if httpx.get('$SCHEDSEARCH_URL/healthz', timeout=2).is_success else 1)" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null || [ "$i" = 120 ]; then
    echo "the server did not come up; last lines of $LOG:" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
  sleep 1
done

# `token create` prints the new token alone on its last line.
SCHEDSEARCH_TOKEN=$(schedsearch token create --user demo | tail -n 1)
export SCHEDSEARCH_TOKEN

# A fresh machine needs about two minutes on two cores; --max-wait stops waiting if something is stuck.
schedsearch submit "$JOB_FILE" --wait --max-wait 1200 --plot "$PLOT"
