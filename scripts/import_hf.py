"""A Hugging Face GPT-2 to attnlab: its weights to our checkpoint (llm.c's format, fp32 or bf16)
and its tokenizer (vocab.json + merges.txt) to our tokenizer file, so that a pretrained GPT-2 trains,
samples and evaluates here.

    /usr/bin/python3 scripts/import_hf.py DIR_OR_FILE -o gpt2/model.bin [--bf16] [-tk FILE]

DIR_OR_FILE is a folder as transformers' save_pretrained writes it or the Hub holds it: config.json
and model.safetensors, or pytorch_model.bin, or the sharded form of either (*.index.json); or one
weights file with config.json beside it. Any model of the family converts (gpt2, gpt2-medium,
gpt2-large, gpt2-xl, distilgpt2, a fine-tune). Getting the folder needs the network, once, e.g.
`hf download gpt2 --local-dir hf/gpt2`; the import itself is offline.

The weights: the same 16 tensors as llm.c's, in its order. Hugging Face's GPT-2 keeps its linear
layers as Conv1D with (in, out) weights, llm.c as (out, in) like torch.nn.Linear, so c_attn, c_proj
and c_fc weights are transposed; wte gets zero rows up to Vp (V rounded up to 128); the LM head is
wte (tied), and a model whose lm_head differs is refused. `--bf16` writes version 5 (bf16, rounded
to nearest even), otherwise version 3 (fp32).

The tokenizer: Hugging Face's vocab.json and merges.txt are OpenAI's encoder.json and vocab.bpe
under other names (same content), so ./prepare --gpt2 converts them (`make prepare` first). It is
written to -tk, by default tokenizer.bin beside the checkpoint; a folder without the two files gets
a note and no tokenizer. Both files are written to a temporary name and renamed, so a reader never
sees half a file.
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
sys.path.insert(0, SCRIPTS)
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
# buffers transformers saves with some versions: the causal mask, not parameters
BUFFERS = (".attn.bias", ".attn.masked_bias")
# transformers' names of the tanh approximation of GELU, the one GPT-2 (and llm.c) uses
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "<u2"}


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
    """Every tensor of the weights files, with transformers' 'transformer.' prefix removed."""
    out = {}
    for path in files:
        tensors = read_safetensors(path) if path.endswith(".safetensors") else read_torch_bin(path)
        for name, arr in tensors.items():
            out[name[len("transformer."):] if name.startswith("transformer.") else name] = arr
    return out


def read_config(folder):
    """config.json as our model sizes {maxT, V, L, H, C, Vp}; refuses anything but the plain GPT-2
    llm.c computes (tanh GELU, LayerNorm eps 1e-5, 1/sqrt(d) attention, MLP of 4C, tied head)."""
    path = os.path.join(folder, "config.json")
    try:
        with open(path) as f:
            cfg = json.load(f)
    except FileNotFoundError:
        fail(f"{path}: no such file (Hugging Face's model config; it sits beside the weights)")
    except (json.JSONDecodeError, UnicodeDecodeError):
        fail(f"{path}: not JSON")
    if not isinstance(cfg, dict) or cfg.get("model_type") != "gpt2":
        kind = cfg.get("model_type") if isinstance(cfg, dict) else None
        fail(f"{path}: not a GPT-2 config (model_type {kind!r}, expected 'gpt2')")
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


# ---------------------------------------------------------------- our checkpoint

def check_names(tensors, cfg, where):
    """Fails on a missing or unexpected tensor and on an lm_head that is not wte."""
    expected = {hf.format(l) for _, hf, _ in TENSORS for l in (range(cfg["L"]) if "{}" in hf else [0])}
    missing = sorted(expected - set(tensors))
    if missing:
        fail(f"{where}: no tensor {missing[0]} ({len(missing)} missing); not a GPT2LMHeadModel / GPT2Model checkpoint")
    extra = sorted(n for n in set(tensors) - expected - {"lm_head.weight"} if not n.endswith(BUFFERS))
    if extra:
        fail(f"{where}: unexpected tensor {extra[0]}; not a plain GPT-2 language model")
    if "lm_head.weight" in tensors and not np.array_equal(tensors["lm_head.weight"], tensors["wte.weight"]):
        fail(f"{where}: lm_head.weight differs from wte.weight: an untied output layer, which llm.c's GPT-2 has not")


