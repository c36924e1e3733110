#!/usr/bin/env bash
# Where the CPU trainer's time goes: perf's flat profile of ./train_gpt2 training the tiny config
# (L4 C128 H4 V257, B=16, T=128) on random tokens, one thread (no OpenMP spin-waiting in the
# figures), the top symbols by share of samples, after the line naming the instruction set and
# register shapes BIN's kernels were built with (make ISA=...). docs/PERF.md keeps its output.
#   bash scripts/bench/profile_cpu.sh [BIN (./train_gpt2)] [STEPS (20)] [extra descriptor fields, e.g. ,mixer=mlstm]
set -euo pipefail
BIN=${1:-./train_gpt2}
STEPS=${2:-20}
EXTRA=${3:-}
command -v perf > /dev/null || { echo "profile_cpu.sh: perf is not installed (Debian: linux-perf)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "profile_cpu.sh: $BIN: no such executable (make train_gpt2)" >&2; exit 1; }
grep -aom1 'cpu kernels: [^)]*)' "$BIN" || echo "cpu kernels: not named in $BIN (built before common/cpu_shapes.h)"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"${PYTHON:-/usr/bin/python3}" - "$WORK/shard.bin" "$STEPS" << 'PY'
import sys
import numpy as np
path, steps = sys.argv[1], int(sys.argv[2])
n = 16 * 128 * (steps + 1) + 1
header = np.zeros(256, dtype=np.int32)
header[:3] = [20240520, 1, n]
with open(path, "wb") as f:
    f.write(header.tobytes())
    f.write(np.random.default_rng(0).integers(0, 257, n).astype(np.uint16).tobytes())
PY
OMP_NUM_THREADS=1 perf record -q -o "$WORK/perf.data" -F 2000 "$BIN" -e "L=4,C=128,H=4,T=128,V=257$EXTRA" \
    -i "$WORK/shard.bin" -b 16 -t 128 -x "$STEPS" -v 0 -s 0 -sh 0 -ng 1 | grep -o '[0-9]* tok/s' | tail -1
perf report -q -i "$WORK/perf.data" --stdio -F overhead,sym 2> /dev/null | head -20
