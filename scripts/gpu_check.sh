#!/usr/bin/env bash
# The GPU check (docs/GPU.md): what a short device window should bring back, most valuable first,
# each step under `timeout` within an overall budget, each verdict one line on stdout and in
# OUT_DIR/verdicts.txt:
#   0 environment: the GPU, nvcc, where NCCL and cuBLASLt are, the programs (the prebuilt bundle
#     build/gpu_bundle.tar.gz when it loads here, else built on this machine with every core), ldd;
#   1 bf16: test_cuda, one process per group; GPT-2 124M training at B=16, T=1024 (the first tokens/s);
#   2 bf16: the CUDA programs against the CPU programs for every mixer configuration
#     (scripts/check/compare_cuda_cpu.sh, going on past a failure), the same training run twice compared
#     byte for byte, data parallelism through NCCL (scripts/check/check_data_parallel_cuda.sh);
#   3 benchmarks: GPT-2 124M tokens/s and MFU at B=16 and 32, the token mixers' forward and
#     forward+backward TFLOP/s at T = 1k to 16k (bench_attention_cuda; its table in OUT_DIR/bench.md);
#   4 fp32: test_cuda and the comparison at the tight bound;
#   5 ncu on one flash forward and one backward launch (occupancy, shared-memory bank conflicts),
#     compute-sanitizer memcheck and racecheck on the attention and mLSTM tests.
# A verdict line: "STAGE | WHAT | STATUS | SECONDS s | DETAIL", STATUS one of ok, FAIL, TIMEOUT, SKIP,
# info. OUT_DIR keeps at most 8 files (verdicts.txt, bench.md, logs.tar.gz: every log, rewritten after
# each stage); the work files live in a folder under /tmp. Exit status 1 if any verdict is FAIL or TIMEOUT.
# --emulate: the dry run without a GPU (CI): the emulated programs (build/emu, or EMU_BIN; make
# gpu_check_emu builds them), small shapes, the slowest test groups and the tools a GPU needs
# skipped. --stages 0,1,...: only those stages (stage 0 always runs).
#   OUT=DIR bash scripts/gpu_check.sh [--emulate] [--budget SECONDS] [--stages LIST] [OUT_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
emulate=0 budget= out=${OUT:-} stages=0,1,2,3,4,5
while [ $# -gt 0 ]; do
    case $1 in
    --emulate) emulate=1 ;;
    --budget) budget=$2; shift ;;
    --stages) stages=0,$2; shift ;;
    -*) echo "usage: OUT=DIR bash scripts/gpu_check.sh [--emulate] [--budget SECONDS] [--stages LIST] [OUT_DIR]" >&2
        exit 2 ;;
    *) out=$1 ;;
    esac
    shift
done
[ -n "$out" ] || { echo "error: gpu_check.sh: no OUT_DIR (set OUT or give it as an argument)" >&2; exit 2; }
budget=${budget:-$([ $emulate = 1 ] && echo 170 || echo 540)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/gpu_check.XXXXXX)
logs=$work/logs
mkdir -p "$logs"
verdicts=$out/verdicts.txt
: > "$verdicts"
python=${PYTHON:-python3}
jobs=$(nproc)
failures=0

