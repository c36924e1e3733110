"""An attnlab GPT-2 checkpoint (and its tokenizer) to a Hugging Face folder, so that a model trained
here loads where people evaluate and share models:

    /usr/bin/python3 scripts/export_hf.py runs/kjv/model_00000400.bin -o hf/kjv -tk datasets/kjv/tokenizer.bin

then, in Python, `GPT2LMHeadModel.from_pretrained("hf/kjv")` and `AutoTokenizer.from_pretrained("hf/kjv")`
(or GPT2TokenizerFast). The folder gets:
- config.json: a GPT2Config of the checkpoint's sizes (vocab_size = V, not the padded Vp;
  n_positions = maxT; tanh GELU, LayerNorm eps 1e-5 as here; dropout 0, as this trainer has none;
  bos and eos = the tokenizer's end-of-text id, or V-1 without a tokenizer);
- model.safetensors: the weights in fp32, as save_pretrained names them (transformer.wte.weight, ...),
  the Conv1D weights of c_attn, c_proj and c_fc transposed to (in, out), wte without its padding
  rows, no lm_head (tied to wte);
- with a tokenizer (-tk, by default tokenizer.bin beside the checkpoint when it exists): vocab.json
  and merges.txt in GPT-2's byte alphabet with our token ids, and tokenizer_config.json
  (end-of-text as bos, eos and unk). A tokenizer file without merges (llm.c's gpt2_tokenizer.bin,
  the byte tokenizer) gets them from the ids: each token's pair is where BPE with the lower ids
  leaves it, as tiktoken recovers merges from ranks.

Only plain GPT-2 exports: a checkpoint with mixer or block options that transformers' GPT-2 has not
(sigmoid or mLSTM mixer, gate, RoPE, ALiBi, QK-norm, hybrid norm, LayerScale, sink slots; RMSNorm, no
linear biases, an untied head, erf GELU, SwiGLU, an MLP width other than 4C) is refused with one line
naming them; bos=1 (data alignment only) exports. Every file is written to a temporary name and
renamed.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_gpt2  # noqa: E402  (header constants and the checkpoint's tensor order)
from import_hf import TENSORS, atomic_write, bf16_to_f32, fail  # noqa: E402

TOKENIZER_MAGIC, TOKENIZER_MARKER = 20240328, 0x424C5441
# mixer and block settings that change the model's function; the others only matter under another
# mixer (bias, norm: sigmoid; igate, chunk: mLSTM) or only select data (bos)
ARCH_KEYS = ("mixer", "gate", "rope", "alibi", "qknorm", "hybrid", "layerscale", "sink", "ln", "linbias", "tie", "gelu",
             "mlp", "hidden")


# ---------------------------------------------------------------- our checkpoint

def check_header(path, header):
    """Fails unless the header slots 16.. hold nothing transformers' GPT-2 cannot: a mixer option
    GPT-2 has not, or a setting this script does not know. Slots 8-15 do not change the model
    (llm.c leaves them zero; attnlab keeps its checksum of the file in 14-15) and are not read."""
    known = {16, 17, *ref_gpt2.SLOTS.values()}
    unknown = [i for i in range(16, 256) if header[i] != 0 and (i not in known or header[16] == 0)]
    if unknown:
        fail(f"{path}: header slot {unknown[0]} is set ({header[unknown[0]]}): settings this script does not know")
    if header[16] == 0:
        return
    if header[16] != ref_gpt2.ATTNLAB_MARKER or header[17] not in (1, 2):
        fail(f"{path}: header slots 16-17 hold {header[16]}, {header[17]}, not attnlab's marker and version 1 or 2")
    try:
        settings = ref_gpt2.full_config(dict(C=int(header[6]), **ref_gpt2._read_mixer_header(header)))
    except IndexError:
        fail(f"{path}: a mixer setting in the header is out of range")
    options = [f"{k}={settings[k]}" for k in ARCH_KEYS if not ref_gpt2.is_gpt2_setting(settings, k)]
    if options:
        fail(f"{path}: mixer options GPT-2 has not ({', '.join(options)}): transformers' GPT2LMHeadModel cannot "
             "hold this model; only plain GPT-2 checkpoints export")


def read_checkpoint(path):
    """(cfg, {name: float32 array}) of our checkpoint: fp32 memory-mapped, bf16 converted."""
    try:
        size = os.path.getsize(path)
        header = np.fromfile(path, dtype="<i4", count=256)
    except OSError as e:
        fail(f"{path}: cannot read: {e.strerror}")
    if size < 1024 or header[0] != ref_gpt2.MAGIC:
        fail(f"{path}: not a model checkpoint (magic {header[0] if len(header) else None}, expected {ref_gpt2.MAGIC})")
    if header[1] not in (ref_gpt2.V_FP32, ref_gpt2.V_BF16):
        fail(f"{path}: checkpoint version {header[1]} (expected 3 fp32 or 5 bf16)")
    check_header(path, header)
    cfg = dict(maxT=int(header[2]), V=int(header[3]), L=int(header[4]), H=int(header[5]), C=int(header[6]),
               Vp=int(header[7]))
    shapes = ref_gpt2.tensor_shapes(cfg)
    n = sum(int(np.prod(s)) for _, s in shapes)
    bf16 = header[1] == ref_gpt2.V_BF16
    if size != 1024 + n * (2 if bf16 else 4):
        fail(f"{path}: {size} bytes, but its header needs {1024 + n * (2 if bf16 else 4)}: truncated or corrupt")
    flat = np.memmap(path, dtype="<u2" if bf16 else "<f4", mode="r", offset=1024, shape=(n,))
    params, off = {}, 0
    for name, shape in shapes:
        k = int(np.prod(shape))
        params[name] = (bf16_to_f32(flat[off:off + k]) if bf16 else flat[off:off + k]).reshape(shape)
        off += k
    return cfg, params


def hf_tensors(cfg, params):
    """[(Hugging Face name, float32 array)] in save_pretrained's naming, Conv1D weights (in, out)."""
    out = []
    for name, hf, transposed in TENSORS:
        layers = range(cfg["L"]) if "{}" in hf else [None]
        for l in layers:
            arr = params[name] if l is None else params[name][l]
            if name == "wte":
                arr = arr[:cfg["V"]]
            out.append(("transformer." + hf.format(l), arr.T if transposed else arr))
    return out


