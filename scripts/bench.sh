#!/usr/bin/env bash
# Benchmark runner (`make bench` calls `scripts/bench.sh BUILD_DIR`).
#
#   scripts/bench.sh BUILD_DIR          all scenarios, results in out/bench/<stamp>/
#   scripts/bench.sh smoke BUILD_DIR    CI smoke: in-memory server, 200 connections,
#                                       1,000 assignments/s for 5 s; fails only when
#                                       something was lost, duplicated, malformed,
#                                       rejected or a connection failed (never on speed)
#   scripts/bench.sh ab OLD_BUILD NEW_BUILD
#                                       A/B of two builds at fixed points (POINTS,
#                                       "scenario:connections:rate ..."), REPEATS
#                                       rounds; in each round every point runs once
#                                       per build, the order of the builds swapped
#                                       every round (the host's speed drifts); one
#                                       generator (NEW_BUILD's) for both. Results in
#                                       out/bench/<stamp>-ab/: one JSON per run
#                                       (<old|new>-<scenario>-c<n>-r<rate>-<round>.json)
#                                       and ab.md (medians with range, per build)
#
# Scenarios (full mode), each point on a FRESH server (and a fresh redis-server):
#   mem    one instance, --channel memory
#   redis  one instance, --channel redis
#   split  two gateways (--role api) and one worker (--role worker) on Redis
# For each: idle connections held (server RSS per connection) at CONNS, a
# ladder of offered rates at each connection count, and the maximum
# sustained rate (achieved within 1 % of offered, nothing lost, p99 <= 5 ms).
#
# Knobs (environment): SCENARIOS="mem redis split" CONNS="1000 10000 max"
# RATES="2500 5000 10000 20000 30000 40000" REPEATS=3 DURATION=5 WARMUP=1
# OUT=out/bench/<stamp> QUIET_WAIT=10 (seconds to wait before each run for
# the machine to be quiet: other work under QUIET_CORES=0.3 cores; 0: never
# wait). NICE=-5 runs servers, redis-server and the generator at that
# priority (root only; for a machine shared with other work; say so when
# quoting the figures); CHRT=10 runs them SCHED_FIFO at that priority
# instead (root only; the kernel's RT throttling still leaves 5 % to others).
# Each JSON records the cores used by other work during its window
# (other_cores). Every process started here is stopped here (trap).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=full
if [ "${1:-}" = smoke ]; then
    MODE=smoke
    shift
elif [ "${1:-}" = ab ]; then
    MODE=ab
    AB_OLD=${2:?usage: scripts/bench.sh ab OLD_BUILD NEW_BUILD}
    AB_NEW=${3:?usage: scripts/bench.sh ab OLD_BUILD NEW_BUILD}
    shift 2
fi
BUILD=${1:-build}
PYTHON=/usr/bin/python3
SERVER=$BUILD/reference/matchwire-server
BENCH=$BUILD/bench/matchwire-bench

if [ "$MODE" = ab ] && [ ! -x "$AB_OLD/reference/matchwire-server" ]; then
    echo "bench: $AB_OLD/reference/matchwire-server was not built" >&2
    exit 2
fi
if [ ! -x "$SERVER" ] || [ ! -x "$BENCH" ]; then
    cmake -S . -B "$BUILD" -DMW_WERROR=ON >/dev/null
    cmake --build "$BUILD" -j "${JOBS:-2}" --target matchwire-server matchwire-bench
fi
for f in "$SERVER" "$BENCH"; do
    [ -x "$f" ] || { echo "bench: $f was not built" >&2; exit 2; }
done

# Both the server and the generator hold one descriptor per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
[ "$FD_LIMIT" = unlimited ] && FD_LIMIT=1048576
MAX_CONNS=$(( FD_LIMIT - 1000 ))
[ "$MAX_CONNS" -gt 19000 ] && MAX_CONNS=19000

