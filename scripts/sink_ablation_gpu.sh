#!/usr/bin/env bash
# The attention-sink ablation on one NVIDIA GPU: the sink paper's 60M setting (Gu et al., arXiv
# 2410.10781, their section 4: d=768, 10 layers, 1M tokens per step, lr 4e-4 constant after
# warmup, weight decay 0.1, context 2048) with attnlab's GPT-2 block, scaled to about 50 minutes
# on one H200 for seven variants: softmax, three sigmoid forms, the G1 head gate, a KV sink slot and
# mLSTM. Differences from the paper, stated in docs/ABLATIONS.md: GPT-2's block (LayerNorm, GELU MLP
# of 4C, learned positions) instead of LLaMA's; 12 heads of 64 (the tensor-core attention's head sizes are
# 32, 64 and 128; the paper has 8 of 96); 0.5M tokens per step; FineWeb instead of the Pile; and
# TOKENS per variant (default 200M, 400 steps) instead of 20B: the paper's softmax sink appears
# after 1-2B tokens, so expect the start of the curves, not their end.
#   bash scripts/sink_ablation_gpu.sh [DATA_DIR] [OUT_DIR]          (TOKENS=... to change the budget)
# DATA_DIR (default datasets/fineweb) holds GPT-2-tokenized shards with documents separated by
# <|endoftext|>: make them where there is a network (the GPU machine may have none) with
#   /usr/bin/python3 scripts/download_fineweb.py --out datasets/fineweb --mb 2000 --gpt2
# and copy them over. Results: OUT_DIR/results.md and its plots (scripts/sink_ablation.py).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-datasets/fineweb}
out=${2:-runs/sinks_gpu}
tokens=${TOKENS:-200000000}
if ! nvidia-smi -L > /dev/null 2>&1; then
    echo "error: no NVIDIA GPU found (nvidia-smi); this ablation needs one (about 50 minutes on an H200);" \
         "on the CPU use scripts/sink_ablation.py (docs/ABLATIONS.md)" >&2
    exit 1
fi
if ! ls "$data"/*train*.bin > /dev/null 2>&1 || ! ls "$data"/*val*.bin > /dev/null 2>&1; then
    echo "error: $data has no train and val shards; make them with" \
         "'/usr/bin/python3 scripts/download_fineweb.py --out $data --mb 2000 --gpt2' (needs a network)" >&2
    exit 1
fi
make -j"$(nproc)" train_gpt2 infer prepare
make -j"$(nproc)" cuda PRECISION=BF16
config=$(mktemp --suffix=.json)
trap 'rm -f "$config"' EXIT
cat > "$config" <<EOF
{
  "base": "L=10,C=768,H=12,T=2048,V=50257,bos=1",
  "batch": 16, "seq": 2048, "total_batch": 524288,
  "tokens": $tokens,
  "lr": 0.0004, "schedule": "constant", "warmup": 100, "weight_decay": 0.1,
  "every": 50, "val_batches": 20,
  "sink_seqs": 100, "sink_T": 64, "sink_key": 1, "sink_eps": 0.3,
  "seed": 1337,
  "variants": {
    "softmax": "",
    "sigmoid b=-ln n": "mixer=sigmoid",
    "sigmoid b=0": "mixer=sigmoid,bias=0",
    "sigmoid normalized": "mixer=sigmoid,bias=0,norm=1",
    "gate head": "gate=head",
    "sink slot kv": "sink=kv",
    "mLSTM": "mixer=mlstm"
  }
}
EOF
ATTNLAB_TRAIN=./train_gpt2cu /usr/bin/python3 scripts/sink_ablation.py --config "$config" --data "$data" --out "$out"
