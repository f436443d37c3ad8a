#!/usr/bin/env bash
# The C client library (clients/c/, clients/README.md), as `make test` runs
# it, in an existing build directory (configured by scripts/test.sh):
#   1. builds the client's targets there (nothing else);
#   2. its CTest tests: the cmocka unit tests of the pure state machine and
#      WebSocket codec (mwc_proto, mwc_ws), two clients matched on foreign
#      libuv and libev loops against a real server (mwc_foreign_loops), and
#      the installed copy
#      (mwc_install_pkgconfig: cmake --install into a scratch prefix, then a
#      program built with `pkg-config --cflags --libs matchwire-client`);
#   3. the client conformance kit against its adapter, plain ws:// (every
#      scenario) and wss:// (the core set), through scripts/client-kit.sh's
#      adapter mode; reports in BUILD/client-kit/c/{plain,tls}/.
# Exit non-zero when any step fails (a MUST failure included). About 90 s.
#
#   scripts/client-c.sh [BUILD]        (default: $BUILD, else build)
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-${BUILD:-build}}
JOBS=${JOBS:-2}
failed=()

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    echo "client-c.sh: $BUILD is not a configured build directory" >&2
    exit 2
fi
echo "== C client: build ($BUILD)"
cmake --build "$BUILD" -j "$JOBS" --target matchwire-client mwc-kit-adapter mwc-find-match \
    test_mwc_proto test_mwc_ws test_mwc_client foreign_loop_uv foreign_loop_ev matchwire-server >/dev/null || { echo "client-c.sh: build failed" >&2; exit 1; }

# make test's own ctest step has run them already (CLIENT_C_CTEST=0 there).
if [ "${CLIENT_C_CTEST:-1}" != 0 ]; then
    echo "== C client: unit tests and the installed copy (ctest -R '^mwc_')"
    ctest --test-dir "$BUILD" -R '^mwc_' --output-on-failure || failed+=(ctest)
fi

echo "== C client: conformance kit (plain and TLS)"
BUILD="$BUILD" scripts/client-kit.sh adapter c "$BUILD/clients/c/mwc-kit-adapter" || failed+=(kit)

if [ ${#failed[@]} -gt 0 ]; then
    echo "client-c.sh: FAILED: ${failed[*]}"
    exit 1
fi
echo "client-c.sh: passed (unit tests, installed copy, kit plain and TLS)"