STAMP=$(date +%Y%m%dT%H%M%S)
OUT=${OUT:-out/bench/$STAMP}
[ "$MODE" = smoke ] && OUT=${OUT%/}-smoke
[ "$MODE" = ab ] && OUT=${OUT%/}-ab
mkdir -p "$OUT"

# ---- process bookkeeping: only what this script started ---------------------
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() {
    local p=$1 q=()
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    for x in "${PIDS[@]}"; do [ "$x" != "$p" ] && q+=("$x"); done
    PIDS=("${q[@]+"${q[@]}"}")
}

free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_http PORT PID SECONDS: /healthz answers 200, while PID lives.
HEALTH=
wait_http() {
    local port=$1 pid=$2 i
    HEALTH=
    for ((i = 0; i < $3 * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || return 1
        HEALTH=$(curl -s --max-time 1 -w ' HTTP %{http_code}' "http://127.0.0.1:$port/healthz" \
            2>/dev/null || true)
        [[ $HEALTH == *" HTTP 200" ]] && return 0
        sleep 0.05
    done
    return 1
}

NICE=${NICE:-}
CHRT=${CHRT:-}
PRIO=()
[ -n "$NICE" ] && PRIO=(nice -n "$NICE")
[ -n "$CHRT" ] && PRIO=(chrt -f "$CHRT")

HELP=$("$SERVER" --help 2>&1 || true)
has_flag() { grep -q -- "$1" <<<"$HELP"; }
# The per-connection message limit (50/s, burst 100) protects the server from
# one abusive client; the generator reuses a few connections for many
# tickets, so it is raised for benchmarking when the server has the flags.
SERVER_COMMON=(--log-level 1)
has_flag --rate-burst && SERVER_COMMON+=(--rate 100000 --rate-burst 100000)

# start_server LOG ARGS...: starts one server on a free port; sets SPID, SPORT.
start_server() {
    local log=$1
    shift
    SPORT=$(free_port)
    "${PRIO[@]+"${PRIO[@]}"}" "$SERVER" --listen "127.0.0.1:$SPORT" --max-connections "$MAX_CONNS" \
        "${SERVER_COMMON[@]}" "$@" >"$log" 2>&1 &
    SPID=$!
    PIDS+=("$SPID")
    if ! wait_http "$SPORT" "$SPID" 10; then
        echo "bench: server did not become healthy ($*); last /healthz: ${HEALTH:-none}" >&2
        echo "$HEALTH" >"$log.health"
        echo "bench: log tail:" >&2
        tail -5 "$log" >&2
        stop_pid "$SPID"
        return 1
    fi
}

# start_redis: sets RPID, RPORT.
start_redis() {
    RPORT=$(free_port)
    "${PRIO[@]+"${PRIO[@]}"}" redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
        --protected-mode yes >"$OUT/redis.log" 2>&1 &
    RPID=$!
    PIDS+=("$RPID")
    local i
    for ((i = 0; i < 100; i++)); do
        redis-cli -p "$RPORT" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "bench: redis-server did not start" >&2
    return 1
}

# ---- smoke ------------------------------------------------------------------
if [ "$MODE" = smoke ]; then
    start_server "$OUT/server.log" --channel memory
    set +e
    "$BENCH" --url "ws://127.0.0.1:$SPORT/realtime" --connections 200 --rate 1000 \
        --duration 5 --warmup 1 --timeout 5 --connect-timeout 10 --server-pid "$SPID" \
        --label smoke --json "$OUT/smoke.json" --check
    rc=$?
    set -e
    stop_pid "$SPID"
    if [ $rc -eq 0 ]; then
        echo "bench smoke: OK (nothing lost, duplicated, malformed or rejected; $OUT/smoke.json)"
    else
        echo "bench smoke: FAILED (exit $rc; see $OUT/smoke.json and $OUT/server.log)" >&2
    fi
    exit $rc
fi

# ---- full -------------------------------------------------------------------
QUIET_WAIT=${QUIET_WAIT:-10}
QUIET_CORES=${QUIET_CORES:-0.3}

# busy_cores: cores busy over one second, machine-wide (/proc/stat).
busy_cores() {
    local a b
    a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
    sleep 1
    b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
    awk -v a="$a" -v b="$b" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        split(a, x, " "); split(b, y, " "); printf "%.2f", (y[1] - x[1]) / hz }'
}

# wait_quiet: up to QUIET_WAIT seconds for other work to drop under QUIET_CORES.
wait_quiet() {
    local t0=$SECONDS c
    [ "$QUIET_WAIT" -le 0 ] && return 0
    while :; do
        c=$(busy_cores)
        awk -v c="$c" -v q="$QUIET_CORES" 'BEGIN { exit !(c < q) }' && return 0
        if [ $((SECONDS - t0)) -ge "$QUIET_WAIT" ]; then
            echo "  (machine still busy: $c cores in use by other work; running anyway)"
            return 0
        fi
        sleep 2
    done
}
SCENARIOS=${SCENARIOS:-"mem redis split"}
CONNS=${CONNS:-"1000 10000 max"}
RATES=${RATES:-"2500 5000 10000 20000 30000 40000"}
REPEATS=${REPEATS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS//max/$MAX_CONNS}

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "kernel: $(uname -r)"
    echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "nice: ${NICE:-0}, SCHED_FIFO: ${CHRT:-no}"
    echo "fd limit: $FD_LIMIT (max connections used: $MAX_CONNS)"
    echo "git: $(git describe --always --dirty 2>/dev/null || echo .?.)"
    echo "server: $SERVER"
    echo "bench: $BENCH"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt"

REDIS_OK=unknown
SKIPPED=()

# scenario_up SCENARIO TAG: starts the processes; sets URL_ARGS, PID_ARGS.
scenario_up() {
    local sc=$1 tag=$2
    URL_ARGS=()
    PID_ARGS=()
    case $sc in
    mem)
        start_server "$OUT/$tag.server.log" --channel memory || return 1
        URL_ARGS=(--url "ws://127.0.0.1:$SPORT/realtime")
        PID_ARGS=(--server-pid "$SPID")
        ;;
    redis)
        start_redis || return 1
        start_server "$OUT/$tag.server.log" --channel redis \
            --redis "redis://127.0.0.1:$RPORT" || return 1
        URL_ARGS=(--url "ws://127.0.0.1:$SPORT/realtime")
        PID_ARGS=(--server-pid "$SPID" --aux-pid "$RPID")
        ;;
    split)
        start_redis || return 1
        local r="redis://127.0.0.1:$RPORT"
        start_server "$OUT/$tag.worker.log" --channel redis --redis "$r" --role worker ||
            return 1
        local wpid=$SPID
        start_server "$OUT/$tag.api1.log" --channel redis --redis "$r" --role api || return 1
        local p1=$SPORT a1=$SPID
        start_server "$OUT/$tag.api2.log" --channel redis --redis "$r" --role api || return 1
        URL_ARGS=(--url "ws://127.0.0.1:$p1/realtime" --url2 "ws://127.0.0.1:$SPORT/realtime")
        PID_ARGS=(--server-pid "$a1" --server-pid "$SPID" --server-pid "$wpid" --aux-pid "$RPID")
        ;;
    esac
}

