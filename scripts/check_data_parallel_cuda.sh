#!/usr/bin/env bash
# The CUDA trainer's data parallelism on the GPUs of this machine (dist/comm_nccl.cu), a check for
# scripts/gpu_check.sh (needs the CUDA programs built). One small model, the same bytes and seed:
#  1. one GPU, B=4: the reference run, and a smoke test of the seam (with one rank NCCL is not called);
#  2. with two or more GPUs: -ng 2 -b 2 and -ng 2 -b 2 -z 1 (ZeRO-1) must give the reference's losses
#     within 2e-2 (relative; bf16 parameters and a bf16 gradient all-reduce round in another order);
#  3. with two or more GPUs: 8 steps straight against 4 steps, the checkpoint of step 8 removed and
#     resumed: main.log must be the same bytes (the kernels and NCCL's sums for a fixed topology are
#     deterministic).
#   bash scripts/check_data_parallel_cuda.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
python=${PYTHON:-python3}
mkdir -p "$out"
awk 'BEGIN { split("the of attention sink head token layer softmax gate memory value key query", w, " ");
             for (i = 1; i <= 3000; i++) print i ": " w[i % 13 + 1] " " w[(i * 7) % 13 + 1] "." }' > "$out/corpus.txt"
./prepare -o "$out/data" --bytes --val-frac 0.1 "$out/corpus.txt" > "$out/prepare.log"
args=(-e L=2,C=128,H=2,T=64,V=257 -i "$out/data/train_000000.bin" -j "$out/data/val_000000.bin" -t 64 -x 8
      -l 1e-3 -sh 0 -v 4 -s 0 -S 7)
losses() { grep -o "| loss [0-9.]*" "$1" | awk '{print $3}'; }
./train_gpt2cu "${args[@]}" -ng 1 -b 4 > "$out/one.log"
echo "1 GPU, B=4: $(losses "$out/one.log" | tr '\n' ' ')"
gpus=$(nvidia-smi -L | wc -l)
if [ "$gpus" -lt 2 ]; then
    echo "one GPU: the multi-GPU checks need two"
    exit 0
fi
status=0
for zero in 0 1; do
    ./train_gpt2cu "${args[@]}" -ng 2 -b 2 -z $zero > "$out/two_z$zero.log"
    $python - "$out/one.log" "$out/two_z$zero.log" "2 GPUs -z $zero" <<'PY' || status=1
import re, sys
one, two = ([float(x) for x in re.findall(r"\| loss ([\d.]+) \|", open(p).read())] for p in sys.argv[1:3])
err = max(abs(a - b) / b for a, b in zip(two, one)) if len(one) == len(two) == 8 else float("inf")
print(f"{sys.argv[3]}: losses within {err:.2e} of 1 GPU with B=4 (bound 2e-2)")
sys.exit(0 if err < 2e-2 else 1)
PY
done
./train_gpt2cu "${args[@]}" -ng 2 -b 2 -n 4 -o "$out/straight" > /dev/null
./train_gpt2cu "${args[@]}" -ng 2 -b 2 -n 4 -o "$out/resumed" > /dev/null
rm "$out"/resumed/*_00000008.bin
./train_gpt2cu "${args[@]}" -ng 2 -b 2 -n 4 -o "$out/resumed" -y 1 > /dev/null
if cmp -s "$out/straight/main.log" "$out/resumed/main.log"; then echo "2 GPUs: resumed run logs the same bytes"
else echo "FAIL 2 GPUs: the resumed run's main.log differs"; status=1; fi
exit $status
