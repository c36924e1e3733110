"""An attnlab GPT-2 or Llama-block checkpoint (and its tokenizer) to a Hugging Face folder, so that a
model trained here loads where people evaluate and share models:

    /usr/bin/python3 scripts/export_hf.py runs/kjv/model_00000400.bin -o hf/kjv -tk datasets/kjv/tokenizer.bin

then, in Python, `AutoModelForCausalLM.from_pretrained("hf/kjv")` (a GPT2LMHeadModel or a
LlamaForCausalLM) and `AutoTokenizer.from_pretrained("hf/kjv")` (or GPT2TokenizerFast). The
checkpoint's settings pick the family:
- plain GPT-2 (every mixer and block option at GPT-2's value): config.json is a GPT2Config
  (n_positions = maxT; tanh GELU, LayerNorm eps 1e-5 as here), model.safetensors names the tensors
  as save_pretrained does (transformer.wte.weight, ...), the Conv1D weights of c_attn, c_proj and
  c_fc transposed to (in, out), no lm_head (tied to wte);
- the Llama block, `rope=1,ln=rms,linbias=0,mlp=swiglu` with softmax attention and no other mixer
  option, tied or untied head, any hidden: config.json is a LlamaConfig (intermediate_size = hidden,
  num_key_value_heads = heads, max_position_embeddings = maxT, rope_theta 10000 and rms_norm_eps
  1e-5 as here, SiLU, no biases, tie_word_embeddings = tie), model.safetensors holds qkvw split
  into q_proj, k_proj, v_proj and fcw into gate_proj, up_proj, rows as they are (both rotate RoPE's
  halves, j with j + hs/2), and lm_head.weight for an untied head.
Both: vocab_size = V, not the padded Vp (the padding rows of wte and lm_head are dropped); dropout
0, as this trainer has none; bos and eos = the tokenizer's end-of-text id, or V-1 without a
tokenizer; fp32.
With a tokenizer (-tk, by default tokenizer.bin beside the checkpoint when it exists): vocab.json
and merges.txt in GPT-2's byte alphabet with our token ids, and tokenizer_config.json
(end-of-text as bos, eos and unk). A tokenizer file without merges (llm.c's gpt2_tokenizer.bin,
the byte tokenizer) gets them from the ids: each token's pair is where BPE with the lower ids
leaves it, as tiktoken recovers merges from ranks.

Any other checkpoint (sigmoid or mLSTM mixer, gate, ALiBi, QK-norm, hybrid norm, LayerScale, sink
slots; a block that is neither GPT-2's nor Llama's, e.g. RMSNorm with a GELU MLP or linear biases)
is refused with one line naming the options each family has not; bos=1 (data alignment only)
exports. Every file is written to a temporary name and renamed.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref"))
import ref_gpt2  # noqa: E402  (header constants and the checkpoint's tensor order)
from import_hf import (FAMILIES, LLAMA_BLOCK, RMS_EPS, ROPE_BASE, atomic_write, bf16_to_f32, fail,  # noqa: E402
                       hf_names, parameter_count, used_rows)

TOKENIZER_MAGIC, TOKENIZER_MARKER = 20240328, 0x424C5441
# mixer and block settings that change the model's function; the others only matter under another
# mixer (bias, norm: sigmoid; igate, chunk: mLSTM) or only select data (bos)
ARCH_KEYS = ("mixer", "gate", "rope", "alibi", "qknorm", "hybrid", "layerscale", "sink", "ln", "linbias", "tie", "gelu",
             "mlp", "hidden")
# the settings of the Llama block (LlamaForCausalLM); tie and hidden are free, gelu is moot with SwiGLU
LLAMA_SETTINGS = dict(mixer="softmax", gate="none", alibi=0, qknorm=0, hybrid=0, layerscale=0, sink="none",
                      **LLAMA_BLOCK)
assert set(LLAMA_SETTINGS) | {"tie", "hidden", "gelu"} == set(ARCH_KEYS)


# ---------------------------------------------------------------- our checkpoint

def check_header(path, header):
    """(family, settings) of the header: "gpt2" for llm.c's GPT-2 (slots 16.. zero, settings {}) and
    attnlab's with every option at GPT-2's value, "llama" for the Llama block. Fails on any other
    model and on a setting this script does not know. Slots 8-15 do not change the model (llm.c
    leaves them zero; attnlab keeps its checksum of the file in 14-15) and are not read."""
    known = {16, 17, *ref_gpt2.SLOTS.values()}
    unknown = [i for i in range(16, 256) if header[i] != 0 and (i not in known or header[16] == 0)]
    if unknown:
        fail(f"{path}: header slot {unknown[0]} is set ({header[unknown[0]]}): settings this script does not know")
    if header[16] == 0:
        return "gpt2", {}
    if header[16] != ref_gpt2.ATTNLAB_MARKER or header[17] not in (1, 2):
        fail(f"{path}: header slots 16-17 hold {header[16]}, {header[17]}, not attnlab's marker and version 1 or 2")
    try:
        settings = ref_gpt2.full_config(dict(C=int(header[6]), **ref_gpt2._read_mixer_header(header)))
    except IndexError:
        fail(f"{path}: a mixer setting in the header is out of range")
    not_gpt2 = [f"{k}={settings[k]}" for k in ARCH_KEYS if not ref_gpt2.is_gpt2_setting(settings, k)]
    if not not_gpt2:
        return "gpt2", settings
    not_llama = [f"{k}={settings[k]}" for k, v in LLAMA_SETTINGS.items() if settings[k] != v]
    if not not_llama:
        return "llama", settings
    fail(f"{path}: mixer options GPT-2 has not ({', '.join(not_gpt2)}) and options Llama has not "
         f"({', '.join(not_llama)}): neither transformers' GPT2LMHeadModel nor LlamaForCausalLM holds this model")


def read_checkpoint(path):
    """(family, cfg, {name: float32 array}) of our checkpoint: fp32 memory-mapped, bf16 converted."""
    try:
        size = os.path.getsize(path)
        header = np.fromfile(path, dtype="<i4", count=256)
    except OSError as e:
        fail(f"{path}: cannot read: {e.strerror}")
    if size < 1024 or header[0] != ref_gpt2.MAGIC:
        fail(f"{path}: not a model checkpoint (magic {header[0] if len(header) else None}, expected {ref_gpt2.MAGIC})")
    if header[1] not in (ref_gpt2.V_FP32, ref_gpt2.V_BF16):
        fail(f"{path}: checkpoint version {header[1]} (expected 3 fp32 or 5 bf16)")
    family, settings = check_header(path, header)
    cfg = {**settings, **dict(maxT=int(header[2]), V=int(header[3]), L=int(header[4]), H=int(header[5]),
                              C=int(header[6]), Vp=int(header[7]))}
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
    return family, cfg, params


def hf_tensors(family, cfg, params):
    """[(Hugging Face name, float32 array)] in save_pretrained's naming: our stacked tensors split
    into their parts (q, k, v; gate, up), GPT-2's Conv1D weights (in, out), no padding rows."""
    prefix = "transformer." if family == "gpt2" else "model."
    out = []
    for name, hf, transposed in used_rows(family, cfg):
        names = hf_names(hf)
        for l in range(cfg["L"]) if "{}" in names[0] else [None]:
            arr = params[name] if l is None else params[name][l]
            if name in ("wte", "lm_head"):
                arr = arr[:cfg["V"]]
            for n, part in zip(names, np.split(arr, len(names))):
                hf_name = ("" if n == "lm_head.weight" else prefix) + n.format(l)
                out.append((hf_name, part.T if transposed else part))
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