scenario_down() {
    cleanup
}

# Can this server run a Redis scenario at all? Checked once, on first need.
redis_supported() {
    if [ "$REDIS_OK" = unknown ]; then
        REDIS_OK=no
        if has_flag "--channel" && start_redis; then
            if start_server "$OUT/redis-probe.server.log" --channel redis \
                --redis "redis://127.0.0.1:$RPORT" 2>"$OUT/redis-probe.err"; then
                REDIS_OK=yes
            fi
        fi
        cleanup
    fi
    [ "$REDIS_OK" = yes ]
}

# run_point SCENARIO CONNS RATE REP: one fresh deployment, one bench run.
run_point() {
    local sc=$1 n=$2 rate=$3 rep=$4
    local tag="${TAG_PREFIX:-}$sc-c$n-r$rate-$rep"
    wait_quiet
    if ! scenario_up "$sc" "$tag"; then
        scenario_down
        echo "bench: $tag: could not start the deployment" >&2
        return 0
    fi
    local args=(--connections "$n" --rate "$rate" --duration "$DURATION" --warmup "$WARMUP"
        --timeout 10 --connect-timeout 120 --queue "q$rep" --label "$tag"
        --json "$OUT/$tag.json" --quiet)
    [ "$rate" = 0 ] && args=(--connections "$n" --rate 0 --duration 2 --settle 2
        --connect-timeout 120 --label "$tag" --json "$OUT/$tag.json" --quiet)
    "${PRIO[@]+"${PRIO[@]}"}" "$BENCH" "${URL_ARGS[@]}" "${PID_ARGS[@]}" "${args[@]}" || true
    scenario_down
    if [ -f "$OUT/$tag.json" ]; then
        "$PYTHON" - "$OUT/$tag.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
lat = d["latency_us"]["assigned"]
s = d["server"]
rss = s.get("rss_per_connection_bytes")
if d["offered_rate"] == 0:
    print(f"  {d['label']:<28} open {d['connections_open']}/{d['connections']}  "
          f"rss/conn {rss if rss is None else round(rss)} B  ok={d['ok']}")
else:
    print(f"  {d['label']:<28} achieved {d['achieved_rate']:9.1f}/s  p50 {lat['p50']:8.1f}  "
          f"p99 {lat['p99']:9.1f}  max {lat['max']:9.1f} us  lost {d['lost']} dup "
          f"{d['duplicate']} malformed {d['malformed']} rejected {d['rejected']}  "
          f"cpu/assign {s.get('cpu_us_per_assignment')} us  other {d.get('other_cores')} cores")
EOF
    fi
}

