#!/usr/bin/env bash
# Fuzzing: build, run, smoke-test, minimise and measure the libFuzzer
# harnesses of fuzz/ (see fuzz/README.md).
#
#   scripts/fuzz.sh run [HARNESS...]      fuzz each harness FUZZ_SECONDS (600) in turn (make fuzz)
#   scripts/fuzz.sh smoke [HARNESS...]    ~30 s each, bounded in total; fails on crash/leak/timeout
#   scripts/fuzz.sh coverage              corpus replay under clang coverage; llvm-cov report (make fuzz-coverage)
#   scripts/fuzz.sh merge [HARNESS...]    minimise fuzz/corpus/<h> + the run's findings (-merge=1)
#   scripts/fuzz.sh replay                build the replay drivers with the default compiler; ctest -L fuzz
#   scripts/fuzz.sh seed                  copy small spec/vectors files into the corpora
#   scripts/fuzz.sh build                 configure and build the libFuzzer binaries only
#
# Environment: FUZZ_SECONDS (per harness), FUZZ_SEED (default: random, always
# logged), FUZZ_TOTAL_SECONDS (smoke: bound on the whole run, default 300),
# FUZZ_MAX_LEN (70000: above the 65,536-byte envelope limit), FUZZ_TIMEOUT
# (per input, s), CC_FUZZ (clang-14), FUZZ_COV_ENFORCE (1: coverage fails under target).
# Build dirs: build-fuzz (libFuzzer), build-cov (coverage), build-fuzzreplay.
# Each harness fuzzes a scratch copy of its corpus (build-fuzz/work/<h>), so
# the committed corpus only changes through `merge`. A crash, leak or timeout
# leaves its input in build-fuzz/artifacts/<h>/ and the command to reproduce.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CC_FUZZ=${CC_FUZZ:-clang-14}
LLVM_COV=${LLVM_COV:-llvm-cov-14}
LLVM_PROFDATA=${LLVM_PROFDATA:-llvm-profdata-14}
JOBS=${JOBS:-2}
FUZZ_MAX_LEN=${FUZZ_MAX_LEN:-70000}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
BF=$ROOT/build-fuzz
BC=$ROOT/build-cov
BR=$ROOT/build-fuzzreplay

ALL_HARNESSES=(envelope roundtrip diff_jansson messages channel_payload oom session token mwc_ws mwc_proto)
# Coverage targets (fuzz/README.md): the decoders and validators the network reaches.
COV_STRICT_FILES=(json.c envelope.c messages.c channel.c)
COV_LINE_TARGET=95
COV_BRANCH_TARGET=90
COV_FILES=(json.c envelope.c messages.c channel.c session.c hub.c ticket.c token.c)

log() { printf 'fuzz.sh: %s\n' "$*" >&2; }

have_clang() { command -v "$CC_FUZZ" >/dev/null 2>&1; }

