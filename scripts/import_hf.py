"""A Hugging Face GPT-2 or Llama to attnlab: its weights to our checkpoint (llm.c's format, fp32 or
bf16) and its tokenizer (vocab.json + merges.txt) to our tokenizer file, so that a pretrained model
trains, samples and evaluates here.

    /usr/bin/python3 scripts/import_hf.py DIR_OR_FILE -o gpt2/model.bin [--bf16] [-tk FILE] [-T N]

DIR_OR_FILE is a folder as transformers' save_pretrained writes it or the Hub holds it: config.json
and model.safetensors, or pytorch_model.bin, or the sharded form of either (*.index.json); or one
weights file with config.json beside it. config.json's model_type picks the family:

- "gpt2" (GPT2LMHeadModel): any model of the family converts (gpt2, gpt2-medium, gpt2-large, gpt2-xl,
  distilgpt2, a fine-tune). Hugging Face's GPT-2 keeps its linear layers as Conv1D with (in, out)
  weights, llm.c as (out, in) like torch.nn.Linear, so c_attn, c_proj and c_fc weights are
  transposed; the LM head is wte (tied), and a model whose lm_head differs is refused.
- "llama" (LlamaForCausalLM): our model `rope=1,ln=rms,linbias=0,tie=<tie_word_embeddings>,
  mlp=swiglu,hidden=<intermediate_size>` (docs/MODEL.md section 15). q_proj, k_proj, v_proj stack
  into qkvw and gate_proj, up_proj into fcw, as they are: both rotate RoPE's halves (channel j
  with j + hs/2 of each head), so no rows are permuted. What the engine cannot compute is refused
  with one line: grouped KV heads, attention or MLP biases, rope_scaling, a rope_theta other than
  10000, an rms_norm_eps other than 1e-5 (transformers' LlamaConfig default is 1e-6), an
  activation other than SiLU, a head_dim other than hidden_size / heads, more than 65536 tokens.
  maxT is max_position_embeddings, or -T (RoPE has no position table, so any T fits).

Getting the folder needs the network, once, e.g. `hf download gpt2 --local-dir hf/gpt2`; the
import itself is offline. wte (and an untied lm_head) gets zero rows up to Vp (V rounded up to
128). `--bf16` writes version 5 (bf16, rounded to nearest even), otherwise version 3 (fp32).

The tokenizer: Hugging Face's vocab.json and merges.txt are OpenAI's encoder.json and vocab.bpe
under other names (same content), so ./prepare --gpt2 converts them (`make prepare` first). It is
written to -tk, by default tokenizer.bin beside the checkpoint; a folder without the two files (a
Llama's SentencePiece tokenizer.model or tokenizer.json alone) gets a note and no tokenizer. Both
files are written to a temporary name and renamed, so a reader never sees half a file.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(SCRIPTS)
sys.path.insert(0, os.path.join(SCRIPTS, "ref"))
import ref_gpt2  # noqa: E402  (the checkpoint's tensor order and header constants)

PREPARE = os.path.join(ROOT, "prepare")
# Our tensor, Hugging Face's name ({} is the layer), and whether it is a Conv1D weight stored (in, out)
TENSORS = [
    ("wte", "wte.weight", False), ("wpe", "wpe.weight", False),
    ("ln1w", "h.{}.ln_1.weight", False), ("ln1b", "h.{}.ln_1.bias", False),
    ("qkvw", "h.{}.attn.c_attn.weight", True), ("qkvb", "h.{}.attn.c_attn.bias", False),
    ("attprojw", "h.{}.attn.c_proj.weight", True), ("attprojb", "h.{}.attn.c_proj.bias", False),
    ("ln2w", "h.{}.ln_2.weight", False), ("ln2b", "h.{}.ln_2.bias", False),
    ("fcw", "h.{}.mlp.c_fc.weight", True), ("fcb", "h.{}.mlp.c_fc.bias", False),
    ("fcprojw", "h.{}.mlp.c_proj.weight", True), ("fcprojb", "h.{}.mlp.c_proj.bias", False),
    ("lnfw", "ln_f.weight", False), ("lnfb", "ln_f.bias", False),
]
# Llama's tensors (names without the "model." prefix): several names are stacked along the rows of
# ours (q, k, v; gate, up); lm_head only for an untied head (tensor_shapes decides which are used)
LLAMA_TENSORS = [
    ("wte", "embed_tokens.weight", False), ("ln1w", "layers.{}.input_layernorm.weight", False),
    ("qkvw", ("layers.{}.self_attn.q_proj.weight", "layers.{}.self_attn.k_proj.weight",
              "layers.{}.self_attn.v_proj.weight"), False),
    ("attprojw", "layers.{}.self_attn.o_proj.weight", False),
    ("ln2w", "layers.{}.post_attention_layernorm.weight", False),
    ("fcw", ("layers.{}.mlp.gate_proj.weight", "layers.{}.mlp.up_proj.weight"), False),
    ("fcprojw", "layers.{}.mlp.down_proj.weight", False), ("lnfw", "norm.weight", False),
    ("lm_head", "lm_head.weight", False),
]
# our settings of the Llama block; tie and hidden come from config.json
LLAMA_BLOCK = dict(rope=1, ln="rms", linbias=0, mlp="swiglu")
# buffers transformers saves with some versions, not parameters: GPT-2's causal mask, Llama's RoPE
# frequencies
BUFFERS = (".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq")
# transformers' names of the tanh approximation of GELU, the one GPT-2 (and llm.c) uses
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "<u2"}
# what the engine computes (attention/rope.c, layers/rmsnorm.c) and its limits (model/config.c)
ROPE_BASE, RMS_EPS = 10000.0, 1e-5
MAX_V, MAX_T = 65536, 1 << 20


def fail(message):
    """One line on stderr, exit status 1."""
    sys.exit(f"error: {message}")


def atomic_write(path, write):
    """Calls write(file) on PATH.tmp, fsyncs and renames it to PATH, so PATH is whole or absent."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def padded_vocab(V):
    """V rounded up to a multiple of 128, as llm.c pads wte."""
    return (V + 127) // 128 * 128