# passes FILES...: the median run meets the sustained-rate criteria.
passes() {
    "$PYTHON" - "$@" <<'EOF'
import json, statistics, sys
runs = [json.load(open(f)) for f in sys.argv[1:]]
if not runs:
    sys.exit(1)
ach = statistics.median(r["achieved_rate"] / r["offered_rate"] for r in runs)
p99 = statistics.median(r["latency_us"]["assigned"]["p99"] for r in runs)
bad = sum(r["lost"] + r["duplicate"] + r["malformed"] + r["rejected"] + r["unsent"]
          + r["connections_failed"] for r in runs)
sys.exit(0 if ach >= 0.99 and p99 <= 5000 and bad == 0 else 1)
EOF
}

# ---- ab: two builds, fixed points, alternating ------------------------------
if [ "$MODE" = ab ]; then
    POINTS=${POINTS:-"redis:10000:5000 redis:10000:15000 split:10000:5000 split:10000:10000"}
    {
        echo "old: $AB_OLD ($(git -C "$AB_OLD" describe --always --dirty 2>/dev/null || echo ?))"
        echo "new: $AB_NEW ($(git describe --always --dirty 2>/dev/null || echo ?))"
        echo "points: $POINTS; rounds: $REPEATS; duration $DURATION s + warmup $WARMUP s"
    } | tee -a "$OUT/machine.txt"
    redis_supported || { echo "bench: ab needs a working --channel redis" >&2; exit 2; }
    for ((rep = 1; rep <= REPEATS; rep++)); do
        order="old new"
        [ $((rep % 2)) -eq 0 ] && order="new old"
        for pt in $POINTS; do
            IFS=: read -r sc n rate <<<"$pt"
            for b in $order; do
                if [ "$b" = old ]; then
                    SERVER=$AB_OLD/reference/matchwire-server
                else
                    SERVER=$AB_NEW/reference/matchwire-server
                fi
                TAG_PREFIX="$b-" run_point "$sc" "$n" "$rate" "$rep"
            done
        done
    done
    "$PYTHON" - "$OUT" <<'EOF' | tee "$OUT/ab.md"
