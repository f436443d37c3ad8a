#!/usr/bin/env bash
# The client conformance kit (conformance/client/), two modes.
#
#   scripts/client-kit.sh                               (spec/testing.md TST-068)
#       The kit against its example client (called by scripts/test.sh):
#       every scenario against the clean client (all must pass; also the
#       core set over wss:// and the token scenarios with the query form),
#       then each of the example client's faults against the scenarios of
#       the rule it breaks (each must be caught). Prints the kit's own lines
#       and ends with "client faults caught: N/M". About 45 s on a loaded
#       2-core machine.
#
#   scripts/client-kit.sh adapter NAME "CMD"            (spec/testing.md TST-071)
#       The kit against any client's adapter CMD (spec/testing.md TST-060..,
#       e.g. "node clients/js/test/kit-adapter.mjs"): every scenario over
#       plain ws://, then the core set over wss:// (--tls --only core, a
#       throwaway CA made for the run, TST-069). Reports (report.html,
#       report.json, report.xml) and the kit's full output (kit.log) go to
#       ${BUILD:-build}/client-kit/NAME/plain/ and .../tls/; the failures and
#       the kit's summary line of each run are printed. About 50 s with the
#       example adapter (the backoff-cap scenario alone takes 30 to 50 s).
#
# Exit non-zero when the clean run fails or a fault is missed (first mode),
# or when any MUST fails in either run (adapter mode). Needs no build:
# Python 3 with Debian's python3-websockets and the openssl command only.
# Env: PYTHON (/usr/bin/python3), CLIENT_KIT_JOBS (scenarios at once,
# default 16, adapter mode 12), CLIENT_KIT_REPORT (first mode: a directory
# for the clean run's report), BUILD (adapter mode: the build directory).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
PYTHON=${PYTHON:-/usr/bin/python3}

usage() {
    echo "usage: scripts/client-kit.sh [adapter NAME \"CMD\"]" >&2
    exit 2
}

# One kit run of the adapter mode: $1 label, $2 report dir, then the kit's
# arguments. Prints what did not pass and the summary line.
kit_run() {
    local label=$1 dir=$2
    shift 2
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "== client kit: $NAME, $label"
    local t0=$SECONDS rc
    timeout 300 "$PYTHON" conformance/client/run --client-cmd "$CMD" --jobs "$JOBS" --report "$dir" "$@" \
        >"$dir/kit.log" 2>&1
    rc=$?
    grep -v '^PASS ' "$dir/kit.log" | grep -v '^matchwire client report:' || true
    if [ "$rc" -eq 124 ]; then
        echo "client kit ($NAME, $label): timed out after 300 s"
    fi
    echo "client kit ($NAME, $label): exit $rc in $((SECONDS - t0)) s; report $dir/report.html"
    return "$rc"
}

if [ $# -eq 0 ]; then
    JOBS=${CLIENT_KIT_JOBS:-16}
    args=(--jobs "$JOBS")
    if [ -n "${CLIENT_KIT_REPORT:-}" ]; then
        args+=(--report "$CLIENT_KIT_REPORT")
    fi
    echo "== client kit: matrix (every client.md MUST has a scenario)"
    "$PYTHON" conformance/client/run --matrix | tail -3 || exit 1
    echo "== client kit: example client, clean (plain, TLS core, token as access_token) and with each fault"
    exec timeout 400 "$PYTHON" conformance/client/run-faults "${args[@]}"
fi

if [ "$1" != adapter ] || [ $# -ne 3 ]; then
    usage
fi
NAME=$2
CMD=$3
case "$NAME" in
    "" | *[!A-Za-z0-9._-]* | .*) echo "client-kit.sh: NAME must be letters, digits, . _ - (got '$NAME')" >&2; exit 2 ;;
esac
[ -n "$CMD" ] || usage
JOBS=${CLIENT_KIT_JOBS:-12}
OUT=${BUILD:-build}/client-kit/$NAME
status=0
kit_run "plain ws://, every scenario" "$OUT/plain" || status=1
kit_run "wss://, the core set" "$OUT/tls" --tls --only core || status=1
if [ "$status" -ne 0 ]; then
    echo "client kit ($NAME): FAILED (a MUST failed, see the reports above)"
else
    echo "client kit ($NAME): passed, plain and over TLS"
fi
exit "$status"
