#!/usr/bin/env bash
# The JavaScript client's tests (clients/js/, what `make test` runs for it):
#   1. npm ci in clients/js when node_modules is missing or stale;
#   2. the type declarations checked by tsc (a TypeScript program that uses them);
#   3. node --test: unit tests (the decoder against spec/vectors, the client's
#      duties against a scripted WebSocket, tokens) and the client against the
#      reference server ($BUILD/reference/matchwire-server: matched pairs,
#      401 and 4003 with a refresh callback);
#   4. the demo page in headless Chromium: two tabs matched together, and a
#      third tab that survives a server restart mid-queue (Redis deployment,
#      a redis-server on a free loopback port); screenshots in $BUILD/client-js/;
#   5. the client conformance kit through the JS adapter, plain ws:// and wss://
#      (scripts/client-kit.sh adapter js ...; reports in $BUILD/client-kit/js/).
# Every stage runs even when an earlier one failed; exit non-zero if any did.
# Needs the server built in $BUILD (default build). About 75-85 s on a loaded
# 2-core machine. Env: BUILD, PYTHON (/usr/bin/python3), CHROMIUM.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
export PYTHON BUILD
JS=clients/js
SERVER=$BUILD/reference/matchwire-server
OUT=$BUILD/client-js
failed=()
t0=$SECONDS

if ! cmp -s "$JS/package-lock.json" "$JS/node_modules/.mw-lock"; then
    echo "== client-js: npm ci"
    (cd "$JS" && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.mw-lock) ||
        { echo "client-js: npm ci failed"; exit 1; }
fi
mkdir -p "$OUT"

echo "== client-js: type declarations (tsc --noEmit test/types-check.ts)"
if (cd "$JS" && node node_modules/typescript/bin/tsc -p test/tsconfig.json); then
    echo "client-js: the declarations type-check"
else
    failed+=(types)
fi

echo "== client-js: node --test (unit, reference server)"
if [ ! -x "$SERVER" ]; then
    echo "client-js: no server at $SERVER (build it first); the server tests will be skipped"
fi
MATCHWIRE_SERVER=$PWD/$SERVER timeout 120 node --test --test-reporter=spec \
    "$JS/test/unit.test.mjs" "$JS/test/server.test.mjs" >"$OUT/node-test.log" 2>&1
rc=$?
grep -E '^ *(✔|✖|﹣)|^ℹ (tests|pass|fail|skipped)' "$OUT/node-test.log" | grep -v '^  ' || true
if [ "$rc" -ne 0 ]; then
    grep -A30 -m3 '✖' "$OUT/node-test.log" | tail -60
    failed+=(node-test)
fi

echo "== client-js: the demo page in headless Chromium (screenshots in $OUT)"
if [ -x "$SERVER" ]; then
    timeout 150 node "$JS/test/browser-demo.mjs" "$SERVER" "$OUT" || failed+=(browser)
else
    echo "client-js: FAIL: no server at $SERVER"
    failed+=(browser)
fi

echo "== client-js: client conformance kit (plain and TLS)"
scripts/client-kit.sh adapter js "node $JS/test/kit-adapter.mjs" || failed+=(kit)

echo "client-js: $((SECONDS - t0)) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "client-js: FAILED: ${failed[*]}"
    exit 1
fi
echo "client-js: passed (unit, server, types, browser, kit plain + TLS)"