# verdict STAGE WHAT STATUS SECONDS DETAIL: one line on stdout and in verdicts.txt
verdict() {
    local line="$1 | $2 | $3 | $4 s | $5"
    echo "$line"
    echo "$line" >> "$verdicts"
    case $3 in FAIL | TIMEOUT) failures=$((failures + 1)) ;; esac
}
left() { echo $((budget - SECONDS)); }
# archive: every small text file of the work folder into OUT_DIR/logs.tar.gz (replaced whole)
archive() {
    (cd "$work" && find . -type f -size -2M ! -name '*.bin' ! -name '*.gz' -print0 |
        tar --null -T - -czf "$out/logs.tar.gz.tmp") && mv "$out/logs.tar.gz.tmp" "$out/logs.tar.gz"
}
# step LOG LIMIT COMMAND...: runs COMMAND under timeout (LIMIT seconds, at most what the budget has
# left), stdout and stderr to $logs/LOG.log; sets step_rc, step_secs, step_log, step_status
step() {
    local name=$1 limit=$2; shift 2
    step_log=$logs/$name.log
    local have
    have=$(left)
    [ "$limit" -gt "$have" ] && limit=$have
    local t0=$SECONDS
    if [ "$limit" -lt 5 ]; then
        step_rc=124 step_secs=0 step_status=SKIP
        echo "skipped: the budget is spent" > "$step_log"
        return 1
    fi
    timeout --kill-after=10 "$limit" "$@" > "$step_log" 2>&1
    step_rc=$? step_secs=$((SECONDS - t0))
    case $step_rc in
    0) step_status=ok ;;
    124 | 137) step_status=TIMEOUT; echo "gpu_check: timed out after $limit s" >> "$step_log" ;;
    *) step_status=FAIL ;;
    esac
    return $step_rc
}
last_line() { grep -v "^gpu_check: timed out" "$1" | tail -1 | cut -c1-200; }
# skip_stage STAGE WHAT NEEDED: SKIP when not asked for, or when the budget has less than NEEDED seconds left
skip_stage() {
    if [[ ",$stages," != *",$1,"* ]]; then verdict "$1" "$2" SKIP 0 "not in --stages"; return 0; fi
    [ "$(left)" -ge "$3" ] && return 1
    verdict "$1" "$2" SKIP 0 "$(left) s of the budget left, the stage needs about $3"
}

# ------------------------------------------------------------------------------------------------
# 0. environment and programs

# The programs of one precision: bin[BF16], bin[FP32] folders, test[...] the test binary's name; CPU
# programs in the repository root (scripts/check/compare_cuda_cpu.sh runs ./train_gpt2 there).
declare -A bin test
if [ $emulate = 1 ]; then
    export EMU_DEVICES=1
    gpus=1 peak=989 gpu_name="emulation"
    for p in BF16 FP32; do bin[$p]=${EMU_BIN:-$root/build/emu}/$p test[$p]=test_cuda_emu; done
else
    gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
    gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
    peak=$([[ $gpu_name == *PCIe* ]] && echo 756 || echo 989)   # dense bf16 TFLOP/s: SXM 989, H100 PCIe 756
    for p in BF16 FP32; do bin[$p]=$work/bin/$p test[$p]=test_cuda; done
fi
emu_env() {   # the emulation's settings per precision, as make test_cuda_emu sets them
    [ $emulate = 1 ] || return 0
    if [ "$1" = BF16 ]; then export EMU_CONCURRENCY=2 EMU_MATH_SEED=1; else export EMU_CONCURRENCY=1 EMU_MATH_SEED=2; fi
}

environment() {
    local t0=$SECONDS
    if [ $emulate = 1 ]; then
        verdict 0 GPU SKIP 0 "emulation (--emulate): the CPU emulation of CUDA, no GPU"
    else
        nvidia-smi > "$logs/nvidia-smi.txt" 2>&1
        local q
        q=$(nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader 2>&1 | head -1)
        verdict 0 GPU info $((SECONDS - t0)) "$gpus x ${q:-none: nvidia-smi failed}; peak $peak TFLOP/s (bf16 dense)"
    fi
    verdict 0 nvcc info 0 "$(command -v nvcc > /dev/null && nvcc --version | tail -2 | head -1 || echo "not on PATH")"
    bash scripts/build_tools/find_cuda_libs.sh report > "$logs/libraries.txt" 2>&1
    while read -r line; do verdict 0 "${line%%:*}" info 0 "${line#*: }"; done < "$logs/libraries.txt"
    local dirs
    dirs=$(bash scripts/build_tools/find_cuda_libs.sh libdirs)
    [ -n "$dirs" ] && export LD_LIBRARY_PATH=$dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    verdict 0 "cores, budget" info 0 "$jobs cores; budget $budget s"
}

# cuda_runs PROGRAM: test/cuda/link_check.cu's program (device count, cuBLASLt and NCCL versions, one
# kernel) runs and its kernel ran; its output in the log and in the "CUDA runtime" verdict
cuda_runs() {
    timeout 60 "$1" > "$logs/link_check.txt" 2>&1 && grep -q "kernel ran: yes" "$logs/link_check.txt"
    local rc=$?
    verdict 0 "CUDA runtime" "$([ $rc = 0 ] && echo ok || echo FAIL)" 0 "$(basename "$1"): $(tr '\n' ' ' < "$logs/link_check.txt")"
    return $rc
}

