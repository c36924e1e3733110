#!/usr/bin/env bash
# The GPU benchmarks (docs/PERF.md), on the bf16 build (make cuda): GPT-2 124M training at T=1024,
# B=16/32/64 (tokens/s, the mean of the last 8 of 12 steps, and MFU by llm.c's count of 6N + 6LTC
# FLOPs per token against PEAK_TFLOPS, the chip's dense bf16 peak: 989 for H100/H200 SXM); the same
# step at B=16 with the G1 gate (gate=head, gate=elem) and with the mLSTM mixer, as tokens/s and time
# per step relative to the plain model (the gate's overhead); with several GPUs, the data-parallel
# scaling of GPT-2 124M (plain and ZeRO-1) against one GPU; then the token mixers alone
# (bench_attention_cuda: flash softmax, sigmoid and mLSTM, forward and forward+backward). Random
# tokens, so no dataset is needed. An estimated 1-2 minutes on one H200. Prints a markdown table
# last and writes it to OUT_DIR/bench_cuda.md, each run's log beside it.
#   bash scripts/bench/bench_cuda.sh OUT_DIR          (make bench_cuda builds and runs it)
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${1:-bench_cuda_out}
peak=${PEAK_TFLOPS:-989}
mkdir -p "$out"
table="$out/bench_cuda.md"
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "GPU: ${gpu:-unknown}, peak ${peak} TFLOP/s (bf16 dense)" > "$table"
echo "" >> "$table"
echo "| GPT-2 124M training, T=1024 | tokens/s | MFU |" >> "$table"
echo "|---|---|---|" >> "$table"

# a shard of 64 x 1024 x 25 random GPT-2 token ids (llm.c's format: 256 int32 header, uint16 tokens)
${PYTHON:-python3} - "$out/random_train.bin" <<'PY'
import array, random, sys
n = 64 * 1024 * 25 + 1
header = array.array("i", [20240520, 1, n] + [0] * 253)
rng = random.Random(0)
tokens = array.array("H", (rng.randrange(50257) for _ in range(n)))
with open(sys.argv[1], "wb") as f:
    header.tofile(f)
    tokens.tofile(f)
PY
# tokens/s of the last 8 of 12 steps of train_gpt2cu on the random shard; empty if the run failed
train_tokens_per_s() {   # LOG MODEL B [GPUS [FLAGS...]]: on one GPU unless GPUS says otherwise
    local log=$1 model=$2 B=$3 gpus=${4:-1}
    shift $(($# < 4 ? $# : 4))
    ./train_gpt2cu -e "$model" -i "$out/random_train.bin" -b "$B" -t 1024 -x 12 -v 0 -s 0 -sh 0 -ng "$gpus" "$@" \
        > "$log" 2>&1
    grep -o '[0-9]* tok/s' "$log" | tail -8 | awk '{s += $1; n++} END {if (n == 8) printf "%d", s / n}'
}
for B in 16 32 64; do
    run_log="$out/train_d12_B$B.txt"
    toks=$(train_tokens_per_s "$run_log" d12 $B)
    [ $B = 16 ] && base_toks=$toks
    if [ -z "$toks" ]; then
        echo "| B=$B | failed: $(tail -1 "$run_log") | |" >> "$table"
        continue
    fi
    mfu=$(awk -v t="$toks" -v p="$peak" 'BEGIN { printf "%.1f", 100 * t * (6 * 124.4e6 + 6 * 12 * 1024 * 768) / (p * 1e12) }')
    echo "| B=$B | $toks | $mfu % |" >> "$table"
done

echo "" >> "$table"
echo "| GPT-2 124M step, B=16, T=1024 | tokens/s | step time / plain d12 |" >> "$table"
echo "|---|---|---|" >> "$table"
for variant in "gate=head" "gate=elem" "mixer=mlstm"; do
    run_log="$out/train_d12_${variant/=/_}_B16.txt"
    toks=$(train_tokens_per_s "$run_log" "d12,$variant" 16)
    if [ -z "$toks" ]; then
        echo "| d12,$variant | failed: $(tail -1 "$run_log") | |" >> "$table"
    elif [ -z "${base_toks:-}" ]; then
        echo "| d12,$variant | $toks | (plain d12 failed) |" >> "$table"
    else
        echo "| d12,$variant | $toks | $(awk -v b="$base_toks" -v t="$toks" 'BEGIN { printf "%.3f", b / t }') |" >> "$table"
    fi
done
# data parallelism over NCCL (dist/comm_nccl.cu), where there are several GPUs: GPT-2 124M at B=32 per
# GPU on all of them, plain (the reduction overlapped with the backward) and ZeRO-1, against one GPU
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
if [ "$gpus" -ge 2 ]; then
    echo "" >> "$table"
    echo "| GPT-2 124M, B=32 per GPU, T=1024 | tokens/s | scaling vs 1 GPU |" >> "$table"
    echo "|---|---|---|" >> "$table"
    one=$(grep -o '^| B=32 | [0-9]*' "$table" | awk '{print $4}')
    for zero in 0 1; do
        run_log="$out/train_d12_B32_${gpus}gpus_z$zero.txt"
        toks=$(train_tokens_per_s "$run_log" d12 32 "$gpus" -z $zero)
        scale=$([ -n "$toks" ] && [ -n "$one" ] && awk -v t="$toks" -v o="$one" -v n="$gpus" \
                 'BEGIN { printf "%.2fx of %dx", t / o, n }')
        echo "| $gpus GPUs, -z $zero | ${toks:-failed: $(tail -1 "$run_log")} | $scale |" >> "$table"
    done
fi
echo "" >> "$table"
./bench_attention_cuda "$peak" > "$out/attention.txt" 2>&1 || echo "bench_attention_cuda failed: $(tail -1 "$out/attention.txt")" >> "$table"
cat "$out/attention.txt" >> "$table"
cat "$table"
