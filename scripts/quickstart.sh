#!/usr/bin/env bash
# The quickstart: install what is needed, build, turn the King James Bible (Debian's bible-kjv,
# no internet needed) into byte-level shards, train a tiny GPT-2 on the CPU, and sample from it.
#   bash scripts/quickstart.sh            (about two minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
make -j2 train_gpt2 infer prepare
mkdir -p datasets/kjv
bible "Gen1:1-Rev22:21" > datasets/kjv/kjv.txt
./prepare -o datasets/kjv --bytes --val-frac 0.05 datasets/kjv/kjv.txt
./train_gpt2 -e "L=4,C=128,H=4,T=128,V=257" -i "datasets/kjv/*train*.bin" -j "datasets/kjv/*val*.bin" \
    -o runs/kjv -b 16 -t 128 -x 600 -l 2e-3 -u 30 -k cosine -q 0.1 -c 0.1 -v 100 -m 20 -s 200 -g 128
./infer -e runs/kjv/model_00000600.bin -tk datasets/kjv/tokenizer.bin -n 400 -temp 0.8 -topk 40
