#!/usr/bin/env bash
# The CUDA trainer's data parallelism over NCCL (dist/comm_nccl.cu), for scripts/gpu_check.sh on the
# GPUs of the machine and for make test_cuda_emu on two emulated GPUs (test/cuda/emulate/nccl.h).
# One small model, the same bytes and seed:
#  1. one GPU, B=4: the reference run, and a smoke test of the seam (with one rank NCCL is not called);
#  2. with two or more GPUs: -ng 2 -b 2 and -ng 2 -b 2 -z 1 (ZeRO-1) must give the reference's losses
#     within BOUND (relative): 2e-2 for the bf16 build (bf16 parameters and a bf16 gradient all-reduce
#     round in another order), 1e-4 for the fp32 build (fp32 sums in another order, over 8 steps);
#  3. with two or more GPUs: 8 steps straight against 4 steps, the checkpoint of step 8 removed and
#     resumed: main.log must be the same bytes (the kernels and NCCL's sums for a fixed topology are
#     deterministic).
#   bash scripts/check_data_parallel_cuda.sh CUDA_BIN_DIR OUT_DIR BOUND [GPUS]     (GPUS: nvidia-smi's count)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1 out=$2 bound=$3 gpus=${4:-$(nvidia-smi -L | wc -l)}
python=${PYTHON:-python3}
mkdir -p "$out"
awk 'BEGIN { split("the of attention sink head token layer softmax gate memory value key query", w, " ");
             for (i = 1; i <= 3000; i++) print i ": " w[i % 13 + 1] " " w[(i * 7) % 13 + 1] "." }' > "$out/corpus.txt"
./prepare -o "$out/data" --bytes --val-frac 0.1 "$out/corpus.txt" > "$out/prepare.log"
args=(-e L=2,C=64,H=2,T=32,V=257 -i "$out/data/train_000000.bin" -j "$out/data/val_000000.bin" -t 32 -x 8
      -l 1e-3 -sh 0 -v 4 -s 0 -S 7)
losses() { grep -o "| loss [0-9.]*" "$1" | awk '{print $3}'; }
"$bin/train_gpt2cu" "${args[@]}" -ng 1 -b 4 > "$out/one.log"
echo "1 GPU, B=4: $(losses "$out/one.log" | tr '\n' ' ')"
if [ "$gpus" -lt 2 ]; then
    echo "one GPU: the multi-GPU checks need two"
    exit 0
fi
status=0
for zero in 0 1; do
    "$bin/train_gpt2cu" "${args[@]}" -ng 2 -b 2 -z $zero > "$out/two_z$zero.log"
    $python - "$out/one.log" "$out/two_z$zero.log" "2 GPUs -z $zero" "$bound" <<'PY' || status=1
import re, sys
one, two = ([float(x) for x in re.findall(r"\| loss ([\d.]+) \|", open(p).read())] for p in sys.argv[1:3])
err = max(abs(a - b) / b for a, b in zip(two, one)) if len(one) == len(two) == 8 else float("inf")
bound = float(sys.argv[4])
print(f"{'ok' if err < bound else 'FAIL'} {sys.argv[3]}: losses within {err:.2e} of 1 GPU with B=4 (bound {bound:g})")
sys.exit(0 if err < bound else 1)
PY
done
"$bin/train_gpt2cu" "${args[@]}" -ng 2 -b 2 -n 4 -o "$out/straight" > /dev/null
"$bin/train_gpt2cu" "${args[@]}" -ng 2 -b 2 -n 4 -o "$out/resumed" > /dev/null
rm "$out"/resumed/*_00000008.bin
"$bin/train_gpt2cu" "${args[@]}" -ng 2 -b 2 -n 4 -o "$out/resumed" -y 1 > /dev/null
if cmp -s "$out/straight/main.log" "$out/resumed/main.log"; then echo "2 GPUs: resumed run logs the same bytes"
else echo "FAIL 2 GPUs: the resumed run's main.log differs"; status=1; fi
exit $status
