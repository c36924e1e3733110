#!/usr/bin/env bash
# The attention-sink ablation on the CPU, in one command (docs/ABLATIONS.md): makes the data if it is
# not there, builds, and trains the suite of scripts/sink_ablation.py two runs at a time with one
# thread each (on 2 cores the faster way), resuming whatever an earlier call left unfinished.
# Extra arguments go to scripts/sink_ablation.py:
#   bash scripts/sink_ablation_cpu.sh                          the core set, one seed (about 40 min on 2 quiet cores)
#   bash scripts/sink_ablation_cpu.sh --suite full --seeds 3   every variant over 3 seeds (overnight)
# The data: the King James Bible (Debian's bible-kjv), byte-level, as one long document (no
# end-of-text tokens inside: every training sequence is BOS + 127 bytes from any offset), the first
# 5 % for validation: datasets/kjv_stream. The full suite's smaller texts keep the same val shard
# and the first quarter / sixteenth of the training shard: datasets/kjv_stream_q4, _q16.
set -euo pipefail
cd "$(dirname "$0")/.."
data=datasets/kjv_stream
make -j"$(nproc)" train_gpt2 infer prepare
if ! ls "$data"/train_*.bin > /dev/null 2>&1; then
    command -v bible > /dev/null || { echo "error: the 'bible' command is missing: apt-get install bible-kjv" >&2; exit 1; }
    mkdir -p "$data"
    bible "Gen1:1-Rev22:21" > "$data/kjv.txt"
    ./prepare -o "$data" --bytes --val-frac 0.05 "$data/kjv.txt"
fi
for part in 4 16; do
    small="${data}_q$part"
    [ -f "$small/train_000000.bin" ] && continue
    mkdir -p "$small"
    cp "$data/val_000000.bin" "$data/tokenizer.bin" "$small/"
    # the first 1/part of the training tokens, as a shard of its own (llm.c's format: 256 int32, then uint16)
    /usr/bin/python3 - "$data/train_000000.bin" "$small/train_000000.bin" "$part" <<'PY'
import os, sys
import numpy as np
src, dst, part = sys.argv[1], sys.argv[2], int(sys.argv[3])
header = np.fromfile(src, dtype=np.int32, count=256)
tokens = np.fromfile(src, dtype=np.uint16, offset=1024)[: header[2] // part]
header[2] = len(tokens)
with open(dst + ".tmp", "wb") as f:
    f.write(header.tobytes() + tokens.tobytes())
os.replace(dst + ".tmp", dst)
print(f"wrote {dst}: {len(tokens)} tokens (1/{part} of {src})")
PY
done
OMP_WAIT_POLICY=passive /usr/bin/python3 scripts/sink_ablation.py --data "$data" --out runs/sink_ablation --parallel 2 "$@"