# bundle_loads DIR: the unpacked bundle's programs find their libraries and carry sm_90 SASS, and the GPU is sm_90
bundle_loads() {
    local dir=$1 p missing cap
    cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1)
    [ "$cap" = "9.0" ] || { echo "the GPU is compute capability ${cap:-unknown}, the bundle has sm_90 only"; return 1; }
    for p in "$dir"/train_gpt2 "$dir"/infer "$dir"/prepare "$dir"/cuda_link_check "$dir"/BF16/* "$dir"/FP32/*; do
        ldd "$p" >> "$logs/ldd.txt" 2>&1
        missing=$(ldd "$p" 2>&1 | grep "not found")
        [ -z "$missing" ] || { echo "$(basename "$p"): $missing"; return 1; }
    done
    for p in "$dir"/BF16/* "$dir"/FP32/*; do
        if command -v cuobjdump > /dev/null; then
            cuobjdump --list-elf "$p" > "$logs/cuobjdump_$(basename "$p").txt" 2>&1
            grep -q "sm_90" "$logs/cuobjdump_$(basename "$p").txt" || { echo "$p: no sm_90 SASS (cuobjdump)"; return 1; }
        else
            "$python" scripts/check/fatbin_archs.py "$p" --require sass:sm_90 > /dev/null 2>&1 ||
                { echo "$p: no sm_90 SASS (scripts/check/fatbin_archs.py)"; return 1; }
        fi
    done
}

# build PRECISION: the CUDA programs on this machine, into bin[PRECISION]
build() {
    step "0_build_$1" 400 make -j"$jobs" cuda PRECISION="$1" || return 1
    mkdir -p "${bin[$1]}"
    cp train_gpt2cu infercu test_cuda bench_attention_cuda "${bin[$1]}/"
}

programs() {
    if [ $emulate = 1 ]; then
        local p missing=""
        for p in BF16/test_cuda_emu BF16/train_gpt2cu BF16/infercu BF16/bench_attention_cuda FP32/test_cuda_emu \
                 FP32/train_gpt2cu FP32/infercu; do
            [ -x "${bin[BF16]%/BF16}/$p" ] || missing+=" ${bin[BF16]%/BF16}/$p"
        done
        for p in train_gpt2 infer prepare; do [ -x "$p" ] || missing+=" $p"; done
        if [ -n "$missing" ]; then verdict 0 programs FAIL 0 "missing:$missing (make gpu_check_emu builds them)"
        else verdict 0 programs ok 0 "the emulated programs in ${bin[BF16]%/BF16} and the CPU programs"; fi
        return
    fi
    local t0=$SECONDS why="no build/gpu_bundle.tar.gz"
    if [ -f build/gpu_bundle.tar.gz ]; then
        mkdir -p "$work/bundle"
        if ! tar -xzf build/gpu_bundle.tar.gz -C "$work/bundle" 2> "$logs/bundle.txt"; then why="it does not unpack"
        elif ! why=$(bundle_loads "$work/bundle"); then :
        elif ! cuda_runs "$work/bundle/cuda_link_check"; then why="its cuda_link_check failed"
        else
            cp "$work/bundle"/{train_gpt2,infer,prepare} .
            mkdir -p "$work/bin"
            cp -r "$work/bundle/BF16" "$work/bundle/FP32" "$work/bin/"
            verdict 0 programs ok $((SECONDS - t0)) "prebuilt bundle: $(head -1 "$work/bundle/BUNDLE.txt"); ldd: every library found"
            return
        fi
    fi
    # built here: the CPU programs and the bf16 CUDA programs now, the fp32 ones in stage 4
    step 0_build_cpu 300 make -j"$jobs" train_gpt2 infer prepare build/cuda_link_check &&
        build BF16 && verdict 0 programs ok $((SECONDS - t0)) "built here with $jobs cores (bundle: $why)" ||
        verdict 0 programs "$step_status" $((SECONDS - t0)) "build failed (bundle: $why): $(last_line "$step_log")"
    [ -x build/cuda_link_check ] && cuda_runs build/cuda_link_check
    for p in "${bin[BF16]}"/*; do ldd "$p" >> "$logs/ldd_built.txt" 2>&1; done
    grep -q "not found" "$logs/ldd_built.txt" &&
        verdict 0 ldd FAIL 0 "$(grep "not found" "$logs/ldd_built.txt" | sort -u | tr '\n' ' ')"
}

# ------------------------------------------------------------------------------------------------
# 1. and 4.: test_cuda, one process per group

test_groups() {   # PRECISION STAGE
    local p=$1 stage=$2 g
    emu_env "$p"
    for g in attention mlstm matmul layers model mixers stream; do
        # the dry run leaves out the groups that take minutes in the emulation (make test_emu runs them)
        if [ $emulate = 1 ] && [[ " attention mlstm $([ "$p" = FP32 ] && echo "model matmul") " == *" $g "* ]]; then
            verdict "$stage" "test_cuda ${p,,} $g" SKIP 0 "emulation: minutes for this group; make test_emu runs it"
            continue
        fi
        step "${stage}_test_cuda_${p}_$g" 150 "${bin[$p]}/${test[$p]}" "$g"
        local summary
        summary=$(grep -E "^[0-9]+ passed, [0-9]+ failed" "$step_log" | tail -1)
        verdict "$stage" "test_cuda ${p,,} $g" "$step_status" "$step_secs" "${summary:-$(last_line "$step_log")}"
        grep "^FAIL" "$step_log" | head -5 | while read -r line; do echo "    $line" | tee -a "$verdicts"; done
    done
}

# a shard of random token ids below V (llm.c's format: 256 int32 header, uint16 tokens)
random_shard() {   # PATH TOKENS V
    "$python" - "$@" <<'PY'
import array, random, sys
path, n, V = sys.argv[1], int(sys.argv[2]) + 1, int(sys.argv[3])
rng = random.Random(0)
with open(path, "wb") as f:
    array.array("i", [20240520, 1, n] + [0] * 253).tofile(f)
    array.array("H", (rng.randrange(V) for _ in range(n))).tofile(f)
PY
}

# train_run STAGE WHAT MODEL B T STEPS [FLAGS...]: train_gpt2cu (bf16) on the random shard; the verdict
# has the losses' first and last and the mean tokens/s of the second half of the steps, with MFU for d12
train_run() {
    local stage=$1 what=$2 model=$3 B=$4 T=$5 steps=$6; shift 6
    local name
    name=${stage}_train_$(echo "$what" | tr -c 'a-zA-Z0-9\n' _)
    emu_env BF16
    step "$name" 150 "${bin[BF16]}/train_gpt2cu" -e "$model" -i "$shard" -b "$B" -t "$T" -x "$steps" -v 0 -s 0 \
        -sh 0 -ng 1 "$@"
    local detail
    detail=$(awk -v half=$((steps / 2)) -v mfu="$([[ $model == d12* ]] && echo 1 || echo 0)" -v peak="$peak" '
        /^step +[0-9]+\/[0-9]+ \| loss/ { n++; loss = $5; if (n == 1) first = $5
                                          if (n > half) { toks += $(NF - 1); k++ } }
        END { if (n == 0) exit 1
              t = k ? toks / k : 0
              printf "%d steps, loss %s -> %s, %.0f tok/s", n, first, loss, t
              if (mfu) printf " (MFU %.1f%% of %d TFLOP/s)", 100 * t * (6 * 124.4e6 + 6 * 12 * 1024 * 768) / (peak * 1e12), peak }' \
        "$step_log") || detail=$(last_line "$step_log")
    verdict "$stage" "$what" "$step_status" "$step_secs" "$detail"
}

# ------------------------------------------------------------------------------------------------
# 2. and 4.: the CUDA programs against the CPU programs, determinism, data parallelism

# compare PRECISION STAGE BOUND DECODE: scripts/check/compare_cuda_cpu.sh; one verdict, and each FAIL line
compare() {
    local p=$1 stage=$2
    emu_env "$p"
    # the dry run: one mixer configuration (the whole script is 3.5 minutes in the emulation)
    local checks=""
    [ $emulate = 1 ] && checks="mixer_mlstm_igate_exp_chunk_16"
    CHECKS=$checks PYTHON=$python step "${stage}_compare_$p" 420 bash scripts/check/compare_cuda_cpu.sh "${bin[$p]}" \
        "$work/compare_$p" "$3" "$4"
    local oks fails
    oks=$(grep -c "^ok" "$step_log") fails=$(grep -c "^FAIL" "$step_log")
    verdict "$stage" "CUDA vs CPU ${p,,} (bound $3, decode $4)" "$step_status" "$step_secs" \
        "$oks ok, $fails FAIL${checks:+ (only $checks)}"
    grep "^FAIL" "$step_log" | head -10 | while read -r line; do echo "    $line" | tee -a "$verdicts"; done
}

# the same bf16 training run twice: the checkpoints and main.log must be the same bytes
determinism() {
    local model=$1 B=$2 T=$3 steps=$4 name=$5 t0=$SECONDS run
    emu_env BF16
    for run in 1 2; do
        step "2_twice_${name}_$run" 150 "${bin[BF16]}/train_gpt2cu" -e "$model" -i "$shard" -b "$B" -t "$T" -x "$steps" \
            -v 0 -s 0 -sh 0 -ng 1 -n "$steps" -o "$work/twice_$name/$run" || break
    done
    if [ "$step_status" != ok ]; then
        verdict 2 "same run twice, $name" "$step_status" $((SECONDS - t0)) "$(last_line "$step_log")"
    elif cmp -s "$work/twice_$name/1/main.log" "$work/twice_$name/2/main.log" &&
         cmp -s "$work/twice_$name"/{1,2}/model_$(printf %08d "$steps").bin; then
        verdict 2 "same run twice, $name" ok $((SECONDS - t0)) "$steps steps of $model: main.log and checkpoint the same bytes"
    else
        verdict 2 "same run twice, $name" FAIL $((SECONDS - t0)) "$steps steps of $model: the runs differ ($(cmp "$work/twice_$name"/{1,2}/model_$(printf %08d "$steps").bin 2>&1 | head -1))"
    fi
    rm -f "$work/twice_$name"/*/*.bin
}