def write_safetensors(path, tensors):
    """A .safetensors file of float32 tensors: u64 header length, the JSON header (padded with
    spaces to 8 bytes), the data in header order; metadata format "pt" as transformers expects."""
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, arr in tensors:
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + 4 * arr.size]}
        off += 4 * arr.size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)

    def write(f):
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        for _, arr in tensors:
            f.write(np.ascontiguousarray(arr, dtype="<f4").tobytes())
    atomic_write(path, write)


def gpt2_config(cfg, eot):
    """transformers' GPT2Config of our model, as config.json."""
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": cfg["V"], "n_positions": cfg["maxT"], "n_ctx": cfg["maxT"], "n_embd": cfg["C"],
        "n_layer": cfg["L"], "n_head": cfg["H"], "n_inner": None, "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
        "initializer_range": 0.02, "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False, "tie_word_embeddings": True, "use_cache": True,
        "bos_token_id": eot, "eos_token_id": eot, "torch_dtype": "float32",
    }


def write_json(path, obj):
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()))


# ---------------------------------------------------------------- the tokenizer

def read_tokenizer(path):
    """(tokens as bytes, EOT id, merges as id pairs or None) of our or llm.c's tokenizer file."""
    try:
        data = open(path, "rb").read()
    except OSError as e:
        fail(f"{path}: cannot read: {e.strerror}")
    header = np.frombuffer(data[:1024], dtype="<i4") if len(data) >= 1024 else np.zeros(256, np.int32)
    if header[0] != TOKENIZER_MAGIC or header[1] not in (1, 2):
        fail(f"{path}: not a tokenizer file (magic {header[0]}, expected {TOKENIZER_MAGIC}); make one with ./prepare")
    V, eot = int(header[2]), 50256 if header[1] == 1 else int(header[3])
    tokens, pos = [], 1024
    try:
        for _ in range(V):
            tokens.append(data[pos + 1:pos + 1 + data[pos]])
            pos += 1 + data[pos]
    except IndexError:
        fail(f"{path}: truncated tokenizer file ({len(tokens)} of {V} tokens)")
    merges = None
    if header[4] == TOKENIZER_MARKER:
        m = np.frombuffer(data, dtype="<i4", count=2 * int(header[5]), offset=pos).reshape(-1, 2)
        merges = [(int(a), int(b)) for a, b in m]
    if not 0 <= eot < V:
        fail(f"{path}: EOT id {eot} outside its {V} tokens")
    return tokens, eot, merges