def layer_arrays(tensors, cfg, name, hf, transposed, where):
    """Our tensor `name` as a list of float32 arrays to write one after another (one per layer for
    the per-layer tensors), each checked against its shape."""
    shape = dict(ref_gpt2.tensor_shapes(cfg))[name]
    per_layer = "{}" in hf
    want = shape[1:] if per_layer else shape
    if name == "wte":
        want = (cfg["V"], cfg["C"])
    out = []
    for l in range(cfg["L"]) if per_layer else [None]:
        key = hf.format(l)
        arr = np.asarray(tensors[key], dtype=np.float32)
        arr = arr.T if transposed else arr
        if tuple(arr.shape) != tuple(want):
            stored, implied = (tuple(reversed(arr.shape)), tuple(reversed(want))) if transposed else (arr.shape, want)
            fail(f"{where}: {key} has shape {tuple(stored)}, config.json implies {tuple(implied)}")
        out.append(arr)
    if name == "wte":   # llm.c's padding rows: zero, never trained, never sampled
        out.append(np.zeros((cfg["Vp"] - cfg["V"], cfg["C"]), dtype=np.float32))
    return out


def to_bf16(arr):
    """float32 -> bf16 bits (uint16), rounded to nearest even as ref_gpt2.write_checkpoint does."""
    bits = np.ascontiguousarray(arr, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def write_checkpoint(path, cfg, tensors, bf16, where):
    """Our checkpoint from Hugging Face's tensors, streamed tensor by tensor (a 1.5B model never
    needs a second copy in memory)."""
    header = np.zeros(256, dtype=np.int32)
    header[:8] = [ref_gpt2.MAGIC, ref_gpt2.V_BF16 if bf16 else ref_gpt2.V_FP32,
                  cfg["maxT"], cfg["V"], cfg["L"], cfg["H"], cfg["C"], cfg["Vp"]]
    order = [name for name, _ in ref_gpt2.tensor_shapes(cfg)]
    assert order == [name for name, _, _ in TENSORS], order

    def write(f):
        f.write(header.tobytes())
        for name, hf, transposed in TENSORS:
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
    p.add_argument("source", metavar="DIR_OR_FILE", help="Hugging Face GPT-2 folder, or its weights file")
    p.add_argument("-o", "--out", required=True, help="our checkpoint to write, e.g. gpt2/model.bin")
    p.add_argument("--bf16", action="store_true", help="write bf16 parameters (version 5) instead of fp32 (3)")
    p.add_argument("-tk", "--tokenizer", help="our tokenizer file to write (default: tokenizer.bin beside -o)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    folder, files = weight_files(args.source)
    cfg = read_config(folder)
    tensors = read_weights(files)
    check_names(tensors, cfg, args.source)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    write_checkpoint(args.out, cfg, tensors, args.bf16, args.source)
    n = sum(int(np.prod(s)) for _, s in ref_gpt2.tensor_shapes(cfg)) - (cfg["Vp"] - cfg["V"]) * cfg["C"]
    print(f"wrote {args.out}: GPT-2 L={cfg['L']} H={cfg['H']} C={cfg['C']} V={cfg['V']} (Vp={cfg['Vp']}) "
          f"maxT={cfg['maxT']}, {n:,} parameters, {'bf16' if args.bf16 else 'fp32'}")
    tk_path = args.tokenizer or os.path.join(os.path.dirname(args.out), "tokenizer.bin")
    summary = import_tokenizer(folder, tk_path)
    if summary is None:
        print(f"note: {folder} has no vocab.json + merges.txt: no tokenizer written")
    else:
        print(f"wrote {tk_path}: {summary}")


if __name__ == "__main__":
    main()
