#!/usr/bin/env bash
# callgrind_split: instructions per assignment of each process of a `split`
# deployment (one redis-server, a worker, two gateways), in the steady state.
#
#   bench/callgrind_split.sh BUILD OUT servers      # the worker and gateway 1
#   bench/callgrind_split.sh BUILD OUT redis [ARGS] # redis-server (ARGS: its
#                                                   # configuration, e.g.
#                                                   # --stream-node-max-entries 16)
#
# The measured processes run under `valgrind --tool=callgrind` (deterministic:
# the figures hold on a busy machine). matchwire-bench (BENCH, default
# BUILD/bench/matchwire-bench) offers RATE assignments/s (default 200) over
# CONNS connections (default 400) for 8 s; the counters are zeroed 3 s into
# the load (every connection open, past the warm-up) and dumped 4.5 s later,
# so connects and closes are not counted. Assignments in that window: twice
# the worker's matchwire_matches_total difference (matches of 2). Prints one
# line per measured process: instructions, and instructions per assignment.
# The callgrind files stay in OUT for callgrind_annotate.
set -u
B=$1 O=$2 WHAT=$3
shift 3
S=$B/reference/matchwire-server
BENCH=${BENCH:-$B/bench/matchwire-bench}
rm -rf "$O" && mkdir -p "$O"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
fp() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
# cg yes|no NAME CMD...: runs CMD (under callgrind when yes); exec, so that $! is its pid
cg() { if [ "$1" = yes ]; then shift; exec valgrind --tool=callgrind --callgrind-out-file="$O/$1.cg" "${@:2}"; else shift; exec "${@:2}"; fi; }
[ "$WHAT" = redis ] && CR=yes || CR=no
[ "$WHAT" = servers ] && CS=yes || CS=no
RP=$(fp)
cg $CR redis redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no "$@" >"$O/redis.log" 2>&1 &
RPID=$!
PIDS+=("$RPID")
for _ in $(seq 1 100); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done
R=redis://127.0.0.1:$RP
COMMON=(--max-connections 20000 --log-level 1 --rate 100000 --rate-burst 100000 --channel redis --redis "$R")
WP=$(fp)
cg $CS worker "$S" --listen "127.0.0.1:$WP" "${COMMON[@]}" --role worker >"$O/worker.log" 2>&1 &
WPID=$!
PIDS+=("$WPID")
A1=$(fp)
cg $CS api1 "$S" --listen "127.0.0.1:$A1" "${COMMON[@]}" --role api >"$O/api1.log" 2>&1 &
APID=$!
PIDS+=("$APID")
A2=$(fp)
"$S" --listen "127.0.0.1:$A2" "${COMMON[@]}" --role api >"$O/api2.log" 2>&1 &
PIDS+=("$!")
for p in $WP $A1 $A2; do
    for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$p/healthz" >/dev/null && break; sleep 0.1; done
done
sleep 1
matches() { curl -s "http://127.0.0.1:$WP/metrics" | awk '/^matchwire_matches_total/ {s += $2} END {print s + 0}'; }
if [ "$WHAT" = redis ]; then MEASURED=("redis:$RPID"); else MEASURED=("worker:$WPID" "api1:$APID"); fi
"$BENCH" --url "ws://127.0.0.1:$A1/realtime" --url2 "ws://127.0.0.1:$A2/realtime" \
    --connections "${CONNS:-400}" --rate "${RATE:-200}" --duration 8 --warmup 1 --timeout 20 \
    --connect-timeout 60 --json "$O/bench.json" --quiet &
BP=$!
sleep 3
for m in "${MEASURED[@]}"; do callgrind_control -z "${m#*:}" >/dev/null; done
M0=$(matches)
sleep 4.5
for m in "${MEASURED[@]}"; do callgrind_control -d "${m#*:}" >/dev/null; done
M1=$(matches)
wait "$BP"
n=$(((M1 - M0) * 2))
for m in "${MEASURED[@]}"; do
    t=$(grep -m1 '^summary:' "$O/${m%%:*}.cg.1" | cut -d' ' -f2)
    echo "${m%%:*} $t instructions, $((t / (n > 0 ? n : 1))) per assignment ($n assignments)"
done
/usr/bin/python3 -c "import json; d = json.load(open('$O/bench.json')); print('bench: assigned', d['assigned'], 'lost', d['lost'], 'duplicate', d['duplicate'])"