# ---------------------------------------------------------------- reading Hugging Face's files

def read_safetensors(path):
    """{name: float32-compatible numpy array} of a .safetensors file, memory-mapped so that large
    models are read tensor by tensor. The format: u64 header length, a JSON header of dtype, shape
    and byte offsets per tensor, then the data."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n)) if 0 < n < 100_000_000 else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict):
        fail(f"{path}: not a safetensors file")
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in SAFETENSORS_DTYPES:
            fail(f"{path}: tensor {name} has dtype {info['dtype']}; expected F32, F16, BF16 or F64")
        begin, end = info["data_offsets"]
        arr = data[begin:end].view(SAFETENSORS_DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = bf16_to_f32(arr) if info["dtype"] == "BF16" else arr
    return out


def bf16_to_f32(bits):
    """bf16 stored as uint16 -> float32 (the upper half of the float32 bits)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def read_torch_bin(path):
    """{name: numpy array} of a pytorch_model.bin (torch.load, weights only where torch has it)."""
    import torch
    try:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except TypeError:   # torch before 1.13 has no weights_only
            sd = torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001  (pickle and zip errors alike mean "not a checkpoint")
        fail(f"{path}: not a PyTorch state dict ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
    if not isinstance(sd, dict):
        fail(f"{path}: not a PyTorch state dict")
    return {k: v.float().numpy() for k, v in sd.items() if hasattr(v, "float")}


def weight_files(path):
    """(folder, [weights files]) of DIR_OR_FILE: safetensors first, then pytorch_model.bin, each
    single or sharded (the index lists the shards)."""
    if os.path.isfile(path):
        return os.path.dirname(os.path.abspath(path)), [path]
    if not os.path.isdir(path):
        fail(f"{path}: no such file or folder")
    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if os.path.isfile(os.path.join(path, single)):
            return path, [os.path.join(path, single)]
        if os.path.isfile(os.path.join(path, index)):
            with open(os.path.join(path, index)) as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            return path, [os.path.join(path, s) for s in shards]
    fail(f"{path}: no model.safetensors or pytorch_model.bin (a folder saved by transformers' save_pretrained)")


def read_weights(files):
    """Every tensor of the weights files, with transformers' 'transformer.' (GPT-2) or 'model.'
    (Llama) prefix removed."""
    out = {}
    for path in files:
        tensors = read_safetensors(path) if path.endswith(".safetensors") else read_torch_bin(path)
        for name, arr in tensors.items():
            prefix = next((p for p in ("transformer.", "model.") if name.startswith(p)), "")
            out[name[len(prefix):]] = arr
    return out


def read_config(folder, maxT=None):
    """(family, our model config) of config.json: "gpt2" or "llama" by its model_type (or
    architectures); maxT (-T) replaces a Llama's max_position_embeddings."""
    path = os.path.join(folder, "config.json")
    try:
        with open(path) as f:
            cfg = json.load(f)
    except FileNotFoundError:
        fail(f"{path}: no such file (Hugging Face's model config; it sits beside the weights)")
    except (json.JSONDecodeError, UnicodeDecodeError):
        fail(f"{path}: not JSON")
    if not isinstance(cfg, dict):
        fail(f"{path}: not a GPT-2 or Llama config (a JSON object with model_type 'gpt2' or 'llama')")
    if cfg.get("model_type") == "llama" or "LlamaForCausalLM" in (cfg.get("architectures") or []):
        return "llama", llama_config(cfg, path, maxT)
    if cfg.get("model_type") != "gpt2":
        fail(f"{path}: not a GPT-2 or Llama config (model_type {cfg.get('model_type')!r}, expected 'gpt2' or 'llama')")
    if maxT is not None:
        fail(f"-T {maxT}: only for a Llama; GPT-2's position table (wpe) fixes maxT at n_positions")
    return "gpt2", gpt2_config(cfg, path)


def gpt2_config(cfg, path):
    """config.json as our model sizes {maxT, V, L, H, C, Vp}; refuses anything but the plain GPT-2
    llm.c computes (tanh GELU, LayerNorm eps 1e-5, 1/sqrt(d) attention, MLP of 4C, tied head)."""
    C, H = cfg.get("n_embd", 768), cfg.get("n_head", 12)
    unsupported = [
        (cfg.get("activation_function", "gelu_new") not in TANH_GELUS, f"activation {cfg.get('activation_function')}"),
        (abs(cfg.get("layer_norm_epsilon", 1e-5) - 1e-5) > 1e-12,
         f"layer_norm_epsilon {cfg.get('layer_norm_epsilon')}"),
        (cfg.get("n_inner") not in (None, 4 * C), f"n_inner {cfg.get('n_inner')} (not 4 * n_embd)"),
        (not cfg.get("scale_attn_weights", True), "scale_attn_weights false"),
        (cfg.get("scale_attn_by_inverse_layer_idx", False), "scale_attn_by_inverse_layer_idx"),
        (cfg.get("add_cross_attention", False), "add_cross_attention"),
        (not cfg.get("tie_word_embeddings", True), "untied word embeddings"),
        (C % H != 0, f"n_embd {C} not divisible by n_head {H}"),
    ]
    bad = [what for is_bad, what in unsupported if is_bad]
    if bad:
        fail(f"{path}: {', '.join(bad)}: not the GPT-2 that llm.c's format holds")
    V = cfg.get("vocab_size", 50257)
    return dict(maxT=cfg.get("n_positions", 1024), V=V, L=cfg.get("n_layer", 12), H=H, C=C, Vp=padded_vocab(V))


def llama_config(cfg, path, maxT):
    """config.json of a LlamaForCausalLM as our config: the sizes and LLAMA_BLOCK with the head's
    tying and the MLP width. Missing keys take transformers' LlamaConfig defaults; refuses what
    the engine does not compute (grouped KV heads, biases, RoPE other than plain base 10000, an
    RMSNorm eps other than 1e-5, an activation other than SiLU) or cannot hold (V > 65536)."""
    C, H = cfg.get("hidden_size", 4096), cfg.get("num_attention_heads", 32)
    kv, head_dim = cfg.get("num_key_value_heads") or H, cfg.get("head_dim")
    theta, eps = cfg.get("rope_theta", 10000.0), cfg.get("rms_norm_eps", 1e-6)
    V, T = cfg.get("vocab_size", 32000), maxT or cfg.get("max_position_embeddings", 2048)
    unsupported = [
        (kv != H, f"num_key_value_heads {kv} (grouped KV; the engine's attention has a key and value per head, {H})"),
        (cfg.get("attention_bias", False), "attention_bias true"),
        (cfg.get("mlp_bias", False), "mlp_bias true"),
        (cfg.get("rope_scaling") is not None, f"rope_scaling {json.dumps(cfg.get('rope_scaling'))}"),
        (theta != ROPE_BASE, f"rope_theta {theta} (the engine's RoPE base is 10000)"),
        (abs(eps - RMS_EPS) > 1e-12, f"rms_norm_eps {eps} (the engine's RMSNorm eps is 1e-5)"),
        (cfg.get("hidden_act", "silu") not in ("silu", "swish"), f"hidden_act {cfg.get('hidden_act')} (not silu)"),
        (C % H != 0, f"hidden_size {C} not divisible by num_attention_heads {H}"),
        (C % H == 0 and head_dim not in (None, C // H), f"head_dim {head_dim} (not hidden_size / heads = {C // H})"),
        (C % H == 0 and C // H % 2, f"head size {C // H} odd (RoPE rotates channel pairs)"),
        (V > MAX_V, f"vocab_size {V} (the engine's token ids are 16-bit: at most {MAX_V})"),
        (T > MAX_T, f"max_position_embeddings {T} (the engine's T is at most {MAX_T}; -T N imports with maxT N)"),
    ]
    bad = [what for is_bad, what in unsupported if is_bad]
    if bad:
        fail(f"{path}: {', '.join(bad)}: not a Llama the engine computes")
    return dict(maxT=T, V=V, L=cfg.get("num_hidden_layers", 32), H=H, C=C, Vp=padded_vocab(V), **LLAMA_BLOCK,
                tie=int(bool(cfg.get("tie_word_embeddings", False))), hidden=cfg.get("intermediate_size", 11008))


# ---------------------------------------------------------------- our checkpoint

# per family: its name, transformers' class (for messages) and its tensor table
FAMILIES = {"gpt2": ("GPT-2", "GPT2LMHeadModel / GPT2Model", TENSORS),
            "llama": ("Llama", "LlamaForCausalLM", LLAMA_TENSORS)}


def hf_names(hf):
    """The Hugging Face names of a table row: one, or the parts stacked into our tensor."""
    return (hf,) if isinstance(hf, str) else hf


def used_rows(family, cfg):
    """The rows of the family's table that the model has (an untied head's lm_head), in checkpoint
    order."""
    shapes = dict(ref_gpt2.tensor_shapes(cfg))
    rows = [row for row in FAMILIES[family][2] if row[0] in shapes]
    assert [r[0] for r in rows] == list(shapes), (rows, list(shapes))
    return rows


def parameter_count(cfg):
    """Parameters of the model, without the padding rows of wte (and of an untied lm_head)."""
    padding = (cfg["Vp"] - cfg["V"]) * cfg["C"] * (1 if ref_gpt2.full_config(cfg)["tie"] else 2)
    return sum(int(np.prod(s)) for _, s in ref_gpt2.tensor_shapes(cfg)) - padding


def check_names(tensors, family, cfg, where):
    """Fails on a missing or unexpected tensor and, for a tied head, on an lm_head that is not wte."""
    name, model, _ = FAMILIES[family]
    rows = used_rows(family, cfg)
    expected = {n.format(l) for _, hf, _ in rows for n in hf_names(hf) for l in (range(cfg["L"]) if "{}" in n else [0])}
    missing = sorted(expected - set(tensors))
    if missing:
        fail(f"{where}: no tensor {missing[0]} ({len(missing)} missing); not a {model} checkpoint")
    extra = sorted(n for n in set(tensors) - expected - {"lm_head.weight"} if not n.endswith(BUFFERS))
    if extra:
        fail(f"{where}: unexpected tensor {extra[0]}; not a plain {name} language model")
    wte = rows[0][1]
    if "lm_head.weight" not in expected and "lm_head.weight" in tensors \
            and not np.array_equal(tensors["lm_head.weight"], tensors[wte]):
        if family == "gpt2":
            fail(f"{where}: lm_head.weight differs from wte.weight: an untied output layer, which llm.c's GPT-2 has not")
        fail(f"{where}: lm_head.weight differs from {wte}, but config.json ties them (tie_word_embeddings true)")


def layer_arrays(tensors, cfg, name, hf, transposed, where):
    """Our tensor `name` as a list of float32 arrays to write one after another (one per layer for
    the per-layer tensors; the parts of a stacked one concatenated), each checked against its shape."""
    shape = dict(ref_gpt2.tensor_shapes(cfg))[name]
    names = hf_names(hf)
    per_layer = "{}" in names[0]
    want = shape[1:] if per_layer else shape
    if name in ("wte", "lm_head"):
        want = (cfg["V"], cfg["C"])
    want = (want[0] // len(names),) + tuple(want[1:])   # of each part: q, k, v or gate, up
    out = []
    for l in range(cfg["L"]) if per_layer else [None]:
        parts = []
        for key in (n.format(l) for n in names):
            arr = np.asarray(tensors[key], dtype=np.float32)
            arr = arr.T if transposed else arr
            if tuple(arr.shape) != tuple(want):
                stored, implied = (tuple(reversed(arr.shape)), tuple(reversed(want))) if transposed else (arr.shape, want)
                fail(f"{where}: {key} has shape {tuple(stored)}, config.json implies {tuple(implied)}")
            parts.append(arr)
        out.append(parts[0] if len(parts) == 1 else np.concatenate(parts))
    if name in ("wte", "lm_head"):   # llm.c's padding rows: zero, never trained, never sampled
        out.append(np.zeros((cfg["Vp"] - cfg["V"], cfg["C"]), dtype=np.float32))
    return out


def to_bf16(arr):
    """float32 -> bf16 bits (uint16), rounded to nearest even as ref_gpt2.write_checkpoint does."""
    bits = np.ascontiguousarray(arr, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def write_checkpoint(path, family, cfg, tensors, bf16, where):
    """Our checkpoint from Hugging Face's tensors, streamed tensor by tensor (a 1.5B model never
    needs a second copy in memory). The settings go to header slots 16.. as ref_gpt2 writes them
    (settings version 1, no checksum): none for GPT-2, the Llama block's for a Llama."""
    header = np.zeros(256, dtype=np.int32)
    header[:8] = [ref_gpt2.MAGIC, ref_gpt2.V_BF16 if bf16 else ref_gpt2.V_FP32,
                  cfg["maxT"], cfg["V"], cfg["L"], cfg["H"], cfg["C"], cfg["Vp"]]
    header[16:] = ref_gpt2._mixer_header(cfg)

    def write(f):
        f.write(header.tobytes())
        for name, hf, transposed in used_rows(family, cfg):
            for arr in layer_arrays(tensors, cfg, name, hf, transposed, where):
                f.write(to_bf16(arr).tobytes() if bf16 else np.ascontiguousarray(arr, dtype="<f4").tobytes())
    atomic_write(path, write)


# ---------------------------------------------------------------- the tokenizer

def import_tokenizer(folder, out_path):
    """vocab.json + merges.txt -> our tokenizer file via ./prepare --gpt2 (they are its
    encoder.json and vocab.bpe); returns prepare's summary line, or None without the two files."""
    vocab, merges = os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")
    if not (os.path.isfile(vocab) and os.path.isfile(merges)):
        return None
    if not os.access(PREPARE, os.X_OK):
        fail(f"{PREPARE}: not built; `make prepare` builds it (it converts the tokenizer)")
    work = tempfile.mkdtemp(prefix=".import_hf.", dir=os.path.dirname(os.path.abspath(out_path)))
    try:
        src = os.path.join(work, "gpt2")
        os.mkdir(src)
        os.symlink(os.path.abspath(vocab), os.path.join(src, "encoder.json"))
        os.symlink(os.path.abspath(merges), os.path.join(src, "vocab.bpe"))
        p = subprocess.run([PREPARE, "-o", os.path.join(work, "out"), "--gpt2", src], capture_output=True, text=True)
        if p.returncode != 0:
            lines = (p.stderr.strip() or p.stdout.strip() or "failed").splitlines()
            fail(f"{folder}: the tokenizer did not convert: {lines[-1].removeprefix('error: ')}"
                 .replace(os.path.join(src, "encoder.json"), vocab).replace(os.path.join(src, "vocab.bpe"), merges))
        os.replace(os.path.join(work, "out", "tokenizer.bin"), out_path)
        summary = [line for line in p.stdout.splitlines() if line.startswith("wrote ")]
        return summary[-1].split(": ", 1)[-1] if summary else ""
    finally:
        shutil.rmtree(work, ignore_errors=True)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="DIR_OR_FILE", help="Hugging Face GPT-2 or Llama folder, or its weights file")
    p.add_argument("-o", "--out", required=True, help="our checkpoint to write, e.g. gpt2/model.bin")
    p.add_argument("--bf16", action="store_true", help="write bf16 parameters (version 5) instead of fp32 (3)")
    p.add_argument("-tk", "--tokenizer", help="our tokenizer file to write (default: tokenizer.bin beside -o)")
    p.add_argument("-T", type=int, metavar="N",
                   help="a Llama's maxT (default: its max_position_embeddings); not for GPT-2, whose wpe fixes it")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.T is not None and not 1 <= args.T <= MAX_T:
        fail(f"-T {args.T}: maxT must be 1..{MAX_T}")
    folder, files = weight_files(args.source)
    family, cfg = read_config(folder, args.T)
    tensors = read_weights(files)
    check_names(tensors, family, cfg, args.source)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    write_checkpoint(args.out, family, cfg, tensors, args.bf16, args.source)
    block = ""
    if family == "llama":   # the descriptor's block keys, as ./train_gpt2 -e takes them
        block = " (" + ",".join(f"{k}={cfg[k]}" for k in (*LLAMA_BLOCK, "tie", "hidden")) + ")"
    print(f"wrote {args.out}: {FAMILIES[family][0]} L={cfg['L']} H={cfg['H']} C={cfg['C']} V={cfg['V']} "
          f"(Vp={cfg['Vp']}) maxT={cfg['maxT']}{block}, {parameter_count(cfg):,} parameters, "
          f"{'bf16' if args.bf16 else 'fp32'}")
    tk_path = args.tokenizer or os.path.join(os.path.dirname(args.out), "tokenizer.bin")
    summary = import_tokenizer(folder, tk_path)
    if summary is None:
        print(f"note: {folder} has no vocab.json + merges.txt: no tokenizer written")
    else:
        print(f"wrote {tk_path}: {summary}")


if __name__ == "__main__":
    main()
