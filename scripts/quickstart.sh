#!/usr/bin/env bash
# The quickstart: install what is needed, build, turn the King James Bible (Debian's bible-kjv,
# no internet needed) into shards with a 2048-token BPE trained on it, train a small GPT-2 on the
# CPU, sample from it, and measure its attention sinks.
#   bash scripts/quickstart.sh            (about three minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
make -j2 train_gpt2 infer prepare
mkdir -p datasets/kjv
bible "Gen1:1-Rev22:21" > datasets/kjv/kjv.txt
./prepare -o datasets/kjv --vocab 2048 --val-frac 0.05 --doc-start '^ +[0-9]+ ' datasets/kjv/kjv.txt   # a verse, a document
./train_gpt2 -e "L=4,C=192,H=6,T=256,V=2048" -i "datasets/kjv/*train*.bin" -j "datasets/kjv/*val*.bin" \
    -o runs/kjv -b 16 -t 256 -x 400 -l 3e-3 -u 30 -k cosine -q 0.1 -c 0.1 -v 50 -m 20 -s 200 -g 64 -sa 100
./infer -e runs/kjv/model_00000400.bin -tk datasets/kjv/tokenizer.bin -p "And God said" -n 200 -temp 0.8 -topk 40
./infer -e runs/kjv/model_00000400.bin -tk datasets/kjv/tokenizer.bin -sa "datasets/kjv/val_*.bin" -json runs/kjv/sinks.json
/usr/bin/python3 scripts/plot_sinks.py runs/kjv/sinks.json
/usr/bin/python3 scripts/plot_run.py runs/kjv --tokens-per-step 4096   # losses, lr, grad norm, sinks: runs/kjv/run.png
