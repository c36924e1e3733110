#!/usr/bin/env bash
# The one prepared GPU check (about 5 minutes on one H200): builds the CPU and CUDA programs, runs
# test_cuda (every CUDA kernel against its CPU twin) in the fp32 and bf16 builds, compares the
# CUDA programs with the CPU programs (scripts/compare_cuda_cpu.sh: the trainer's first-step loss,
# every gradient and 5 training steps; infercu's -eval loss and KV-cache decoding), and runs the GPU
# benchmarks. Full output in $OUT/gpu_check.txt; the short table is printed last.
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
PEAK=${PEAK_TFLOPS:-989}   # dense bf16 TFLOP/s of an H100/H200 SXM
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

# benchmarks (bf16 build): GPT-2 124M training at T = 1024, and the attention kernels alone
python3 - "$OUT/random_train.bin" <<'PY'
import sys, numpy as np
n = 64 * 1024 * 25 + 1
h = np.zeros(256, dtype=np.int32); h[:3] = [20240520, 1, n]
with open(sys.argv[1], "wb") as f:
    f.write(h.tobytes()); f.write(np.random.default_rng(0).integers(0, 50257, n).astype(np.uint16).tobytes())
PY
for B in 16 32 64; do
    log "=== GPT-2 124M training, B=$B T=1024"
    RUN_LOG="$OUT/train_d12_B$B.txt"
    ./train_gpt2cu -e d12 -i "$OUT/random_train.bin" -b $B -t 1024 -x 12 -v 0 -s 0 -sh 0 > "$RUN_LOG" 2>&1
    cat "$RUN_LOG" >> "$LOG"
    # the mean of the last 8 of 12 steps (the first ones include warm-up)
    TOKS=$(grep -o '[0-9]* tok/s' "$RUN_LOG" | tail -8 | awk '{s += $1; n++} END {if (n) printf "%d", s / n}')
    # llm.c's MFU: 6N + 6 L T C FLOPs per token (N = 124M parameters, attention included), against PEAK
    MFU=$(python3 -c "t = ${TOKS:-0}; print(f'{100 * t * (6 * 124.4e6 + 6 * 12 * 1024 * 768) / ($PEAK * 1e12):.1f}')")
    row "GPT-2 124M B=$B T=1024" "${TOKS:-?} tok/s, MFU ${MFU}%"
done
log "=== attention kernels"
./bench_attention_cuda "$PEAK" | tee -a "$LOG" "$OUT/attention.md"
cat "$SUMMARY"
