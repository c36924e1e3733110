#!/usr/bin/env bash
# A refactoring check: trains GPT-2 and every mixer configuration of the model tests for 20 steps
# on byte-level shards (fixed seed, checkpoints at steps 10 and 20), then prints each run's loss
# lines and the sha256 of every file it wrote. Run it before and after a change that must not
# change the numbers, and diff the two outputs:
#   bash scripts/check/same_numbers.sh DATA_DIR > before.txt; (change); bash scripts/check/same_numbers.sh DATA_DIR > after.txt
# TRAIN names another training program, e.g. the CUDA one in the CPU emulation (one block at a time,
# so its numbers repeat): TRAIN=build/emu/FP32/train_gpt2cu bash scripts/check/same_numbers.sh DATA_DIR
# DATA_DIR holds train_*.bin and val_*.bin with a vocabulary of at most 257 tokens
# (./prepare -o DATA_DIR --bytes FILE); the step lines' timings are left out of the output.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${1:?usage: scripts/check/same_numbers.sh DATA_DIR}
train=${TRAIN:-./train_gpt2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
base="L=2,C=64,H=4,T=64,V=257"
configs=(
    ""
    ",rope=1,qknorm=1"
    ",mixer=sigmoid"
    ",mixer=sigmoid,bias=0"
    ",mixer=sigmoid,bias=0,norm=1"
    ",gate=head"
    ",mixer=sigmoid,bias=-2,gate=elem,rope=1,qknorm=1"
    ",hybrid=1,layerscale=1"
    ",mixer=mlstm,igate=exp,chunk=16"
    ",mixer=mlstm,igate=sig,chunk=64"
)
for keys in "${configs[@]}"; do
    out="$work/run"
    rm -rf "$out"
    "$train" -e "$base$keys" -i "$data/train_*.bin" -j "$data/val_*.bin" -o "$out" -b 4 -t 64 -x 20 \
        -l 3e-3 -u 5 -c 0.1 -v 10 -m 4 -s 0 -n 10 > "$work/stdout" 2>&1
    echo "== ${base}${keys}"
    grep -E "^step .*loss|val loss" "$work/stdout" | sed -E 's/ \| [0-9.]+ ms \| [0-9]+ tok\/s//'
    (cd "$out" && sha256sum main.log model_*.bin state_*.bin)
done