def llama_config(cfg, eot):
    """transformers' LlamaConfig of our Llama-block model, as config.json: full multi-head attention,
    RoPE and RMSNorm as the engine computes them (base 10000, eps 1e-5), SiLU, no biases."""
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": cfg["V"], "hidden_size": cfg["C"], "intermediate_size": cfg["hidden"],
        "num_hidden_layers": cfg["L"], "num_attention_heads": cfg["H"], "num_key_value_heads": cfg["H"],
        "head_dim": cfg["C"] // cfg["H"], "hidden_act": "silu", "max_position_embeddings": cfg["maxT"],
        "rms_norm_eps": RMS_EPS, "rope_theta": ROPE_BASE, "rope_scaling": None, "attention_bias": False,
        "attention_dropout": 0.0, "mlp_bias": False, "pretraining_tp": 1, "initializer_range": 0.02,
        "tie_word_embeddings": bool(cfg["tie"]), "use_cache": True,
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
    family, cfg, params = read_checkpoint(args.checkpoint)
    tk = args.tokenizer
    if tk is None:
        beside = os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "tokenizer.bin")
        tk = beside if os.path.isfile(beside) else None
    os.makedirs(args.out, exist_ok=True)
    eot = cfg["V"] - 1
    if tk:
        tokens, eot, merges = write_tokenizer(args.out, tk, cfg["V"], cfg["maxT"])
    write_safetensors(os.path.join(args.out, "model.safetensors"), hf_tensors(family, cfg, params))
    write_json(os.path.join(args.out, "config.json"), (gpt2_config if family == "gpt2" else llama_config)(cfg, eot))
    block = f" hidden={cfg['hidden']} {'tied' if cfg['tie'] else 'untied'} head," if family == "llama" else ","
    print(f"wrote {args.out}: config.json, model.safetensors ({FAMILIES[family][0]} L={cfg['L']} H={cfg['H']} "
          f"C={cfg['C']} V={cfg['V']} maxT={cfg['maxT']}{block} {parameter_count(cfg):,} parameters, fp32)")
    if tk:
        print(f"wrote {args.out}: vocab.json, merges.txt, tokenizer_config.json from {tk} "
              f"({len(tokens)} tokens, {len(merges)} merges, end-of-text id {eot})")
    else:
        print(f"note: no tokenizer (-tk FILE): {args.out} has the model only; end-of-text id taken as V-1 = {eot}")


if __name__ == "__main__":
    main()
