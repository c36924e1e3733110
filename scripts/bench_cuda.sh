#!/usr/bin/env bash
# The GPU benchmarks (docs/PERF.md), on the bf16 build (make cuda): GPT-2 124M training at T=1024,
# B=16/32/64 (tokens/s, the mean of the last 8 of 12 steps, and MFU by llm.c's count of 6N + 6LTC
# FLOPs per token against PEAK_TFLOPS, the chip's dense bf16 peak: 989 for H100/H200 SXM), then the
# attention kernels alone (bench_attention_cuda). Random tokens, so no dataset is needed. Prints a
# markdown table last and writes it to OUT_DIR/bench_cuda.md, each run's log beside it.
#   bash scripts/bench_cuda.sh OUT_DIR          (make bench_cuda builds and runs it)
set -uo pipefail
cd "$(dirname "$0")/.."
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
for B in 16 32 64; do
    run_log="$out/train_d12_B$B.txt"
    ./train_gpt2cu -e d12 -i "$out/random_train.bin" -b $B -t 1024 -x 12 -v 0 -s 0 -sh 0 > "$run_log" 2>&1
    toks=$(grep -o '[0-9]* tok/s' "$run_log" | tail -8 | awk '{s += $1; n++} END {if (n == 8) printf "%d", s / n}')
    if [ -z "$toks" ]; then
        echo "| B=$B | failed: $(tail -1 "$run_log") | |" >> "$table"
        continue
    fi
    mfu=$(awk -v t="$toks" -v p="$peak" 'BEGIN { printf "%.1f", 100 * t * (6 * 124.4e6 + 6 * 12 * 1024 * 768) / (p * 1e12) }')
    echo "| B=$B | $toks | $mfu % |" >> "$table"
done
echo "" >> "$table"
./bench_attention_cuda "$peak" > "$out/attention.txt" 2>&1 || echo "bench_attention_cuda failed: $(tail -1 "$out/attention.txt")" >> "$table"
cat "$out/attention.txt" >> "$table"
cat "$table"
