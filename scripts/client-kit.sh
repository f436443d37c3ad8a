#!/usr/bin/env bash
# The client conformance kit against the example client (called by
# scripts/test.sh): every scenario against the clean client (all must pass),
# then each of the example client's faults against the scenarios of the rule
# it breaks (each must be caught). Prints the kit's own lines and ends with
# "client faults caught: N/M". Needs no build: Python 3 with Debian's
# python3-websockets only. Scenarios run concurrently (CLIENT_KIT_JOBS,
# default 12); about a minute on a 2-core machine. Exit non-zero when the
# clean run fails or a fault is missed. Env: PYTHON (/usr/bin/python3),
# CLIENT_KIT_JOBS, CLIENT_KIT_REPORT (a directory for the clean run's report).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/usr/bin/python3}
JOBS=${CLIENT_KIT_JOBS:-12}
args=(--jobs "$JOBS")
if [ -n "${CLIENT_KIT_REPORT:-}" ]; then
    args+=(--report "$CLIENT_KIT_REPORT")
fi
echo "== client kit: matrix (every client.md MUST has a scenario)"
"$PYTHON" conformance/client/run --matrix | tail -3 || exit 1
echo "== client kit: example client, clean and with each fault"
exec timeout 400 "$PYTHON" conformance/client/run-faults "${args[@]}"
