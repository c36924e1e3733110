#!/usr/bin/env bash
# Trains one small model on the same bytes with the same seed twice, with ./train_gpt2 (the CPU
# kernel set) and with a CUDA trainer, and compares them with scripts/compare_runs.py: the first
# step's loss and every parameter gradient (-dg dumps), then the losses of 5 AdamW steps, each
# within BOUND (relative). The model has head size 64 (the tensor-core attention path of the bf16
# build) and trains at T=100 of maxT=128 (attention tiles cut short). Used by scripts/gpu_check.sh
# on a GPU and by make test_cuda_emu on the CPU emulation of CUDA, with BOUND 1e-4 for the fp32
# build and 2e-2 for the bf16 build: there the CUDA trainer's parameters and activations are bf16
# (relative rounding 2^-9 each) while the CPU trainer's are fp32, and a gradient's path through the
# model crosses several such roundings; 2e-2 is about five bf16 ulps.
#   bash scripts/compare_trainers.sh CUDA_TRAINER OUT_DIR BOUND
set -euo pipefail
cd "$(dirname "$0")/.."
trainer=$1 out=$2 bound=$3
mkdir -p "$out"
# a fixed text (not the repository's files, which change): 3000 numbered lines of varied words
awk 'BEGIN { split("the of attention sink head token layer softmax gate memory value key query", w, " ");
             for (i = 1; i <= 3000; i++) print i ": " w[i % 13 + 1] " " w[(i * 7) % 13 + 1] " " w[(i * 11) % 13 + 1] "." }' \
    > "$out/corpus.txt"
./prepare -o "$out/data" --bytes --val-frac 0.1 "$out/corpus.txt" > "$out/prepare.log"
args=(-e L=2,C=128,H=2,T=128,V=257 -i "$out/data/train_000000.bin" -j "$out/data/val_000000.bin"
      -b 2 -t 100 -x 5 -l 1e-3 -sh 0 -v 0 -s 0 -S 7)
./train_gpt2 "${args[@]}" -o "$out/cpu" -dg "$out/cpu/grads.bin" > "$out/cpu.log" 2>&1 ||
    { tail -3 "$out/cpu.log"; exit 1; }
"$trainer" "${args[@]}" -o "$out/cuda" -dg "$out/cuda/grads.bin" > "$out/cuda.log" 2>&1 ||
    { tail -3 "$out/cuda.log"; exit 1; }
${PYTHON:-python3} scripts/compare_runs.py "$out/cpu" "$out/cuda" \
    '{"L": 2, "C": 128, "H": 2, "maxT": 128, "V": 257, "Vp": 384}' "$bound"
