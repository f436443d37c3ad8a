#!/usr/bin/env bash
# Conformance suite against the reference server (called by scripts/test.sh).
#
# 1. The selftest: the suite against conformance/selftest (clean: all pass;
#    each --fault: caught), printing "faults caught: N/M".
# 2. With redis-server and a server built with the Redis channel: one
#    redis-server, two api instances and one worker; profiles channel and
#    multi (TST-001), with --redis-restart-cmd restarting Redis in place
#    (append-only file, so data survives: TST-014) and --redis-stop-cmd /
#    --redis-start-cmd stopping and starting it (TST-015). Redis requires a
#    password and the instances use database 2, given as
#    redis://:PASSWORD@HOST:PORT/2, so that AUTH and SELECT are observable
#    (CHN-034, TST-017). Then core and robustness against the same
#    deployment (gateway 1, its tickets in Redis, matched by the worker), with
#    a third api instance that --shutdown-cmd stops (MSG-099): behaviour is
#    checked on both deployments, not only on the in-memory one (issue 17).
#    Gateway 1 reaches Redis through the suite's fault-injection proxy
#    (conformance/resp_proxy.py; --redis-proxy gives the suite its control
#    port: spec/testing.md TST-030), so the race of MSG-041 is observable.
# 3. Profile auth: one reference server with auth on (keys made at test time).
# 3b. Profiles core and tls against a reference server on wss:// (a test
#    certificate made at test time).
# 4. Last: one reference server (memory channel) with the short test
#    settings of spec/testing.md TST-010; profiles core and robustness, with a
#    second, dedicated instance that --shutdown-cmd stops with SIGTERM
#    (--shutdown-url, TST-016, MSG-099). Its pytest summary is the last
#    output line.
# Every process started here is stopped on exit (trap). Exit non-zero on any
# failure; then the servers' and Redis's logs are kept in
# $BUILD/conformance-logs/ (named in the output). Arguments go to pytest
# (e.g. `scripts/conformance.sh -k slow_consumer -x`).
# Env: BUILD (build), PYTHON (/usr/bin/python3), MW_SKIP_FAULTS=1.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
SERVER="$BUILD/reference/matchwire-server"
TMP=$(mktemp -d /tmp/mw-conformance.XXXXXX)
PIDS=()
status=0

cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    if [ -f "$TMP/redis.pid" ]; then
        kill "$(cat "$TMP/redis.pid")" 2>/dev/null
    fi
    if [ "$status" -ne 0 ]; then
        rm -rf "$BUILD/conformance-logs"
        mkdir -p "$BUILD/conformance-logs"
        cp "$TMP"/*.log "$BUILD/conformance-logs/" 2>/dev/null
        echo "conformance: failed; server and Redis logs kept in $BUILD/conformance-logs/"
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

# free_port, wait_healthy
. scripts/lib.sh

SHORT=(--queue-size conf3=3 --ticket-ttl 5 --grace 1 --assigned-ttl 3 --idle-timeout 2
       --max-connections 60 --rate 1000 --rate-burst 2000 --outbound-max-messages 64 --log-level 1)
DECL=conformance/reference-testee.json

# 1. Selftest fault catching.
if [ "${MW_SKIP_FAULTS:-0}" != 1 ]; then
    "$PYTHON" conformance/selftest/run-faults --jobs 3 || status=1
fi

# 2. Channel and multi profiles, when Redis and the Redis channel exist.
if command -v redis-server >/dev/null && "$SERVER" --help 2>&1 | grep -q -- "--channel memory|redis"; then
    RP=$(free_port)
    RPW=conformance-$RANDOM$RANDOM
    # Stop (data kept in the append-only file) and start in place: the hooks
    # of TST-014 (restart = stop + start) and TST-015.
    cat > "$TMP/stop-redis.sh" <<SH
#!/usr/bin/env bash
# Waits for the port to close, not for the pid: a daemonized Redis can stay
# a zombie for a while after it exited.
if [ -f "$TMP/redis.pid" ]; then
    kill "\$(cat "$TMP/redis.pid")" 2>/dev/null
    for i in \$(seq 100); do
        redis-cli -p $RP -a "$RPW" --no-auth-warning ping >/dev/null 2>&1 || break
        sleep 0.05
    done
    rm -f "$TMP/redis.pid"
fi
exit 0
SH
    cat > "$TMP/start-redis.sh" <<SH
#!/usr/bin/env bash
redis-server --port $RP --bind 127.0.0.1 --dir "$TMP" --save '' --appendonly yes --appendfsync always \
    --requirepass "$RPW" --daemonize yes --pidfile "$TMP/redis.pid" --logfile "$TMP/redis.log"
for i in \$(seq 50); do
    redis-cli -p $RP -a "$RPW" --no-auth-warning ping >/dev/null 2>&1 && exit 0
    sleep 0.1
done
exit 1
SH
    printf '#!/usr/bin/env bash\n"%s" && exec "%s"\n' "$TMP/stop-redis.sh" "$TMP/start-redis.sh" \
        > "$TMP/restart-redis.sh"
    chmod +x "$TMP/stop-redis.sh" "$TMP/start-redis.sh" "$TMP/restart-redis.sh"
    "$TMP/start-redis.sh" || { echo "conformance: redis-server did not start"; status=1; }
    R="redis://:$RPW@127.0.0.1:$RP/2"
    "$PYTHON" conformance/resp_proxy.py --listen 127.0.0.1:0 --upstream "127.0.0.1:$RP" \
        --control 127.0.0.1:0 >"$TMP/proxy.out" 2>"$TMP/proxy.log" & PIDS+=($!)
    for i in $(seq 50); do grep -q RESP-PROXY "$TMP/proxy.out" && break; sleep 0.1; done
    read -r _ PXP PXC < "$TMP/proxy.out"
    RX="redis://:$RPW@127.0.0.1:$PXP/2"
    WP=$(free_port); P1=$(free_port); P2=$(free_port)
    "$SERVER" --listen "127.0.0.1:$WP" --channel redis --role worker --redis "$R" "${SHORT[@]}" \
        >"$TMP/worker.log" 2>&1 & PIDS+=($!)
    "$SERVER" --listen "127.0.0.1:$P1" --channel redis --role api --redis "$RX" "${SHORT[@]}" \
        >"$TMP/api1.log" 2>&1 & PIDS+=($!)
    "$SERVER" --listen "127.0.0.1:$P2" --channel redis --role api --redis "$R" "${SHORT[@]}" \
        >"$TMP/api2.log" 2>&1 & PIDS+=($!)
    RSP=$(free_port)
    "$SERVER" --listen "127.0.0.1:$RSP" --channel redis --role api --redis "$R" "${SHORT[@]}" \
        >"$TMP/api-shutdown.log" 2>&1 & RSPID=$!
    PIDS+=($RSPID)
    # Health is itself under test (MSG-113): an instance that never turns
    # healthy is reported, and the suite still runs against it.
    for u in "$WP" "$P1" "$P2" "$RSP"; do
        wait_healthy "http://127.0.0.1:$u" || echo "conformance: instance on port $u never answered /healthz 200"
    done
    "$PYTHON" conformance/run --url "ws://127.0.0.1:$P1/realtime" --url2 "ws://127.0.0.1:$P2/realtime" \
        --redis "$R" --profile channel,multi --testee-config "$DECL" \
        --redis-restart-cmd "$TMP/restart-redis.sh" --redis-stop-cmd "$TMP/stop-redis.sh" \
        --redis-start-cmd "$TMP/start-redis.sh" --redis-proxy "127.0.0.1:$PXC" \
        --report "$BUILD/conformance-redis" "$@" || status=1
    "$PYTHON" conformance/run --url "ws://127.0.0.1:$P1/realtime" --profile core,robustness \
        --testee-config "$DECL" --shutdown-url "ws://127.0.0.1:$RSP/realtime" \
        --shutdown-cmd "kill -TERM $RSPID" --report "$BUILD/conformance-redis-core" "$@" || status=1
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    PIDS=()
    "$TMP/stop-redis.sh"
else
    echo "conformance: no redis-server or no Redis channel in $SERVER: profiles channel and multi not run"
fi

# 3. Profile auth (spec/auth.md, TST-042..TST-046): one reference server with
#    HS256, EdDSA and RS256 keys, an audience, an issuer, a service token and an Origin
#    allow-list. Secrets and keys are made here, in $TMP, never committed; the
#    declaration names them through $MW_AUTH_DIR.
if command -v openssl >/dev/null; then
    export MW_AUTH_DIR="$TMP/auth"
    mkdir -p "$MW_AUTH_DIR" && chmod 700 "$MW_AUTH_DIR"
    openssl rand -base64 48 | tr -d '\n' >"$MW_AUTH_DIR/hs256.secret"
    openssl rand -hex 32 >"$MW_AUTH_DIR/service.token"
    openssl genpkey -algorithm ed25519 -out "$MW_AUTH_DIR/ed25519.key" 2>/dev/null
    openssl pkey -in "$MW_AUTH_DIR/ed25519.key" -pubout -out "$MW_AUTH_DIR/ed25519.pub"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$MW_AUTH_DIR/rsa.key" 2>/dev/null
    openssl pkey -in "$MW_AUTH_DIR/rsa.key" -pubout -out "$MW_AUTH_DIR/rsa.pub"
    APORT=$(free_port)
    "$SERVER" --listen "127.0.0.1:$APORT" "${SHORT[@]}" \
        --auth-hs256-secret-file "$MW_AUTH_DIR/hs256.secret:hs-1" \
        --auth-public-key "EdDSA:$MW_AUTH_DIR/ed25519.pub:ed-1" \
        --auth-public-key "RS256:$MW_AUTH_DIR/rsa.pub:rs-1" \
        --auth-audience matchwire-conformance --auth-issuer https://issuer.conformance.example \
        --service-token-file "$MW_AUTH_DIR/service.token" \
        --allowed-origin https://play.example.com >"$TMP/auth.log" 2>&1 & APID=$!
    PIDS+=($APID)
    if wait_healthy "http://127.0.0.1:$APORT"; then
        "$PYTHON" conformance/run --url "ws://127.0.0.1:$APORT/realtime" --profile auth \
            --testee-config conformance/auth-testee.json --report "$BUILD/conformance-auth" "$@" || status=1
    else
        tail -n 20 "$TMP/auth.log"
        status=1
    fi
    kill "$APID" 2>/dev/null && wait "$APID" 2>/dev/null
else
    echo "conformance: no openssl command: profile auth not run"
    status=1
fi

# 3b. TLS (spec/messages.md §1.1, issue 15): a test CA and server certificate
#     made now (conformance/testcert.py, into $BUILD/tls-cert, never
#     committed); then profiles core and tls against a
#     reference server on wss:// and https:// (--ca: chain and host name
#     verified), with a second TLS instance for --shutdown-cmd. Every core
#     test then runs inside TLS. (About 75 s here.) The start-up refusals
#     are ctest's tls_server (reference/tests/tls_server.py).
if command -v openssl >/dev/null; then
    TLSD="$BUILD/tls-cert"
    "$PYTHON" conformance/testcert.py "$TLSD" >/dev/null || status=1
    TPORT=$(free_port)
    "$SERVER" --listen "127.0.0.1:$TPORT" "${SHORT[@]}" --tls-cert "$TLSD/server.pem" \
        --tls-key "$TLSD/server.key" >"$TMP/tls.log" 2>&1 & PIDS+=($!)
    TSPORT=$(free_port)
    "$SERVER" --listen "127.0.0.1:$TSPORT" "${SHORT[@]}" --tls-cert "$TLSD/server.pem" \
        --tls-key "$TLSD/server.key" >"$TMP/tls-shutdown.log" 2>&1 & TSPID=$!
    PIDS+=($TSPID)
    if SSL_CERT_FILE="$TLSD/ca.pem" wait_healthy "https://localhost:$TPORT" &&
        SSL_CERT_FILE="$TLSD/ca.pem" wait_healthy "https://localhost:$TSPORT"; then
        "$PYTHON" conformance/run --url "wss://localhost:$TPORT/realtime" --ca "$TLSD/ca.pem" \
            --profile core,tls --testee-config "$DECL" \
            --shutdown-url "wss://localhost:$TSPORT/realtime" --shutdown-cmd "kill -TERM $TSPID" \
            --report "$BUILD/conformance-tls" "$@" || status=1
    else
        tail -n 20 "$TMP/tls.log" "$TMP/tls-shutdown.log"
        status=1
    fi
else
    echo "conformance: no openssl command: profile tls not run"
    status=1
fi

# 4. Core and robustness against one reference server (last: its summary ends the output).
PORT=$(free_port)
"$SERVER" --listen "127.0.0.1:$PORT" "${SHORT[@]}" >"$TMP/server.log" 2>&1 & PIDS+=($!)
SPORT=$(free_port)
"$SERVER" --listen "127.0.0.1:$SPORT" "${SHORT[@]}" >"$TMP/shutdown.log" 2>&1 & SPID=$!
PIDS+=($SPID)
if wait_healthy "http://127.0.0.1:$PORT" && wait_healthy "http://127.0.0.1:$SPORT"; then
    "$PYTHON" conformance/run --url "ws://127.0.0.1:$PORT/realtime" --profile core,robustness \
        --testee-config "$DECL" --shutdown-url "ws://127.0.0.1:$SPORT/realtime" \
        --shutdown-cmd "kill -TERM $SPID" --report "$BUILD/conformance" "$@" || status=1
else
    tail -n 20 "$TMP/server.log" "$TMP/shutdown.log"
    status=1
fi
exit $status
