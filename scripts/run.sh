#!/usr/bin/env bash
# `make run`: builds the server quietly (the full output only when the build
# fails), then starts it from BUILD_DIR on 127.0.0.1:8080, in memory (the
# embedded default). Extra arguments go to the server.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
shift || true
BIN="$BUILD/reference/matchwire-server"
LOG=$(mktemp /tmp/mw-run-build.XXXXXX)
trap 'rm -f "$LOG"' EXIT
echo "Building matchwire-server in $BUILD ..."
if ! { cmake -S . -B "$BUILD" -DMW_WERROR=ON && \
       cmake --build "$BUILD" -j "${JOBS:-2}" --target matchwire-server; } >"$LOG" 2>&1; then
    cat "$LOG" >&2
    echo "run: the build failed (output above)" >&2
    exit 1
fi
echo "Demo page:  http://127.0.0.1:8080/   (open it in two tabs, press Find match in each)"
echo "WebSocket:  ws://127.0.0.1:8080/realtime (subprotocol matchwire.v1)"
echo "Stop with Ctrl-C."
exec "$BIN" --listen 127.0.0.1:8080 "$@"
