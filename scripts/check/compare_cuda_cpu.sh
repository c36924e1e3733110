#!/usr/bin/env bash
# The CUDA programs against the CPU programs on small models, the same bytes and the same seed:
#  1. train_gpt2cu vs train_gpt2 (scripts/check/compare_runs.py): the first step's loss and every
#     parameter gradient (-dg dumps), then the losses of 5 AdamW steps, each within BOUND (relative);
#  2. infercu vs infer on the CPU run's checkpoint: the -eval loss over the val shard, within BOUND;
#  3. infercu's greedy decoding with the KV cache against -nocache (a full forward per token): with
#     DECODE=exact the 40 tokens must be equal; with DECODE=report the agreement is printed only
#     (in bf16 the two paths round differently and an untrained model's near-ties may flip);
#  4. infercu -sa vs infer -sa (the attention-sink analysis at T=16, every line a document): every head's
#     alpha_k and the first-token attention within BOUND (absolute: weights are at most 1);
#  5. every mixer configuration of the CPU model tests on a tiny model (L=2, C=64, 2 heads of 32,
#     trained at T=48 of maxT=64): 1. (first-step loss, every gradient, 5 steps) and 3. (20 tokens):
#     gate head and elem, RoPE + QK-norm, LayerScale + hybrid norm, each sink slot kind (k, kv, logit,
#     one), sigmoid with the gate, RoPE and QK-norm, and mLSTM with the exp and the sig input gate
#     (chunk sizes that do and do not divide T);
#  6. mLSTM on the first model's size (head size 64, chunk 64 at T=100), the bf16 build's tensor-core
#     kernels: 1. and 3.;
#  7. the BOS-window data layout (bos=window, shuffled: the epoch's shift and order of the windows)
#     on the tiny model with RoPE: 1., 3. and 4. (the sink analysis at line starts).
#  8. the sink paper's block (RMSNorm, no linear biases, untied head, erf GELU, RoPE, weight decay on
#     every parameter), and the same with SwiGLU, on the first model's size: 1. and 3.
# The first model has head size 64 (the tensor-core attention of the bf16 build) and trains at T=100 of
# maxT=128 (attention tiles cut short). Bounds: 1e-4 for the fp32 build; 2e-2 for the bf16 build,
# whose parameters and activations are bf16 (relative rounding 2^-9 each) where the CPU's are fp32,
# with several such roundings on a gradient's path: 2e-2 is about five bf16 ulps.
# Every check prints one line, "ok   ..." or "FAIL ...", and a failure does not stop the others (a check
# that needs a failed one's checkpoint says so); the exit status is 1 if any failed. CHECKS (the
# environment) picks checks by name: base (1.-4.), the mixers' names as 5. prints them
# (e.g. mixer_mlstm_igate_exp_chunk_16), mlstm_tensor_core, bos_window, paper_ln_rms_...; every check when unset.
# Used by scripts/gpu_check.sh on a GPU and by make test_cuda_emu on the CPU emulation of CUDA.
#   [CHECKS="base ..."] bash scripts/check/compare_cuda_cpu.sh CUDA_BIN_DIR OUT_DIR BOUND exact|report
set -uo pipefail
cd "$(dirname "$0")/../.."
cuda_dir=$1 out=$2 bound=$3 decode=$4
python=${PYTHON:-python3}
mkdir -p "$out"
# a fixed text (not the repository's files, which change): 3000 numbered lines of varied words
awk 'BEGIN { split("the of attention sink head token layer softmax gate memory value key query", w, " ");
             for (i = 1; i <= 3000; i++) print i ": " w[i % 13 + 1] " " w[(i * 7) % 13 + 1] " " w[(i * 11) % 13 + 1] "." }' \
    > "$out/corpus.txt"
./prepare -o "$out/data" --bytes --val-frac 0.1 --doc-start '^[0-9]+:' "$out/corpus.txt" > "$out/prepare.log" ||
    { echo "FAIL prepare: $(tail -1 "$out/prepare.log")"; exit 1; }
status=0
chosen() { [ -z "${CHECKS:-}" ] || [[ " $CHECKS " == *" $1 "* ]]; }
val="$out/data/val_000000.bin"
args=(-i "$out/data/train_000000.bin" -j "$val" -b 2 -t 100 -x 5 -l 1e-3 -sh 0
      -v 0 -s 0 -S 7)
