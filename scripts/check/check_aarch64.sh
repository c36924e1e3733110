#!/usr/bin/env bash
# The aarch64 build (NEON kernel shapes, cross-compiled: make aarch64) against this machine's build:
# 8 training steps of a small model for GPT-2 (softmax) and each mixer, under qemu-user off ARM,
# and every step's loss must equal the native build's within TOL (default 1e-4). Both run on one
# thread, on the same random tokens. It checks the NEON shapes' arithmetic (through qemu's
# emulation of the instructions), not their speed on ARM hardware.
#   bash scripts/check/check_aarch64.sh [TOL (1e-4)] [NATIVE_BIN (./train_gpt2)] [ARM_BIN (./train_gpt2-aarch64)]
set -euo pipefail
cd "$(dirname "$0")/../.."
TOL=${1:-1e-4}
NATIVE=${2:-./train_gpt2}
ARM=${3:-./train_gpt2-aarch64}
STEPS=8
for bin in "$NATIVE" "$ARM"; do
    [ -x "$bin" ] || { echo "check_aarch64.sh: $bin: no such executable (make train_gpt2 aarch64)" >&2; exit 1; }
done
RUN_ARM=("$ARM")
if [ "$(uname -m)" != aarch64 ]; then
    command -v qemu-aarch64 > /dev/null ||
        { echo "check_aarch64.sh: qemu-aarch64 is not installed (Debian: qemu-user)" >&2; exit 1; }
    RUN_ARM=(qemu-aarch64 -L /usr/aarch64-linux-gnu "$ARM")
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# Tokens with something for attention to learn within a few steps: random runs of 8 tokens, each
# repeated 4 times in a row, so that the losses move with every kernel on the way.
"${PYTHON:-/usr/bin/python3}" - "$WORK/shard.bin" "$STEPS" << 'PY'
import sys
import numpy as np
n = 4 * 32 * (int(sys.argv[2]) + 1) + 1
runs = np.random.default_rng(0).integers(0, 257, (n // 32 + 1, 1, 8))
tokens = np.tile(runs, (1, 4, 1)).reshape(-1)[:n]
header = np.zeros(256, dtype=np.int32)
header[:3] = [20240520, 1, n]
with open(sys.argv[1], "wb") as f:
    f.write(header.tobytes())
    f.write(tokens.astype(np.uint16).tobytes())
PY
echo "native: $(grep -aom1 'cpu kernels: [^)]*)' "$NATIVE"); arm: $(grep -aom1 'cpu kernels: [^)]*)' "$ARM")"
MIXERS=("" ",mixer=sigmoid" ",mixer=sigmoid,norm=1" ",gate=head" ",mixer=mlstm" ",mixer=mlstm,igate=sig,chunk=8"
        ",sink=k" ",rope=1,qknorm=1" ",mixer=sigmoid,alibi=1,gate=elem")
status=0
for mixer in "${MIXERS[@]}"; do
    args=(-e "L=2,C=64,H=4,T=32,V=257$mixer" -i "$WORK/shard.bin" -b 4 -t 32 -x "$STEPS" -l 3e-3 -v 0 -s 0 -sh 0 -ng 1)
    OMP_NUM_THREADS=1 "$NATIVE" "${args[@]}" > "$WORK/native.log" 2>&1 || { cat "$WORK/native.log"; exit 1; }
    OMP_NUM_THREADS=1 "${RUN_ARM[@]}" "${args[@]}" > "$WORK/arm.log" 2>&1 || { cat "$WORK/arm.log"; exit 1; }
    "${PYTHON:-/usr/bin/python3}" - "$WORK/native.log" "$WORK/arm.log" "$TOL" "gpt2${mixer}" "$STEPS" << 'PY' || status=1
import re, sys
native, arm = ([float(x) for x in re.findall(r"\| loss ([-\d.e+]+)", open(p).read())] for p in sys.argv[1:3])
tol, name, steps = float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
diff = max((abs(a - b) for a, b in zip(native, arm)), default=float("inf"))
ok = len(native) == len(arm) == steps and diff <= tol
print(f"{'ok' if ok else 'FAIL'} {name}: {len(arm)} steps, losses {native[0]:.6f} -> {native[-1]:.6f}, "
      f"max |native - aarch64| {diff:.1e} (bound {tol:g})")
sys.exit(0 if ok else 1)
PY
done
exit $status
