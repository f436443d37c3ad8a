#!/usr/bin/env bash
# `make test`: configure and build (warnings are errors), then
#   1. ctest: unit tests, vector replays, corpus replays, Redis integration
#      tests (each starts its own redis-server), server smoke, format check;
#   2. fuzz smoke: each libFuzzer harness ~15 s (seed logged, input kept on failure);
#   3. bench smoke: a short open-loop run that asserts nothing was lost or duplicated
#      (never a speed threshold);
#   4. the short fault suite (scripts/faults.sh short);
#   5. the client conformance kit against its example client and its faults,
#      then against the reference clients (clients/c, clients/js: node tests,
#      the demo page in headless Chromium), plain and over wss://;
#   6. the conformance suite against reference servers it starts (memory, then
#      Redis with two gateways and a worker), and against the selftest faults.
# Every stage runs even when an earlier one failed; the exit status is non-zero
# if any failed. The output ends with the runners' own summary lines.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
JOBS=${JOBS:-2}
PYTHON=${PYTHON:-/usr/bin/python3}
export PYTHON
failed=()

cmake -S . -B "$BUILD" -DMW_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
cmake --build "$BUILD" -j "$JOBS" || exit 1

ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" || failed+=(ctest)

if [ "${MW_SKIP_FUZZ:-0}" != 1 ]; then
    FUZZ_SECONDS=${FUZZ_SECONDS:-15} scripts/fuzz.sh smoke || failed+=(fuzz-smoke)
fi

if [ "${MW_SKIP_BENCH:-0}" != 1 ]; then
    scripts/bench.sh smoke "$BUILD" || failed+=(bench-smoke)
fi

if [ ${#failed[@]} -gt 0 ]; then
    echo "make test: failed so far: ${failed[*]} (the conformance suite runs anyway)"
fi
# The short fault suite (faults/README.md): Redis killed and frozen, the
# worker killed (also between commit and publish), a gateway stopped, all
# under load; pipelining, slowloris, fragment floods. `make faults` is the
# long one.
scripts/faults.sh short "$BUILD" || failed+=(faults)
# The client conformance kit against its example client, clean and with
# each switchable fault ("client faults caught: N/M").
scripts/client-kit.sh || failed+=(client-kit)
# The reference clients against the kit, plain and over wss:// (reports in
# $BUILD/client-kit/{c,js}/); the C client's unit, install and foreign-loop
# tests ran in ctest above.
CLIENT_C_CTEST=0 BUILD="$BUILD" scripts/client-c.sh "$BUILD" || failed+=(client-c)
BUILD="$BUILD" scripts/client-js.sh || failed+=(client-js)
BUILD="$BUILD" scripts/conformance.sh || failed+=(conformance)

[ ${#failed[@]} -eq 0 ]
