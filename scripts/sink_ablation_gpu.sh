#!/usr/bin/env bash
# The attention-sink ablation on one NVIDIA GPU: the core suite of scripts/sink_ablation.py (softmax
# with and without BOS, sigmoid b=0, sigmoid normalized, gate head, gate elem, a K sink slot) at the
# size of the sink paper's 60M setting (Gu et al., arXiv 2410.10781, section 4: d=768, 10 layers,
# context 2048, lr 4e-4 constant after warmup, weight decay 0.1 on every parameter), with the
# paper's kind of block (RMSNorm, no biases, untied LM head, exact GELU, RoPE) and BOS windows
# (every sequence is <|endoftext|> followed by 2047 tokens from any offset of the stream), as the
# CPU suite (docs/ABLATIONS.md). Differences from the paper: a GELU MLP of 4C (the paper's LLaMA
# block has SwiGLU: add mlp=swiglu to BASE to match), 12 heads of 64 (the tensor-core attention's
# head sizes are 32, 64 and 128; the paper has 8 of 96), 0.5M tokens per step, FineWeb instead of
# the Pile, and TOKENS per variant (default 200M, 400 steps) instead of 20B: the paper's softmax
# sink appears after 1-2B tokens, so expect the start of the curves, not their end. Not run yet.
#   bash scripts/sink_ablation_gpu.sh [DATA_DIR] [OUT_DIR]   (TOKENS=..., BASE=..., more flags after --)
# DATA_DIR (default datasets/fineweb) holds GPT-2-tokenized shards with documents separated by
# <|endoftext|> and the tokenizer.bin the probe set needs (line starts: docs/SINKS.md): make them
# where there is a network (the GPU machine may have none) with
#   /usr/bin/python3 scripts/download_fineweb.py --out datasets/fineweb --mb 2000 --gpt2
# and copy them over. Results: OUT_DIR/results.md and its plots (scripts/sink_ablation.py).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-datasets/fineweb}
out=${2:-runs/sinks_gpu}
tokens=${TOKENS:-200000000}
base=${BASE:-L=10,C=768,H=12,T=2048,V=50257,rope=1,bos=window,ln=rms,linbias=0,tie=0,gelu=erf}
shift $(( $# < 2 ? $# : 2 ))
[ "${1:-}" = "--" ] && shift
if ! nvidia-smi -L > /dev/null 2>&1; then
    echo "error: no NVIDIA GPU found (nvidia-smi); this ablation needs one (estimated at about an hour on an H200);" \
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
  "base": "$base",
  "batch": 16, "seq": 2048, "total_batch": 524288,
  "tokens": $tokens,
  "lr": 0.0004, "schedule": "constant", "warmup": 100, "weight_decay": 0.1, "decay_all": 1,
  "every": 50, "val_batches": 20,
  "sink_seqs": 100, "sink_T": 64, "sink_key": 1, "sink_eps": 0.3, "sink_probes": "line",
  "seed": 1337
}
EOF
ATTNLAB_TRAIN=./train_gpt2cu /usr/bin/python3 scripts/sink_ablation.py --suite core --config "$config" --data "$data" --out "$out" "$@"
