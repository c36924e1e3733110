#!/usr/bin/env bash
# The CUDA trainer's data parallelism over NCCL (dist/comm_nccl.cu), for scripts/gpu_check.sh on the
# GPUs of the machine and for make test_cuda_emu on two emulated GPUs (test/cuda/emulate/nccl.h).
# One small model, the same bytes and seed; one line per check, "ok ..." or "FAIL ...":
#  1. one GPU, B=4: the reference run (with one rank no NCCL communicator is made);
#  2. one GPU, B=4, ATTNLAB_FORCE_NCCL=1, plain and ZeRO-1: the one rank through an NCCL communicator
#     of its own (init, the side stream and its events, the per-layer all-reduce, the reduce and
#     broadcast of ZeRO-1, the host-value sums): NCCL must say it started (and, in the emulation, have
#     run collectives), and the losses must match the reference within BOUND (a one-rank sum is a
#     copy: they are normally the same bytes, which the line says);
#  3. with two or more GPUs: -ng 2 -b 2 and -ng 2 -b 2 -z 1 (ZeRO-1) must give the reference's losses
#     within BOUND (relative): 2e-2 for the bf16 build (bf16 parameters and a bf16 gradient all-reduce
#     round in another order), 1e-4 for the fp32 build (fp32 sums in another order, over 8 steps);
#  4. with two or more GPUs: 8 steps straight against 4 steps, the checkpoint of step 8 removed and
#     resumed: main.log must be the same bytes (the kernels and NCCL's sums for a fixed topology are
#     deterministic).
# With one GPU the last line says "1 rank through NCCL; multi-GPU untested". Exit status 1 if any check
# failed. STEPS (default 8) shortens 1.-3. (gpu_check.sh --emulate: 2, without the val loss).
#   [STEPS=N] bash scripts/check/check_data_parallel_cuda.sh CUDA_BIN_DIR OUT_DIR BOUND [GPUS]     (GPUS: nvidia-smi's count)
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=$1 out=$2 bound=$3 gpus=${4:-$(nvidia-smi -L 2>/dev/null | wc -l)}
python=${PYTHON:-python3}
mkdir -p "$out"
awk 'BEGIN { split("the of attention sink head token layer softmax gate memory value key query", w, " ");
             for (i = 1; i <= 3000; i++) print i ": " w[i % 13 + 1] " " w[(i * 7) % 13 + 1] "." }' > "$out/corpus.txt"
./prepare -o "$out/data" --bytes --val-frac 0.1 "$out/corpus.txt" > "$out/prepare.log" || { echo "FAIL prepare"; exit 1; }
steps=${STEPS:-8}
args=(-e L=2,C=64,H=2,T=32,V=257 -i "$out/data/train_000000.bin" -j "$out/data/val_000000.bin" -t 32 -x "$steps"
      -l 1e-3 -sh 0 -v "$([ "$steps" = 8 ] && echo 4 || echo 0)" -s 0 -S 7)
status=0
# train NAME ARGS...: train_gpt2cu with the common arguments, stdout to NAME.log, stderr to NAME.err
train() {
    local name=$1; shift
    "$bin/train_gpt2cu" "${args[@]}" "$@" > "$out/$name.log" 2> "$out/$name.err" ||
        { echo "FAIL $name: train_gpt2cu exited $?: $(tail -1 "$out/$name.err")"; status=1; return 1; }
}
# compare_losses LOG WHAT: LOG's losses (one per step) against one.log's within the bound
compare_losses() {
    $python - "$out/one.log" "$out/$1.log" "$2" "$bound" "$steps" <<'PY' || status=1
import re, sys
one, other = (re.findall(r"\| loss ([\d.]+) \|", open(p).read()) for p in sys.argv[1:3])
bound = float(sys.argv[4])
steps = int(sys.argv[5])
if len(one) != steps or len(other) != steps:
    print(f"FAIL {sys.argv[3]}: {len(other)} losses against the reference's {len(one)}, not {steps}")
    sys.exit(1)
err = max(abs(float(a) - float(b)) / float(b) for a, b in zip(other, one))
same = "the same losses" if one == other else f"losses within {err:.2e}"
print(f"{'ok' if err < bound else 'FAIL'} {sys.argv[3]}: {same} as 1 GPU with B=4 (bound {bound:g})")
sys.exit(0 if err < bound else 1)
PY
}
train one -ng 1 -b 4 || exit 1
echo "ok 1 GPU, B=4 (reference): losses $(grep -o "| loss [0-9.]*" "$out/one.log" | awk '{printf "%s ", $3}')"
forced=1
for zero in 0 1; do
    ATTNLAB_FORCE_NCCL=1 train "forced_z$zero" -ng 1 -b 4 -z $zero || { forced=0; continue; }
    err="$out/forced_z$zero.err"
    if ! grep -q "^NCCL (version code [0-9]*): 1 rank(s) here, 1 in all" "$err"; then
        echo "FAIL 1 GPU -z $zero, ATTNLAB_FORCE_NCCL=1: no NCCL communicator was made (no 'NCCL (version code' line)"
        status=1 forced=0
        continue
    fi
    # the emulation counts what the collectives carried: over the steps at least steps x the parameters in the
    # gradients' all-reduces (plain) or reduces (ZeRO-1)
    if grep -q "^EMU NCCL" "$err"; then
        params=$(grep -o "[0-9]* parameters" "$out/forced_z$zero.log" | head -1 | awk '{print $1}')
        moved=$(grep "^EMU NCCL" "$err" | sed -E "s/.*all-reduce [0-9]+ \(([0-9]+) elements\), reduce [0-9]+ \(([0-9]+)\).*/\\$((zero + 1))/")
        if [ -z "$params" ] || [ "$moved" -lt $((steps * params)) ]; then
            echo "FAIL 1 GPU -z $zero, ATTNLAB_FORCE_NCCL=1: the gradients did not go through NCCL ($(grep "^EMU NCCL" "$err"); ${params:-?} parameters)"
            status=1 forced=0
            continue
        fi
    fi
    compare_losses "forced_z$zero" "1 GPU -z $zero through NCCL (ATTNLAB_FORCE_NCCL=1)" || forced=0
done
if [ "$gpus" -lt 2 ]; then
    if [ $forced = 1 ]; then echo "ok data parallel: 1 rank through NCCL; multi-GPU untested"
    else echo "FAIL data parallel: 1 rank through NCCL failed; multi-GPU untested"; fi
    exit $status
fi
for zero in 0 1; do
    train "two_z$zero" -ng 2 -b 2 -z $zero && compare_losses "two_z$zero" "2 GPUs -z $zero"
done
[ "$steps" = 8 ] || exit $status   # the resume check below stops at step 4 of 8
train straight -ng 2 -b 2 -n 4 -o "$out/straight" && train resumed -ng 2 -b 2 -n 4 -o "$out/resumed" &&
    rm "$out"/resumed/*_00000008.bin && train resumed2 -ng 2 -b 2 -n 4 -o "$out/resumed" -y 1 &&
    if cmp -s "$out/straight/main.log" "$out/resumed/main.log"; then echo "ok 2 GPUs: resumed run logs the same bytes"
    else echo "FAIL 2 GPUs: the resumed run's main.log differs"; status=1; fi
exit $status