import glob, json, os, re, statistics, sys
out = sys.argv[1]
groups = {}
for f in sorted(glob.glob(os.path.join(out, "*.json"))):
    m = re.match(r"(old|new)-(\w+)-c(\d+)-r(\d+)-(\d+)\.json$", os.path.basename(f))
    if m:
        groups.setdefault((m[2], int(m[3]), int(m[4]), m[1]), []).append(json.load(open(f)))

def med(vals, fmt="{:.0f}"):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "n/a"
    m = statistics.median(vals)
    if len(vals) == 1:
        return fmt.format(m)
    return f"{fmt.format(m)} ({fmt.format(min(vals))}-{fmt.format(max(vals))})"

print("| scenario | conns | offered/s | build | runs | achieved/s | p50 us | p99 us | lost | dup | "
      "servers CPU us/assign | redis-server CPU us/assign | other cores |")
print("|" + "---|" * 13)
order = {"redis": 0, "split": 1}
key = lambda k: (order.get(k[0][0], 9), k[0][1], k[0][2], k[0][3] != "old")
for (sc, n, rate, b), runs in sorted(groups.items(), key=key):
    L = lambda k: [r["latency_us"]["assigned"][k] for r in runs]
    S = lambda k: [r["server"].get(k) for r in runs]
    print(f"| {sc} | {n} | {rate} | {b} | {len(runs)} | {med([r['achieved_rate'] for r in runs])} | "
          f"{med(L('p50'), '{:.1f}')} | {med(L('p99'), '{:.1f}')} | {sum(r['lost'] for r in runs)} | "
          f"{sum(r['duplicate'] for r in runs)} | {med(S('cpu_us_per_assignment'), '{:.1f}')} | "
          f"{med(S('aux_cpu_us_per_assignment'), '{:.1f}')} | "
          f"{med([r.get('other_cores') for r in runs], '{:.2f}')} |")
EOF
    echo "bench: results in $OUT/ (one JSON per run, ab.md)"
    exit 0
fi

