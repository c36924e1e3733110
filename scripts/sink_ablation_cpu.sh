#!/usr/bin/env bash
# The attention-sink ablation on the CPU, in one command (docs/ABLATIONS.md): makes the default data
# (the byte-level King James Bible from Debian's bible-kjv, a document at every chapter and every
# fifth verse) if it is not there, builds, and trains the default suite of scripts/sink_ablation.py
# two variants at a time with one thread each (on 2 cores the faster way: docs/ABLATIONS.md),
# resuming whatever an earlier call left unfinished. Extra arguments go to scripts/sink_ablation.py
# (e.g. --only "softmax,sigmoid normalized" or --tokens 28e6 --out runs/long).
#   bash scripts/sink_ablation_cpu.sh [sink_ablation.py arguments]       (about 30 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
data=datasets/kjv_passages
make -j"$(nproc)" train_gpt2 infer prepare
if ! ls "$data"/train_*.bin > /dev/null 2>&1; then
    command -v bible > /dev/null || { echo "error: the 'bible' command is missing: apt-get install bible-kjv" >&2; exit 1; }
    mkdir -p "$data"
    bible "Gen1:1-Rev22:21" > "$data/kjv.txt"
    ./prepare -o "$data" --bytes --val-frac 0.05 --doc-start '^ +([0-9]*[05]|1) ' "$data/kjv.txt"
fi
OMP_WAIT_POLICY=passive /usr/bin/python3 scripts/sink_ablation.py --data "$data" --out runs/sink_ablation --parallel 2 "$@"