# Harnesses to act on: the arguments, or every harness whose binary ($1 dir,
# $2 prefix) was built (a harness is only built once its modules exist).
pick() {
    local dir=$1 prefix=$2
    shift 2
    local h
    if [ $# -gt 0 ]; then
        printf '%s\n' "$@"
        return
    fi
    for h in "${ALL_HARNESSES[@]}"; do
        [ -x "$dir/fuzz/$prefix$h" ] && printf '%s\n' "$h"
    done
    return 0
}

dict_for() {
    if [ -f "fuzz/$1.dict" ]; then echo "fuzz/$1.dict"; else echo "fuzz/envelope.dict"; fi
}

build_fuzz() {
    if ! have_clang; then
        log "$CC_FUZZ not found: libFuzzer needs clang (the corpus replay under ctest still runs)"
        return 1
    fi
    CC=$CC_FUZZ cmake -S . -B "$BF" -DMW_FUZZ=ON -DMW_BUILD_SERVER=OFF -DBUILD_TESTING=OFF -DMW_WERROR=ON \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    quiet_build "$BF"
}

# Builds a configured dir; on failure shows the end of the build log. One
# build per dir at a time (a smoke run and a merge may overlap).
quiet_build() {
    mkdir -p "$1"
    if ! flock "$1/.build.lock" cmake --build "$1" -j "$JOBS" >"$1/build.log" 2>&1; then
        grep -m20 -E 'error|Error' "$1/build.log" >&2 || tail -20 "$1/build.log" >&2
        log "build in $1 failed (full log: $1/build.log)"
        return 1
    fi
}

# fuzz_one HARNESS SECONDS SEED: fuzzes a scratch copy of the corpus.
# Returns libFuzzer's status (non-zero: crash, leak, timeout, OOM).
fuzz_one() {
    local h=$1 secs=$2 seed=$3 work=$BF/work/$h art=$BF/artifacts/$h
    local logf=$BF/logs/$h.log rc=0
    mkdir -p "$work" "$art" "$BF/logs"
    touch "$art/.run-start" # artifacts newer than this are this run's
    [ -d "fuzz/corpus/$h" ] && cp -rn "fuzz/corpus/$h"/. "$work"/
    local dirs=("$work")
    [ -d "fuzz/regressions/$h" ] && dirs+=("fuzz/regressions/$h")
    log "$h: ${secs}s, seed $seed, dict $(dict_for "$h"), max_len $FUZZ_MAX_LEN, log $logf"
    "$BF/fuzz/fuzz_$h" -seed="$seed" -max_total_time="$secs" -max_len="$FUZZ_MAX_LEN" \
        -timeout="$FUZZ_TIMEOUT" -rss_limit_mb=2048 -dict="$(dict_for "$h")" \
        -artifact_prefix="$art/" -print_final_stats=1 "${dirs[@]}" >"$logf" 2>&1 || rc=$?
    # The final stats, and the first lines of any report.
    grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|#[0-9]+[[:space:]]+DONE)' "$logf" |
        sed "s/^/  $h: /" >&2 || true
    if [ $rc -ne 0 ]; then
        log "$h: FAILED (status $rc); first lines of the report:"
        grep -m12 -E 'ERROR|FUZZ_CHECK|SUMMARY|runtime error|Test unit written|#[0-9]+ 0x' "$logf" | sed 's/^/  /' >&2 || true
        local a
        for a in $(find "$art" -type f -newer "$art/.run-start" ! -name '.*'); do
            log "$h: input kept: $a"
            log "$h: reproduce: $BF/fuzz/fuzz_$h $a"
        done
    fi
    return $rc
}

cmd_run() {
    build_fuzz
    local secs=${FUZZ_SECONDS:-600} failed=() h
    local seed=${FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
    for h in $(pick "$BF" fuzz_ "$@"); do
        fuzz_one "$h" "$secs" "$seed" || failed+=("$h")
    done
    if [ ${#failed[@]} -gt 0 ]; then
        log "failed: ${failed[*]} (seed $seed)"
        return 1
    fi
    log "run: no failure (seed $seed)"
}

cmd_smoke() {
    if ! have_clang; then
        log "smoke: SKIPPED, $CC_FUZZ not installed (corpus replay still runs under ctest)"
        return 0
    fi
    build_fuzz
    local per=${FUZZ_SECONDS:-30} total=${FUZZ_TOTAL_SECONDS:-300} start=$SECONDS failed=() h
    local seed=${FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
    log "smoke: seed $seed (rerun with FUZZ_SEED=$seed scripts/fuzz.sh smoke)"
    for h in $(pick "$BF" fuzz_ "$@"); do
        local left=$((total - (SECONDS - start)))
        if [ $left -lt 5 ]; then
            log "smoke: total bound ${total}s reached, $h not run"
            continue
        fi
        [ $left -lt "$per" ] && per=$left
        fuzz_one "$h" "$per" "$seed" || failed+=("$h")
    done
    if [ ${#failed[@]} -gt 0 ]; then
        log "smoke: FAILED: ${failed[*]} (seed $seed)"
        return 1
    fi
    log "smoke: ok (seed $seed)"
}

cmd_merge() {
    build_fuzz
    local h
    for h in $(pick "$BF" fuzz_ "$@"); do
        local new=$BF/merge/$h
        rm -rf "$new"
        mkdir -p "$new" "$BF/work/$h" "fuzz/corpus/$h"
        "$BF/fuzz/fuzz_$h" -merge=1 -max_len="$FUZZ_MAX_LEN" -timeout="$FUZZ_TIMEOUT" \
            "$new" "fuzz/corpus/$h" "$BF/work/$h" >"$BF/logs/merge-$h.log" 2>&1
        rm -rf "fuzz/corpus/$h"
        mkdir -p "fuzz/corpus/$h"
        cp "$new"/* "fuzz/corpus/$h"/
        log "merge: $h: $(ls "fuzz/corpus/$h" | wc -l) files, $(du -sk "fuzz/corpus/$h" | cut -f1) KiB"
    done
}

cmd_seed() {
    # Small vector files seed the corpora (the size-limit vectors included:
    # they are the only way to reach the too_large branches).
    local f
    mkdir -p fuzz/corpus/envelope fuzz/corpus/roundtrip fuzz/corpus/diff_jansson \
        fuzz/corpus/messages fuzz/corpus/channel_payload
    for f in spec/vectors/envelope/cases/*.json; do
        [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 70000 ] || continue
        cp "$f" fuzz/corpus/envelope/ && cp "$f" fuzz/corpus/roundtrip/
    done
    for f in spec/vectors/json/cases/*.json; do
        [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 70000 ] || continue
        cp "$f" fuzz/corpus/diff_jansson/
    done
    for f in spec/vectors/messages/cases/*.json; do
        [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 70000 ] || continue
        cp "$f" fuzz/corpus/messages/
    done
    for f in spec/vectors/channel/cases/*.json; do
        [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 70000 ] || continue
        cp "$f" fuzz/corpus/channel_payload/
    done
    log "seed: done; run 'scripts/fuzz.sh merge' to minimise"
}

cmd_replay() {
    cmake -S . -B "$BR" -DMW_BUILD_SERVER=OFF -DMW_WERROR=ON >/dev/null
    quiet_build "$BR"
    ctest --test-dir "$BR" -L fuzz --output-on-failure
}

cmd_coverage() {
    if ! have_clang; then
        log "coverage needs $CC_FUZZ"
        return 1
    fi
    CC=$CC_FUZZ cmake -S . -B "$BC" -DMW_COVERAGE=ON -DMW_FUZZ=OFF -DMW_BUILD_SERVER=OFF -DBUILD_TESTING=OFF \
        -DMW_WERROR=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
    quiet_build "$BC"
    local prof=$BC/profraw objs=() h f
    rm -rf "$prof"
    mkdir -p "$prof"
    for h in $(pick "$BC" replay_); do
        objs+=(-object "$BC/fuzz/replay_$h")
        LLVM_PROFILE_FILE="$prof/$h-corpus-%p.profraw" "$BC/fuzz/replay_$h" "fuzz/corpus/$h" \
            >/dev/null 2>"$BC/replay-$h.log" || log "coverage: $h corpus replay FAILED (see $BC/replay-$h.log)"
        # Each regression input in its own process: an open bug aborts only its own run.
        if [ -d "fuzz/regressions/$h" ]; then
            for f in "fuzz/regressions/$h"/*; do
                [ -f "$f" ] || continue
                LLVM_PROFILE_FILE="$prof/$h-reg-%p.profraw" "$BC/fuzz/replay_$h" "$f" \
                    >/dev/null 2>&1 || log "coverage: $h: regression $f still fails (open bug)"
            done
        fi
    done
    "$LLVM_PROFDATA" merge -sparse "$prof"/*.profraw -o "$BC/fuzz.profdata"
    local srcs=()
    for f in "${COV_FILES[@]}"; do
        [ -f "reference/src/$f" ] && srcs+=("$ROOT/reference/src/$f")
    done
    # The first binary is positional, the others -object.
    local first=${objs[1]}
    local rest=("${objs[@]:2}")
    "$LLVM_COV" report "$first" "${rest[@]}" -instr-profile="$BC/fuzz.profdata" \
        "${srcs[@]}" | tee "$BC/coverage.txt"
    "$LLVM_COV" show "$first" "${rest[@]}" -instr-profile="$BC/fuzz.profdata" \
        -format=html -output-dir="$BC/html" -show-branches=count "${srcs[@]}" >/dev/null
    log "coverage: html in $BC/html/index.html"
    # Targets on the codec files: lines >= 95 %, branches >= 90 %.
    local below=0 line lines branches
    for f in "${COV_STRICT_FILES[@]}"; do
        line=$(grep -E "(^|/)$f[[:space:]]" "$BC/coverage.txt" || true)
        [ -n "$line" ] || continue
        # Columns: name, regions, missed, cover%, functions, missed, exec%,
        # lines, missed, cover%, branches, missed, cover%.
        lines=$(awk '{print $10}' <<<"$line" | tr -d '%')
        branches=$(awk '{print $13}' <<<"$line" | tr -d '%')
        if awk -v l="$lines" -v b="$branches" -v lt=$COV_LINE_TARGET -v bt=$COV_BRANCH_TARGET \
            'BEGIN { exit !(l + 0 >= lt && b + 0 >= bt) }'; then
            log "coverage: $f lines $lines% branches $branches%: meets target"
        else
            log "coverage: $f lines $lines% branches $branches%: BELOW target (${COV_LINE_TARGET}% / ${COV_BRANCH_TARGET}%)"
            below=1
        fi
    done
    if [ $below -ne 0 ] && [ "${FUZZ_COV_ENFORCE:-0}" = 1 ]; then
        return 1
    fi
}

sub=${1:-}
[ $# -gt 0 ] && shift
case "$sub" in
run) cmd_run "$@" ;;
smoke) cmd_smoke "$@" ;;
coverage) cmd_coverage ;;
merge) cmd_merge "$@" ;;
replay) cmd_replay ;;
seed) cmd_seed ;;
build) build_fuzz ;;
*)
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