for sc in $SCENARIOS; do
    echo "== scenario $sc"
    if [ "$sc" != mem ] && ! redis_supported; then
        msg="scenario $sc CANNOT RUN: this matchwire-server has no working --channel redis"
        msg+=" (/healthz said: $(cat "$OUT/redis-probe.server.log.health" 2>/dev/null || echo none);"
        msg+=" log: $OUT/redis-probe.server.log)"
        echo "bench: $msg" >&2
        SKIPPED+=("$msg")
        continue
    fi
    for n in $CONNS; do
        for ((rep = 1; rep <= REPEATS; rep++)); do
            run_point "$sc" "$n" 0 "$rep"
        done
        last_pass=0
        first_fail=0
        for rate in $RATES; do
            files=()
            for ((rep = 1; rep <= REPEATS; rep++)); do
                run_point "$sc" "$n" "$rate" "$rep"
                files+=("$OUT/$sc-c$n-r$rate-$rep.json")
            done
            existing=()
            for f in "${files[@]}"; do [ -f "$f" ] && existing+=("$f"); done
            if [ ${#existing[@]} -gt 0 ] && passes "${existing[@]}"; then
                last_pass=$rate
            else
                first_fail=$rate
                break
            fi
        done
        # Refine the maximum sustained rate between the last pass and the
        # first failure (two bisection steps).
        if [ "$first_fail" -gt 0 ] && [ "$first_fail" -gt "$last_pass" ]; then
            lo=$last_pass
            hi=$first_fail
            for step in 1 2; do
                mid=$(( (lo + hi) / 2 / 1000 * 1000 ))
                [ "$mid" -le "$lo" ] && break
                files=()
                for ((rep = 1; rep <= REPEATS; rep++)); do
                    run_point "$sc" "$n" "$mid" "$rep"
                    files+=("$OUT/$sc-c$n-r$mid-$rep.json")
                done
                existing=()
                for f in "${files[@]}"; do [ -f "$f" ] && existing+=("$f"); done
                if [ ${#existing[@]} -gt 0 ] && passes "${existing[@]}"; then
                    lo=$mid
                else
                    hi=$mid
                fi
            done
            last_pass=$lo
        fi
        echo "$sc c$n max_sustained $last_pass" | tee -a "$OUT/max_sustained.txt"
    done
done

# ---- summary: medians (with range) per scenario, connections and rate ------
"$PYTHON" - "$OUT" <<'EOF' | tee "$OUT/summary.md"
import glob, json, os, re, statistics, sys
out = sys.argv[1]
groups = {}
for f in sorted(glob.glob(os.path.join(out, "*.json"))):
    m = re.match(r"(\w+)-c(\d+)-r(\d+)-(\d+)\.json$", os.path.basename(f))
    if not m:
        continue
    groups.setdefault((m[1], int(m[2]), int(m[3])), []).append(json.load(open(f)))

def med(vals, fmt="{:.0f}"):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "n/a"
    m = statistics.median(vals)
    if len(vals) == 1:
        return fmt.format(m)
    return f"{fmt.format(m)} ({fmt.format(min(vals))}-{fmt.format(max(vals))})"

print("| scenario | conns | offered/s | runs | achieved/s | p50 us | p90 us | p99 us | "
      "p99.9 us | max us | lost | dup | malformed | rejected | srv CPU us/assign | "
      "redis CPU us/assign | generator CPU us/assign | RSS B/conn | other cores |")
print("|" + "---|" * 19)
order = {"mem": 0, "redis": 1, "split": 2}
# The generator's own CPU per assignment (its utilization of one core over
# the window / assignments per second): with the servers' it says how much of
# the 2 cores one assignment costs end to end.
G = lambda runs: [r["bench_cpu_utilization"] * 1e6 / r["achieved_rate"]
                  if (r.get("bench_cpu_utilization") or -1) >= 0 and r.get("achieved_rate") else None
                  for r in runs]
for (sc, n, rate), runs in sorted(groups.items(), key=lambda k: (order.get(k[0][0], 9), k[0][1], k[0][2])):
    L = lambda k: [r["latency_us"]["assigned"][k] for r in runs]
    S = lambda k: [r["server"].get(k) for r in runs]
    idle = rate == 0
    print(f"| {sc} | {n} | {'idle' if idle else rate} | {len(runs)} | "
          f"{'-' if idle else med([r['achieved_rate'] for r in runs])} | "
          + " | ".join("-" if idle else med(L(k), "{:.1f}") for k in ("p50", "p90", "p99", "p999", "max"))
          + f" | {sum(r['lost'] for r in runs)} | {sum(r['duplicate'] for r in runs)} | "
          f"{sum(r['malformed'] for r in runs)} | {sum(r['rejected'] for r in runs)} | "
          f"{'-' if idle else med(S('cpu_us_per_assignment'), '{:.1f}')} | "
          f"{'-' if idle else med(S('aux_cpu_us_per_assignment'), '{:.1f}')} | "
          f"{'-' if idle else med(G(runs), '{:.1f}')} | "
          f"{med(S('rss_per_connection_bytes')) if idle else '-'} | "
          f"{'-' if idle else med([r.get('other_cores') for r in runs], '{:.2f}')} |")
ms = os.path.join(out, "max_sustained.txt")
if os.path.exists(ms):
    print()
    print("maximum sustained (achieved >= 99 % of offered, nothing lost, median p99 <= 5 ms):")
    for line in open(ms):
        print("  " + line.strip())
EOF
for s in "${SKIPPED[@]+"${SKIPPED[@]}"}"; do
    echo "NOTE: $s"
done
echo "bench: results in $OUT/ (one JSON per run, summary.md)"