data_parallel() {
    emu_env BF16
    STEPS=$([ $emulate = 1 ] && echo 2 || echo 8) PYTHON=$python step 2_data_parallel 150 \
        bash scripts/check/check_data_parallel_cuda.sh "${bin[BF16]}" "$work/data_parallel" 2e-2 "$gpus"
    local last
    last=$(grep -E "^(ok|FAIL) data parallel" "$step_log" | tail -1)
    verdict 2 "data parallel (NCCL)" "$step_status" "$step_secs" "${last:-$(last_line "$step_log")}"
    grep "^FAIL" "$step_log" | head -5 | while read -r line; do echo "    $line" | tee -a "$verdicts"; done
}

# ------------------------------------------------------------------------------------------------
# 3. benchmarks: the attention kernels alone (their table in OUT_DIR/bench.md)

attention_bench() {
    emu_env BF16
    if [ $emulate = 1 ]; then
        step 3_bench_attention 100 "${bin[BF16]}/bench_attention_cuda" "$peak" 64 2 1 64
    else
        step 3_bench_attention 150 "${bin[BF16]}/bench_attention_cuda" "$peak"
    fi
    { echo "## token mixers alone (${gpu_name:-unknown GPU}, bf16)"; echo; grep -v "^gpu_check" "$step_log"; echo; } >> "$out/bench.md"
    local rows
    rows=$(grep -cE "^\| (softmax|sigmoid|mLSTM)" "$step_log")
    verdict 3 "attention kernels alone" "$step_status" "$step_secs" "$rows rows in bench.md$([ "$step_status" = ok ] || echo ": $(last_line "$step_log")")"
    # one line per mixer and T at each head size: fwd and fwd+bwd TFLOP/s
    awk -F'|' '/^\| (softmax|sigmoid b=-ln T|mLSTMexp chunk 64) \|/ {
        for (i = 2; i <= 10; i++) gsub(/^ +| +$/, "", $i)
        sub(/ b=-ln T/, "", $2)
        printf "%s T=%d hs=%d | fwd %.1f TFLOP/s, fwd+bwd %.1f TFLOP/s (%s of peak)\n", $2, $3, $4, $6, $9, $10 }' \
        "$step_log" | while read -r line; do verdict 3 "${line%% | *}" info 0 "${line#* | }"; done
}

