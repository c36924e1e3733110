#!/usr/bin/env bash
# The one prepared GPU check (about 5 minutes on one H200): builds the CPU and CUDA programs, runs
# test_cuda (every CUDA kernel against its CPU twin) in the fp32 and bf16 builds, compares the
# CUDA programs with the CPU programs (scripts/compare_cuda_cpu.sh: the trainer's first-step loss,
# every gradient and 5 training steps; infercu's -eval loss and KV-cache decoding), checks the
# data parallelism over NCCL (scripts/check_data_parallel_cuda.sh), and runs the GPU benchmarks. Full output in $OUT/gpu_check.txt; the short table is printed last.
#   bash scripts/gpu_check.sh            (OUT defaults to gpu_check_out)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.txt"
SUMMARY="$OUT/summary.md"
: > "$LOG"
echo "| check | result |" > "$SUMMARY"
echo "|---|---|" >> "$SUMMARY"
log() { echo "$@" | tee -a "$LOG"; }
row() { echo "| $1 | $2 |" >> "$SUMMARY"; }
step() {   # step NAME COMMAND...: runs, logs, records ok/FAILED
    local name=$1; shift
    log "=== $name: $*"
    local t0=$SECONDS
    if "$@" >> "$LOG" 2>&1; then row "$name" "ok ($((SECONDS - t0)) s)"; else row "$name" "FAILED ($((SECONDS - t0)) s)"; fi
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$LOG" 2>&1
step "build CPU" make -j16 train_gpt2 infer prepare

for P in FP32 BF16; do
    COMPARE=$([ $P = FP32 ] && echo "1e-4 exact" || echo "2e-2 report")   # see scripts/compare_cuda_cpu.sh
    step "build CUDA $P" make -j16 cuda PRECISION=$P
    step "test_cuda $P" ./test_cuda
    step "programs CUDA vs CPU $P ($COMPARE)" bash scripts/compare_cuda_cpu.sh . "$OUT/compare_$P" $COMPARE
done

# data parallelism through NCCL on the bf16 build (built last above): 1 GPU, and 2 where there are two
step "data parallel (NCCL)" bash scripts/check_data_parallel_cuda.sh . "$OUT/data_parallel" 2e-2

# the benchmarks on the bf16 build (built last above): scripts/bench_cuda.sh, its table appended
step "benchmarks" bash scripts/bench_cuda.sh "$OUT/bench"
cat "$SUMMARY" "$OUT/bench/bench_cuda.md" 2>/dev/null | tee -a "$LOG"
