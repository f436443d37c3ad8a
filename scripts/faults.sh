#!/usr/bin/env bash
# The fault suite (faults/README.md, issue 11). Usage:
#
#   scripts/faults.sh short [BUILD]   # `make test` (a few minutes)
#   scripts/faults.sh long  [BUILD]   # `make faults` (under ~15 minutes)
#
# 1. The conformance suite's `faults` profile (spec/testing.md TST-018..025)
#    against a reference deployment it starts: one redis-server, two api
#    gateways and one worker (--channel redis), with the harness hooks
#    --redis-pause-cmd / --redis-resume-cmd (kill -STOP / -CONT of Redis,
#    TST-019) and --worker-kill-cmd / --worker-start-cmd (kill -9 of the
#    worker, then a new one with the same flags, TST-023). Skipped with
#    MW_FAULTS_CONFORMANCE=0.
# 2. faults/run.py --suite short|long: the fault scenarios over real
#    processes (Redis kill -9 and SIGSTOP, worker kill -9 and the
#    commit/publish failpoint, gateway SIGTERM, HTTP pipelining, slowloris,
#    fragment floods), with stage 1's verdict as one more row. Its last line
#    is `faults: N passed, M failed`. MW_FAULTS_AUTH=1 passes --auth: every
#    run with auth on (spec/auth.md; faults/README.md "Auth mode"). Stage 1
#    runs with auth off either way.
#
# BUILD (default: $BUILD or build) holds reference/matchwire-server and
# reference/matchwire-server-failpoints. Everything started here is stopped
# on exit (trap), Ctrl-C included. Exit non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-short}
BUILD=${2:-${BUILD:-build}}
PYTHON=${PYTHON:-/usr/bin/python3}
SERVER="$BUILD/reference/matchwire-server"
case "$MODE" in short|long) ;; *) echo "usage: $0 short|long [BUILD]"; exit 2 ;; esac

TMP=$(mktemp -d /tmp/mw-faults-conf.XXXXXX)
PIDS=()
cleanup() {
    local p i
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for i in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    PIDS=()
    for f in "$TMP/worker.pid" "$TMP/redis.pid"; do
        [ -f "$f" ] && { kill -CONT "$(cat "$f")" 2>/dev/null; kill -9 "$(cat "$f")" 2>/dev/null; }
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port, wait_healthy
. scripts/lib.sh

conf_verdict=skip
if [ "${MW_FAULTS_CONFORMANCE:-1}" != 0 ]; then
    conf_verdict=fail
    RP=$(free_port); WP=$(free_port); P1=$(free_port); P2=$(free_port)
    R="redis://127.0.0.1:$RP/2"
    FLAGS=(--channel redis --redis "$R" --ticket-ttl 5 --grace 1 --assigned-ttl 3 --idle-timeout 2
           --max-connections 60 --rate 1000 --rate-burst 2000 --outbound-max-messages 64
           --queue-size conf3=3 --log-level 1)
    redis-server --port "$RP" --bind 127.0.0.1 --dir "$TMP" --save '' --appendonly yes \
        --appendfsync everysec --daemonize yes --pidfile "$TMP/redis.pid" --logfile "$TMP/redis.log"
    for i in $(seq 50); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done
    # Gateway 1 reaches Redis through the suite's RESP proxy (TST-030, TST-032):
    # test_faults_backend.py drops and holds chosen commands with it.
    "$PYTHON" conformance/resp_proxy.py --listen 127.0.0.1:0 --upstream "127.0.0.1:$RP" \
        --control 127.0.0.1:0 >"$TMP/proxy.out" 2>"$TMP/proxy.log" & PIDS+=($!)
    for i in $(seq 50); do grep -q RESP-PROXY "$TMP/proxy.out" && break; sleep 0.1; done
    read -r _ PXP PXC < "$TMP/proxy.out"
    # The worker is (re)started by a hook; its pid file is what the kill hook reads.
    cat > "$TMP/start-worker.sh" <<SH
#!/usr/bin/env bash
"$SERVER" --listen 127.0.0.1:$WP --role worker ${FLAGS[*]} >>"$TMP/worker.log" 2>&1 &
echo \$! > "$TMP/worker.pid"
for i in \$(seq 100); do
    "$PYTHON" -c 'import sys,urllib.request; urllib.request.urlopen("http://127.0.0.1:$WP/healthz", timeout=1)' \
        2>/dev/null && exit 0
    sleep 0.1
done
exit 1
SH
    cat > "$TMP/kill-worker.sh" <<SH
#!/usr/bin/env bash
p=\$(cat "$TMP/worker.pid") || exit 1
kill -9 "\$p" || exit 1
for i in \$(seq 100); do kill -0 "\$p" 2>/dev/null || exit 0; sleep 0.05; done
exit 1
SH
    chmod +x "$TMP/start-worker.sh" "$TMP/kill-worker.sh"
    "$TMP/start-worker.sh" || echo "faults: the worker did not turn healthy"
    "$SERVER" --listen "127.0.0.1:$P1" --role api "${FLAGS[@]/#$R/redis://127.0.0.1:$PXP/2}" \
        >"$TMP/api1.log" 2>&1 & PIDS+=($!)
    "$SERVER" --listen "127.0.0.1:$P2" --role api "${FLAGS[@]}" >"$TMP/api2.log" 2>&1 & PIDS+=($!)
    wait_healthy "http://127.0.0.1:$P1" 15 && wait_healthy "http://127.0.0.1:$P2" 15 \
        || echo "faults: a gateway never answered /healthz 200"
    if "$PYTHON" conformance/run --url "ws://127.0.0.1:$P1/realtime" --url2 "ws://127.0.0.1:$P2/realtime" \
        --redis "$R" --profile faults --testee-config conformance/reference-testee.json \
        --redis-pause-cmd "kill -STOP \$(cat $TMP/redis.pid)" \
        --redis-resume-cmd "kill -CONT \$(cat $TMP/redis.pid)" \
        --worker-kill-cmd "$TMP/kill-worker.sh" --worker-start-cmd "$TMP/start-worker.sh" \
        --redis-proxy "127.0.0.1:$PXC" --report "$BUILD/conformance-faults"; then
        conf_verdict=pass
    else
        mkdir -p "$BUILD/conformance-faults"
        cp "$TMP"/*.log "$BUILD/conformance-faults/" 2>/dev/null
        echo "faults: conformance profile faults failed; server and redis logs in $BUILD/conformance-faults/"
    fi
fi
cleanup
trap - EXIT INT TERM

AUTH_ARG=()
[ "${MW_FAULTS_AUTH:-0}" = 1 ] && AUTH_ARG=(--auth)
exec "$PYTHON" faults/run.py --suite "$MODE" --build "$BUILD" "${AUTH_ARG[@]}" \
    --external "conformance-faults=$conf_verdict"