# ------------------------------------------------------------------------------------------------
# 5. profilers

profile() {
    local tool
    for tool in ncu compute-sanitizer; do
        command -v $tool > /dev/null || verdict 5 "$tool" SKIP 0 "not on PATH$([ $emulate = 1 ] && echo " (emulation)")"
    done
    command -v ncu > /dev/null && {
        local metrics=sm__warps_active.avg.pct_of_peak_sustained_active,launch__occupancy_limit_registers,launch__occupancy_limit_shared_mem,launch__registers_per_thread,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum,smsp__sass_inst_executed_op_shared_ld.sum
        local k
        for k in attention_forward_flash_kernel attention_backward_dq_flash_kernel attention_backward_dkdv_flash_kernel; do
            step "5_ncu_$k" 90 ncu --kernel-name "regex:$k" --launch-count 1 --metrics "$metrics" \
                "${bin[BF16]}/bench_attention_cuda" "$peak" 4096 16 1 4096
            verdict 5 "ncu $k" "$step_status" "$step_secs" "$(grep -E "warps_active|bank_conflicts|occupancy_limit|registers_per" "$step_log" |
                awk '{printf "%s %s; ", $1, $NF}' | cut -c1-300)"
        done
    }
    command -v compute-sanitizer > /dev/null && {
        local g t
        for t in memcheck racecheck; do
            for g in attention mlstm; do
                step "5_sanitizer_${t}_$g" 150 compute-sanitizer --tool $t --error-exitcode 3 "${bin[BF16]}/test_cuda" "$g"
                verdict 5 "compute-sanitizer $t, test_cuda $g" "$step_status" "$step_secs" \
                    "$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$step_log" | tail -1)"
            done
        done
    }
}

