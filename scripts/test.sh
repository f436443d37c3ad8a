#!/usr/bin/env bash
# `make test`: configure, build (warnings are errors), run the unit tests
# (ctest), then the conformance suite against the reference server(s) it
# starts itself. Ends with the runners' own summary lines.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
JOBS=${JOBS:-2}
PYTHON=${PYTHON:-/usr/bin/python3}

cmake -S . -B "$BUILD" -DMW_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$JOBS"

# Unit tests, vector replays and corpus replays.
ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS"

# Conformance suite against the reference server (added as it exists).
if [ -x scripts/conformance.sh ] && [ -x "$BUILD/reference/matchwire-server" ]; then
    BUILD="$BUILD" PYTHON="$PYTHON" scripts/conformance.sh
fi
