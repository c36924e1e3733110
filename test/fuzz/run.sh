#!/usr/bin/env bash
# Runs each fuzz target of BUILD (make fuzz) for FUZZ_SECONDS (default 60) on its corpus
# (BUILD/corpus/TARGET, which keeps what it finds between runs) and seeds (BUILD/seeds/TARGET).
# A finding (a sanitizer report, a crash, a timeout, an abort of the harness) fails the run; its
# input is saved as BUILD/crash_TARGET_*, and `BUILD/fuzz_TARGET FILE` replays it.
#     bash test/fuzz/run.sh BUILD TARGET...
set -uo pipefail
build=$1
shift
seconds=${FUZZ_SECONDS:-60}
# one thread: the harness longjmps out of fail(), which must not happen inside an OpenMP region
export OMP_NUM_THREADS=1
# leaks: after a failed load they are expected (fail() exits in the programs) and the harness frees
# them; after a successful one the harness itself reports what is left
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
for target in "$@"; do
    mkdir -p "$build/corpus/$target"
    log="$build/fuzz_$target.log"
    start=$(date +%s)
    if "$build/fuzz_$target" "$build/corpus/$target" "$build/seeds/$target" -max_total_time="$seconds" -timeout=20 \
        -rss_limit_mb=2048 -artifact_prefix="$build/crash_${target}_" -print_final_stats=1 > "$log" 2>&1; then
        runs=$(awk '/^stat::number_of_executed_units/ {print $2}' "$log")
        echo "fuzz_$target: $runs inputs in $(( $(date +%s) - start )) s, no finding (log: $log)"
    else
        echo "fuzz_$target: FINDING (log: $log)"
        grep -E "ERROR|FUZZ FINDING|runtime error|SUMMARY|Test unit written" "$log" | head -20
        status=1
    fi
done
exit $status
