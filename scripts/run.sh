#!/usr/bin/env bash
# `make run`: starts the reference server from BUILD_DIR on 127.0.0.1:8080,
# in memory (the embedded default). Extra arguments go to the server.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
shift || true
BIN="$BUILD/reference/matchwire-server"
if [ ! -x "$BIN" ]; then
    echo "run: $BIN not built (make build)" >&2
    exit 1
fi
echo "Demo page:  http://127.0.0.1:8080/   (open it in two tabs, press Find match in each)"
echo "WebSocket:  ws://127.0.0.1:8080/realtime (subprotocol matchwire.v1)"
echo "Stop with Ctrl-C."
exec "$BIN" --listen 127.0.0.1:8080 "$@"