# ------------------------------------------------------------------------------------------------
# the stages, most valuable first

echo "# gpu_check $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD 2>/dev/null)$([ $emulate = 1 ] && echo ", --emulate")" |
    tee -a "$verdicts"
: > "$out/bench.md"
environment
programs
archive

shard=$work/random_train.bin
if [ $emulate = 1 ]; then random_shard "$shard" 20000 257; else random_shard "$shard" $((64 * 1024 * 25)) 50257; fi
if ! skip_stage 1 "test_cuda bf16, first training run" 60; then
    test_groups BF16 1
    if [ $emulate = 1 ]; then train_run 1 "tiny model training, bf16" L=2,C=64,H=2,T=64,V=257 2 64 2
    else train_run 1 "GPT-2 124M training B=16 T=1024" d12 16 1024 12; fi
    archive
fi

if ! skip_stage 2 "CUDA vs CPU bf16, determinism, data parallel" 60; then
    compare BF16 2 2e-2 report
    if [ $emulate = 1 ]; then determinism L=2,C=64,H=2,T=64,V=257 2 64 2 tiny
    else
        determinism L=4,C=256,H=4,T=1024,V=50257 4 1024 4 softmax
        determinism L=4,C=256,H=4,T=1024,V=50257,mixer=mlstm 4 1024 4 mlstm
    fi
    data_parallel
    archive
fi

if ! skip_stage 3 "benchmarks" 40; then
    if [ $emulate = 1 ]; then
        train_run 3 "tiny model, B=2" L=2,C=64,H=2,T=64,V=257 2 64 2
        train_run 3 "tiny model, B=4" L=2,C=64,H=2,T=64,V=257 4 64 2
    else
        train_run 3 "GPT-2 124M B=16 T=1024" d12 16 1024 16
        train_run 3 "GPT-2 124M B=32 T=1024" d12 32 1024 16
    fi
    attention_bench
    archive
fi

if ! skip_stage 4 "test_cuda and CUDA vs CPU, fp32" 45; then
    if [ $emulate = 1 ] || [ -x "${bin[FP32]}/test_cuda" ] || build FP32; then
        test_groups FP32 4
        compare FP32 4 1e-4 exact
    else
        verdict 4 "build fp32" "$step_status" "$step_secs" "$(last_line "$step_log")"
    fi
    archive
fi

skip_stage 5 "ncu, compute-sanitizer" 30 || profile
rm -rf "$work/bin" "$work/bundle"   # the programs (tens of MB) need not stay in /tmp

files=$(find "$out" -type f | wc -l)
verdict end "files in OUT_DIR" "$([ "$files" -le 8 ] && echo ok || echo FAIL)" "$SECONDS" \
    "$files of at most 8: $(cd "$out" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ')"
archive
verdict end "verdicts" "$([ $failures = 0 ] && echo ok || echo FAIL)" "$SECONDS" "$failures FAIL or TIMEOUT; work files in $work"
[ $failures = 0 ]