run() {   # run LOG COMMAND...: stdout to LOG, stderr to LOG.err; on failure their last lines, and status 1
    local log=$1; shift
    "$@" > "$log" 2> "$log.err" && return 0
    echo "FAIL $* (exit $?):"
    tail -3 "$log" "$log.err"
    status=1
    return 1
}
# The model descriptor (L, C, H, T, V and mixer keys) as scripts/ref/ref_gpt2.py's config, in JSON for compare_runs.py.
cfg_json() {
    $python - "$1" <<'PY'
import json, sys
cfg = {}
for item in sys.argv[1].split(","):
    key, value = item.split("=")
    key = {"T": "maxT"}.get(key, key)
    cfg[key] = int(value) if value.lstrip("-").isdigit() else float(value) if key == "bias" else value
cfg.setdefault("Vp", (cfg["V"] + 127) // 128 * 128)
if cfg.get("mixer") == "mlstm":
    cfg.setdefault("gate", "elem")   # the mLSTM output gate
print(json.dumps(cfg))
PY
}
# train_check NAME DESCRIPTOR ARGS...: train_gpt2 and train_gpt2cu on model DESCRIPTOR with ARGS for 5 steps
# into $out/NAME/{cpu,cuda}, compared by compare_runs.py
train_check() {
    local name=$1 descriptor=$2 dir=$out/$1; shift 2
    mkdir -p "$dir"
    run "$dir/cpu.log" ./train_gpt2 -e "$descriptor" "$@" -o "$dir/cpu" -dg "$dir/cpu/grads.bin" || return 1
    run "$dir/cuda.log" "$cuda_dir/train_gpt2cu" -e "$descriptor" "$@" -o "$dir/cuda" -dg "$dir/cuda/grads.bin" ||
        return 1
    local cfg
    cfg=$(cfg_json "$descriptor")
    if ! $python scripts/check/compare_runs.py "$dir/cpu" "$dir/cuda" "$cfg" "$bound" > "$dir/compare_runs.log"; then
        echo "FAIL train $name: $(tail -1 "$dir/compare_runs.log")"
        grep -E "^FAIL" "$dir/compare_runs.log"
        status=1
        return 1
    fi
    echo "ok   train $name: $(tail -1 "$dir/compare_runs.log")"
}

# 2. and 4.: infer -eval and -sa on the base run's checkpoint
eval_and_sinks() {
    local model=$1
    run "$out/eval_cpu.log" ./infer -e "$model" -eval "$val" -b 2 -t 100 &&
        run "$out/eval_cuda.log" "$cuda_dir/infercu" -e "$model" -eval "$val" -b 2 -t 100 &&
        $python - "$out/eval_cpu.log" "$out/eval_cuda.log" "$bound" <<'PY' || status=1
import re, sys
cpu, cuda = (float(re.search(r"eval loss ([\d.]+)", open(p).read()).group(1)) for p in sys.argv[1:3])
err = abs(cuda - cpu) / abs(cpu)
ok = err <= float(sys.argv[3])
print(f"{'ok  ' if ok else 'FAIL'} infer -eval: cpu {cpu} cuda {cuda} rel {err:.2e}")
sys.exit(0 if ok else 1)
PY
    sink_check base "$model"
}

# sink_check NAME MODEL: infercu -sa against infer -sa (the same probe set, which the output names), on
# 16 tokens: every line is a document of 17 to 29 bytes, and a document window may not hold a second EOT
sink_check() {
    local name=$1 sink_args=(-e "$2" -sa "$val" -sn 8 -st 16)
    run "$out/sinks_cpu_$name.log" ./infer "${sink_args[@]}" -json "$out/sinks_cpu_$name.json" &&
        run "$out/sinks_cuda_$name.log" "$cuda_dir/infercu" "${sink_args[@]}" -json "$out/sinks_cuda_$name.json" &&
        $python - "$out/sinks_cpu_$name.json" "$out/sinks_cuda_$name.json" "$bound" "$name" <<'PY' || status=1
import json, sys
cpu, cuda = (json.load(open(p)) for p in sys.argv[1:3])
flat = lambda x: [v for layer in x for head in layer for v in head]
alpha_err = max(abs(x - y) for x, y in zip(flat(cpu["alpha"]), flat(cuda["alpha"])))
err = max(alpha_err, abs(cpu["first_token_attention"] - cuda["first_token_attention"]))
ok = err <= float(sys.argv[3]) and cpu["probes"] == cuda["probes"]
print(f"{'ok  ' if ok else 'FAIL'} infer -sa {sys.argv[4]}: alpha and first-token attention within {err:.2e} "
      f"(Sink_1 cpu {cpu['sink_percent']:.2f}% cuda {cuda['sink_percent']:.2f}%; {cpu['probes'].split(':')[0]})")
sys.exit(0 if ok else 1)
PY
}

# decode_check NAME MODEL TOKENS: infercu's greedy decoding with the KV cache (or mLSTM's recurrent
# state) against -nocache, from a 3-token prompt
decode_check() {
    local name=$1 model=$2 n=$3 total=$(($3 + 3))
    local decode_args=(-e "$model" -pi 10,20,30 -n "$n" -temp 0)
    run "$out/decode_cache_$name.log" "$cuda_dir/infercu" "${decode_args[@]}" || return 1
    run "$out/decode_full_$name.log" "$cuda_dir/infercu" "${decode_args[@]}" -nocache 1 || return 1
    local cached full agree same n_cached n_full
    cached=$(cat "$out/decode_cache_$name.log") full=$(cat "$out/decode_full_$name.log")
    agree=$($python -c "import sys; a, b = sys.argv[1].split(), sys.argv[2].split(); n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b))); print(n, len(a), len(b))" "$cached" "$full")
    read -r same n_cached n_full <<< "$agree"
    if [ "$n_cached" -ne "$total" ] || [ "$n_full" -ne "$total" ]; then
        echo "FAIL infercu decode $name: expected $total tokens (3 prompt + $n), got $n_cached (KV cache) and $n_full (-nocache)"
        status=1
        return 1
    elif [ "$decode" = exact ] && [ "$same" -ne "$total" ]; then
        echo "FAIL infercu decode $name: KV cache and -nocache differ from token $same on"
        status=1
        return 1
    fi
    echo "ok   infercu decode $name: KV cache and -nocache agree on $same of $total tokens ($decode)"
}
if chosen base; then
    train_check base L=2,C=128,H=2,T=128,V=257 "${args[@]}"
    model="$out/base/cpu/model_00000005.bin"
    if [ -f "$model" ]; then
        eval_and_sinks "$model"
        decode_check base "$model" 40
    else
        echo "FAIL infer -eval, -sa and decode base: no CPU checkpoint from train base"
        status=1
    fi
fi

# 5. the mixer configurations on the tiny model (chunk 16 divides T=48, chunk 20 does not)
mixers=(gate=head,sink=k gate=elem,rope=1,qknorm=1,sink=kv hybrid=1,layerscale=1,sink=logit rope=1,sink=one
        mixer=sigmoid,bias=-2,gate=elem,rope=1,qknorm=1 mixer=mlstm,igate=exp,chunk=16 mixer=mlstm,igate=sig,chunk=20)
for keys in "${mixers[@]}"; do
    name=${keys//[=,]/_}
    chosen "$name" || continue
    train_check "$name" "L=2,C=64,H=2,T=64,V=257,$keys" -i "$out/data/train_000000.bin" -j "$val" -b 2 -t 48 -x 5 \
        -l 1e-3 -sh 0 -v 0 -s 0 -S 7 && decode_check "$name" "$out/$name/cpu/model_00000005.bin" 20
done

# 6. mLSTM on the base model (head size 64, chunk 64 over T=100: a full and a partial chunk), which in
#    the bf16 build takes the tensor-core kernels
if chosen mlstm_tensor_core; then
    train_check mlstm_tensor_core L=2,C=128,H=2,T=128,V=257,mixer=mlstm,chunk=64 "${args[@]}" &&
        decode_check mlstm_tensor_core "$out/mlstm_tensor_core/cpu/model_00000005.bin" 20
fi

# 7. the BOS-window layout, shuffled over several epochs of the windows (each with its shift)
if chosen bos_window; then
    train_check bos_window L=2,C=64,H=2,T=64,V=257,rope=1,bos=window -i "$out/data/train_000000.bin" -j "$val" \
        -b 2 -t 48 -x 5 -l 1e-3 -sh 1 -v 0 -s 0 -S 7 &&
        decode_check bos_window "$out/bos_window/cpu/model_00000005.bin" 20 &&
        sink_check bos_window "$out/bos_window/cpu/model_00000005.bin"
fi

# 8. the sink paper's block (docs/MODEL.md section 15) with -ca 1, and with SwiGLU (hidden 8C/3 -> 384)
for keys in ln=rms,linbias=0,tie=0,gelu=erf,rope=1 ln=rms,linbias=0,tie=0,mlp=swiglu,rope=1; do
    name=paper_${keys//[=,]/_}
    chosen "$name" || continue
    train_check "$name" "L=2,C=128,H=2,T=128,V=257,$keys" "${args[@]}" -c 0.1 -ca 1 &&
        decode_check "$name" "$out/$name/cpu/model_00000005.bin" 20
done
exit $status