def gpt2_alphabet():
    """GPT-2's bytes_to_unicode: the printable character that spells each byte 0..255."""
    printable = [b for b in range(256) if ord("!") <= b <= ord("~") or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def derive_merges(tokens, eot):
    """Merges of a tokenizer file that stores none: for each multi-byte token in id (= rank) order,
    byte-pair encode its bytes with the tokens of lower id only; the two parts left are its pair.
    A token that does not end in two parts is never produced by the encoder and gets no merge."""
    rank = {tok: i for i, tok in enumerate(tokens) if i != eot}
    merges = []
    for i, tok in enumerate(tokens):
        if i == eot or len(tok) < 2:
            continue
        parts = [tok[j:j + 1] for j in range(len(tok))]
        while len(parts) > 2:
            ranks = [(rank.get(parts[j] + parts[j + 1], i), j) for j in range(len(parts) - 1)]
            best, j = min(ranks)
            if best >= i:
                break
            parts[j:j + 2] = [parts[j] + parts[j + 1]]
        if len(parts) == 2 and parts[0] in rank and parts[1] in rank:
            merges.append((rank[parts[0]], rank[parts[1]]))
    return merges


def write_tokenizer(out_dir, path, V, maxT):
    """vocab.json, merges.txt and tokenizer_config.json of our tokenizer file; returns (tokens, EOT
    id, merges)."""
    tokens, eot, merges = read_tokenizer(path)
    if len(tokens) > V:
        fail(f"{path}: {len(tokens)} tokens, more than the model's vocabulary V={V}")
    if merges is None:
        merges = derive_merges(tokens, eot)
    alpha = gpt2_alphabet()
    spell = lambda b: "".join(alpha[x] for x in b)  # noqa: E731
    names = [spell(t) for t in tokens]
    vocab = {name: i for i, name in enumerate(names)}
    if len(vocab) != len(names):
        fail(f"{path}: two tokens with the same bytes; a vocab.json cannot hold them")
    lines = ["#version: 0.2"] + [f"{names[a]} {names[b]}" for a, b in merges]
    write_json(os.path.join(out_dir, "vocab.json"), vocab)
    atomic_write(os.path.join(out_dir, "merges.txt"), lambda f: f.write(("\n".join(lines) + "\n").encode()))
    special = names[eot]
    write_json(os.path.join(out_dir, "tokenizer_config.json"), {
        "tokenizer_class": "GPT2Tokenizer", "model_max_length": maxT, "add_prefix_space": False,
        "bos_token": special, "eos_token": special, "unk_token": special, "clean_up_tokenization_spaces": False})
    return tokens, eot, merges


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="our GPT-2 checkpoint (fp32 version 3 or bf16 version 5)")
    p.add_argument("-o", "--out", required=True, help="folder to write (created if needed)")
    p.add_argument("-tk", "--tokenizer",
                   help="our tokenizer file (default: tokenizer.bin beside the checkpoint, if there is one)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg, params = read_checkpoint(args.checkpoint)
    tk = args.tokenizer
    if tk is None:
        beside = os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "tokenizer.bin")
        tk = beside if os.path.isfile(beside) else None
    os.makedirs(args.out, exist_ok=True)
    eot = cfg["V"] - 1
    if tk:
        tokens, eot, merges = write_tokenizer(args.out, tk, cfg["V"], cfg["maxT"])
    write_safetensors(os.path.join(args.out, "model.safetensors"), hf_tensors(cfg, params))
    write_json(os.path.join(args.out, "config.json"), gpt2_config(cfg, eot))
    n = sum(int(np.prod(s)) for _, s in ref_gpt2.tensor_shapes(cfg)) - (cfg["Vp"] - cfg["V"]) * cfg["C"]
    print(f"wrote {args.out}: config.json, model.safetensors (GPT-2 L={cfg['L']} H={cfg['H']} C={cfg['C']} "
          f"V={cfg['V']} maxT={cfg['maxT']}, {n:,} parameters, fp32)")
    if tk:
        print(f"wrote {args.out}: vocab.json, merges.txt, tokenizer_config.json from {tk} "
              f"({len(tokens)} tokens, {len(merges)} merges, end-of-text id {eot})")
    else:
        print(f"note: no tokenizer (-tk FILE): {args.out} has the model only; end-of-text id taken as V-1 = {eot}")


if __name__ == "__main__":
    main()
