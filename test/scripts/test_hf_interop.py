"""scripts/import_hf.py and scripts/export_hf.py against transformers, offline: random GPT-2s and
Llamas (tied and untied head) of a small config saved by transformers (safetensors,
pytorch_model.bin, the Hub's older layout) are imported and evaluated by ./infer and the C library;
our checkpoints (random, and a Llama-block model trained by ./train_gpt2) are exported and loaded
by GPT2LMHeadModel / LlamaForCausalLM.from_pretrained; round trips are byte-identical; a BPE
trained by ./prepare is exported and transformers' tokenizers give our token ids; bad input and
models the other side cannot express give one `error:` line.

Bounds: logits of the C model (fp32) against transformers' model in float64, 1e-5 relative to the
largest |logit| (about 100 ulp of fp32); ./infer -eval prints the loss with 4 decimals, so it must
be within 1.5e-4 of transformers' float64 loss (5e-5 rounding plus fp32 error)."""
import contextlib
import ctypes
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
from transformers import (AutoTokenizer, GPT2Config, GPT2LMHeadModel, GPT2Tokenizer, GPT2TokenizerFast,  # noqa: E402
                          LlamaConfig, LlamaForCausalLM)

from clib import LIB, ROOT  # noqa: E402
from files import byte_corpus, write_byte_tokenizer, write_shard  # noqa: E402
from timeouts import HANG_TIMEOUT  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "scripts", "ref"))
sys.path.insert(0, os.path.join(ROOT, "test", "data"))
import export_hf  # noqa: E402
import import_hf  # noqa: E402
import ref_gpt2  # noqa: E402
from tokhelp import read_shard, read_tokenizer_file, write_tokenizer_file  # noqa: E402

LIB.capi_load.restype = ctypes.c_void_p
PYTHON = sys.executable
IMPORT, EXPORT = os.path.join(ROOT, "scripts", "import_hf.py"), os.path.join(ROOT, "scripts", "export_hf.py")
INFER, PREPARE = os.path.join(ROOT, "infer"), os.path.join(ROOT, "prepare")
HF_CFG = dict(vocab_size=300, n_positions=32, n_embd=48, n_layer=2, n_head=3)
OUR_CFG = dict(maxT=32, V=300, Vp=384, L=2, H=3, C=48)
LLAMA_CFG = dict(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=4, max_position_embeddings=64, rms_norm_eps=1e-5)
OUR_LLAMA = dict(maxT=64, V=300, Vp=384, L=2, H=4, C=64, rope=1, ln="rms", linbias=0, mlp="swiglu", hidden=96)
TRAIN = os.path.join(ROOT, "train_gpt2")
B, T, BATCHES = 2, 16, 3
CORPUS = """In the beginning God created the heaven and the earth. And the earth was without form, and void;
and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters.
And God said, Let there be light: and there was light. And God saw the light, that it was good.
"""
TEXT = """And God said, Let the waters under the heaven be gathered together unto one place.
It's 12:30 -- we'll see what they've said about "tokenizers"; don't worry, I'm sure you'd agree.
def main(argv=None):
    return {"loss": 3.14159, 'steps': [1, 22, 333, 4444]}    # runs   of spaces\t\ttabs

Café, naïve, jalapeño, Übermaß; Ελληνικά; русский текст; 日本語のテキスト; 中文; 😀 🚀 emoji!
"""


def run(*args, ok=True):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=HANG_TIMEOUT,
                       env=dict(os.environ, OMP_NUM_THREADS="2"))
    if ok:
        assert p.returncode == 0, f"{args} failed:\n{p.stdout}\n{p.stderr}"
    return p


def one_line_error(p, *texts):
    assert p.returncode == 1, f"exit {p.returncode}:\n{p.stdout}\n{p.stderr}"
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    for text in texts:
        assert text in p.stderr, p.stderr


def script(module, *args):
    """A script's main() in this process (the scripts' own subprocess runs cost a second each for
    importing torch): its stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        module.main([str(a) for a in args])
    return out.getvalue()


def script_error(module, *args, texts=()):
    """main() stops with one `error:` line (sys.exit's message, which Python prints to stderr)."""
    with pytest.raises(SystemExit) as e, contextlib.redirect_stdout(io.StringIO()):
        module.main([str(a) for a in args])
    message = str(e.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    for text in texts:
        assert text in message, message


def hf_model(seed=0, **overrides):
    """A transformers GPT-2 of HF_CFG with every parameter random: LayerNorm weights about 1,
    non-zero biases, wte large enough that the logits are far from uniform."""
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(**{**HF_CFG, **overrides})).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.3 if "wte" in name else 0.1
            p.copy_(torch.randn_like(p) * scale + (1.0 if ".ln_" in name and name.endswith("weight") else 0.0))
    return model


def llama_model(seed=0, tie=False, **overrides):
    """A transformers LlamaForCausalLM of LLAMA_CFG with every parameter random: RMSNorm weights
    about 1, the embedding and head large enough that the logits are far from uniform."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**{**LLAMA_CFG, "tie_word_embeddings": tie, **overrides})).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.3 if "embed_tokens" in name or "lm_head" in name else 0.1
            p.copy_(torch.randn_like(p) * scale + (1.0 if "norm" in name else 0.0))
    return model


def shard(tmp_path, V=300, seed=1):
    """A val shard of BATCHES batches of B x T random tokens (+1 for the last target)."""
    tokens = np.random.default_rng(seed).integers(0, V, BATCHES * B * T + 1)
    path = tmp_path / "val_000000.bin"
    write_shard(path, tokens)
    return str(path), tokens


def infer_loss(model_bin, shard_path):
    out = run(INFER, "-e", model_bin, "-eval", shard_path, "-b", B, "-t", T).stdout
    return float(re.search(r"eval loss ([\d.]+) over (\d+) tokens", out).group(1))


def hf_loss(model, tokens):
    """Mean over the batches of transformers' float64 cross-entropy, in the order ./infer reads them."""
    model = model.double()
    x, losses = torch.from_numpy(tokens.astype(np.int64)), []
    with torch.no_grad():
        for i in range(BATCHES):
            inp = x[i * B * T:(i + 1) * B * T].view(B, T)
            tgt = x[i * B * T + 1:(i + 1) * B * T + 1].view(B, T)
            logits = model(inp).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
            losses.append(loss.item())
    return float(np.mean(losses))


def c_logits(model_bin, inp):
    """(B, T, Vp) fp32 logits of the C model loaded from the checkpoint."""
    h = ctypes.c_void_p(LIB.capi_load(str(model_bin).encode()))
    try:
        Vp = ref_gpt2.read_checkpoint(str(model_bin))[0]["Vp"]
        out = np.zeros(inp.shape + (Vp,), dtype=np.float32)
        inp = np.ascontiguousarray(inp, dtype=np.int32)
        LIB.capi_forward_logits(h, ctypes.c_void_p(inp.ctypes.data), inp.shape[0], inp.shape[1],
                                ctypes.c_void_p(out.ctypes.data))
        return out
    finally:
        LIB.capi_free(h)


def hf_logits(model, inp):
    with torch.no_grad():
        return model.double()(torch.from_numpy(inp.astype(np.int64))).logits.numpy()


def assert_same_model(model_bin, hf, tmp_path, V=300, evaluate=True):
    """Logits and the eval loss of our checkpoint equal transformers' model within fp32 error."""
    shard_path, tokens = shard(tmp_path, V)
    inp = tokens[:B * T].reshape(B, T)
    ref = hf_logits(hf, inp)
    got = c_logits(model_bin, inp)
    err = np.max(np.abs(got[..., :V] - ref)) / np.max(np.abs(ref))
    assert err < 1e-5, f"logits: rel err {err:.2e}"
    if not evaluate:
        return
    ours, theirs = infer_loss(model_bin, shard_path), hf_loss(hf, tokens)
    assert abs(ours - theirs) < 1.5e-4, f"infer -eval loss {ours} vs transformers {theirs}"


def write_ours(path, cfg=OUR_CFG, seed=0, version=ref_gpt2.V_FP32):
    """Our checkpoint with random parameters (scale 0.2) and zero padding rows of wte (and of an
    untied lm_head), as here."""
    params = ref_gpt2.random_params(cfg, seed=seed, scale=0.2)
    for name in ("wte", "lm_head"):
        if name in params:
            params[name][cfg["V"]:] = 0
    ref_gpt2.write_checkpoint(str(path), cfg, params, version=version)
    return str(path)


def save_hub_layout(model, folder):
    """pytorch_model.bin as the Hub's original GPT-2 has it: no 'transformer.' prefix, the causal
    mask buffers (h.N.attn.bias, h.N.attn.masked_bias) saved, lm_head.weight present."""
    os.makedirs(folder)
    sd = {k.removeprefix("transformer."): v.clone() for k, v in model.state_dict().items()}
    n = model.config.n_positions
    for l in range(model.config.n_layer):
        sd[f"h.{l}.attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n)
        sd[f"h.{l}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(sd, os.path.join(folder, "pytorch_model.bin"))
    model.config.to_json_file(os.path.join(folder, "config.json"))


# ---------------------------------------------------------------- import

@pytest.mark.parametrize("layout", ["safetensors", "pytorch_bin", "hub_layout"])
def test_import_matches_transformers(tmp_path, layout):
    hf = hf_model(seed=1)
    src = tmp_path / "hf"
    if layout == "hub_layout":
        save_hub_layout(hf, src)
    else:
        hf.save_pretrained(src, safe_serialization=layout == "safetensors")
    model_bin = tmp_path / "ours" / "model.bin"
    args = (src, "-o", model_bin)
    out = run(PYTHON, IMPORT, *args).stdout if layout == "safetensors" else script(import_hf, *args)
    assert "V=300 (Vp=384)" in out and "no tokenizer written" in out
    cfg, params, header = ref_gpt2.read_checkpoint(str(model_bin))
    assert cfg == OUR_CFG and header[1] == 3 and not np.any(header[8:])
    assert torch.all(params["wte"][300:] == 0)
    assert_same_model(str(model_bin), hf, tmp_path)


def test_import_bf16(tmp_path):
    hf = hf_model(seed=2)
    hf.save_pretrained(tmp_path / "hf")
    script(import_hf, tmp_path / "hf", "-o", tmp_path / "fp32.bin")
    script(import_hf, tmp_path / "hf", "-o", tmp_path / "bf16.bin", "--bf16")
    _, p32, _ = ref_gpt2.read_checkpoint(str(tmp_path / "fp32.bin"))
    _, p16, header = ref_gpt2.read_checkpoint(str(tmp_path / "bf16.bin"))
    assert header[1] == 5
    for name, t in p32.items():   # bf16 rounded to nearest even, as torch rounds
        assert torch.equal(p16[name], t.float().bfloat16().double()), name
    shard_path, _ = shard(tmp_path)
    bf16, fp32 = (infer_loss(str(tmp_path / name), shard_path) for name in ("bf16.bin", "fp32.bin"))
    assert abs(bf16 - fp32) < 0.05, f"bf16 {bf16} vs fp32 {fp32}"


# ---------------------------------------------------------------- export

@pytest.mark.parametrize("version", [ref_gpt2.V_FP32, ref_gpt2.V_BF16])
def test_export_matches_transformers(tmp_path, version):
    model_bin = str(tmp_path / "model.bin")
    write_ours(model_bin, seed=5, version=version)
    args = (model_bin, "-o", tmp_path / "hf")
    out = run(PYTHON, EXPORT, *args).stdout if version == ref_gpt2.V_FP32 else script(export_hf, *args)
    assert "no tokenizer" in out
    hf, info = GPT2LMHeadModel.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert all(not v for v in info.values()), info
    assert hf.config.vocab_size == 300 and hf.config.n_positions == 32 and hf.config.eos_token_id == 299
    assert torch.equal(hf.lm_head.weight, hf.transformer.wte.weight)
    assert_same_model(model_bin, hf.eval(), tmp_path)


def test_round_trips_are_exact(tmp_path):
    """ours -> HF -> ours is byte for byte the file; HF -> ours -> HF gives transformers' tensors."""
    model_bin = str(tmp_path / "model.bin")
    write_ours(model_bin, seed=6)
    script(export_hf, model_bin, "-o", tmp_path / "hf")
    script(import_hf, tmp_path / "hf", "-o", tmp_path / "again.bin")
    assert open(model_bin, "rb").read() == open(tmp_path / "again.bin", "rb").read()
    hf = hf_model(seed=3)
    hf.save_pretrained(tmp_path / "orig")
    script(import_hf, tmp_path / "orig", "-o", tmp_path / "ours.bin")
    script(export_hf, tmp_path / "ours.bin", "-o", tmp_path / "back")
    back = GPT2LMHeadModel.from_pretrained(tmp_path / "back").state_dict()
    for name, t in hf.state_dict().items():
        assert torch.equal(back[name], t), name


def test_bos_model_exports(tmp_path):
    """bos=1 only aligns the data: the model is plain GPT-2 and exports."""
    cfg = dict(OUR_CFG, bos=1)
    model_bin = str(tmp_path / "model.bin")
    write_ours(model_bin, cfg, seed=7)
    script(export_hf, model_bin, "-o", tmp_path / "hf")
    hf = GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    assert_same_model(model_bin, hf, tmp_path, evaluate=False)   # ./infer -eval of a bos=1 model needs documents


def test_header_slots(tmp_path):
    """Slots 8-15 (llm.c's zeros; the checksum of attnlab's trainer sits in 14-15) do not stop an
    export, nor do attnlab's marker and settings version 1 or 2 with GPT-2's settings; a set slot after
    the mixer settings (a setting this script does not know) or another version does."""
    model_bin = write_ours(tmp_path / "model.bin", seed=9)
    data = bytearray(open(model_bin, "rb").read())
    data[14 * 4:16 * 4] = np.array([123456789, -987654321], dtype="<i4").tobytes()
    (tmp_path / "sum.bin").write_bytes(data)
    script(export_hf, tmp_path / "sum.bin", "-o", tmp_path / "hf")
    assert torch.equal(GPT2LMHeadModel.from_pretrained(tmp_path / "hf").transformer.wpe.weight,
                       ref_gpt2.read_checkpoint(model_bin)[1]["wpe"].float())
    for version in (1, 2, 3):   # 2: what the trainer writes for every model, GPT-2's too
        data[16 * 4:18 * 4] = np.array([ref_gpt2.ATTNLAB_MARKER, version], dtype="<i4").tobytes()
        (tmp_path / f"v{version}.bin").write_bytes(data)
        if version < 3:
            script(export_hf, tmp_path / f"v{version}.bin", "-o", tmp_path / f"hf_v{version}")
        else:
            script_error(export_hf, tmp_path / "v3.bin", "-o", tmp_path / "hf_v3", texts=("version 1 or 2",))
    data[16 * 4:18 * 4] = np.array([ref_gpt2.ATTNLAB_MARKER, 1], dtype="<i4").tobytes()
    data[60 * 4:61 * 4] = np.array([1], dtype="<i4").tobytes()
    (tmp_path / "future.bin").write_bytes(data)
    script_error(export_hf, tmp_path / "future.bin", "-o", tmp_path / "hf2", texts=("header slot 60 is set",))


# ---------------------------------------------------------------- Llama

def llama_cfg(tie):
    return dict(OUR_LLAMA, tie=int(tie))


@pytest.mark.parametrize("tie,layout", [(False, "safetensors"), (True, "safetensors"), (True, "pytorch_bin")])
def test_llama_import_matches_transformers(tmp_path, tie, layout):
    """A random LlamaForCausalLM imports as rope=1,ln=rms,linbias=0,mlp=swiglu with its head's tying
    and width, and gives transformers' logits and loss (pytorch_model.bin keeps a tied lm_head)."""
    hf = llama_model(seed=11 + tie, tie=tie)
    hf.save_pretrained(tmp_path / "hf", safe_serialization=layout == "safetensors")
    model_bin = tmp_path / "ours" / "model.bin"
    args = (tmp_path / "hf", "-o", model_bin)
    out = run(PYTHON, IMPORT, *args).stdout if not tie else script(import_hf, *args)
    assert f"Llama L=2 H=4 C=64 V=300 (Vp=384) maxT=64 (rope=1,ln=rms,linbias=0,mlp=swiglu,tie={int(tie)},hidden=96)" \
        in out and "no tokenizer written" in out, out
    cfg, params, header = ref_gpt2.read_checkpoint(str(model_bin))
    assert cfg == ref_gpt2.full_config(llama_cfg(tie)) | {"Vp": 384} and header[1] == 3, cfg
    for name in ("wte",) if tie else ("wte", "lm_head"):
        assert torch.all(params[name][300:] == 0), name
    assert_same_model(str(model_bin), hf, tmp_path)


def test_llama_import_maxT(tmp_path):
    """-T sets a Llama's maxT (RoPE has no position table); a max_position_embeddings beyond the
    engine's T needs it; GPT-2 refuses -T."""
    hf = llama_model(seed=13, max_position_embeddings=1 << 21)
    hf.save_pretrained(tmp_path / "hf")
    script_error(import_hf, tmp_path / "hf", "-o", tmp_path / "m.bin",
                 texts=("max_position_embeddings 2097152", "-T N imports with maxT N"))
    script(import_hf, tmp_path / "hf", "-o", tmp_path / "m.bin", "-T", 48)
    cfg, _, _ = ref_gpt2.read_checkpoint(str(tmp_path / "m.bin"))
    assert cfg["maxT"] == 48, cfg
    assert_same_model(str(tmp_path / "m.bin"), hf, tmp_path, evaluate=False)
    script_error(import_hf, tmp_path / "hf", "-o", tmp_path / "m.bin", "-T", 0, texts=("-T 0",))
    hf_model().save_pretrained(tmp_path / "gpt2")
    script_error(import_hf, tmp_path / "gpt2", "-o", tmp_path / "g.bin", "-T", 16, texts=("only for a Llama",))


@pytest.fixture(scope="module")
def trained_llama(tmp_path_factory):
    """The paper's block with SwiGLU (untied head) trained 8 steps by ./train_gpt2 on byte text, and
    a byte tokenizer beside it."""
    d = tmp_path_factory.mktemp("llama")
    write_shard(d / "tiny_train_000.bin", byte_corpus(20000, seed=1))
    write_shard(d / "tiny_val_000.bin", byte_corpus(3000, seed=2))
    descriptor = "L=2,C=64,H=4,T=64,V=257,rope=1,ln=rms,linbias=0,tie=0,mlp=swiglu,hidden=96"
    run(TRAIN, "-e", descriptor, "-i", d / "*train*.bin", "-j", d / "*val*.bin", "-o", d / "run", "-b", 4, "-t", 32,
        "-x", 8, "-l", 3e-3, "-ca", 1, "-v", 0, "-s", 0)
    write_byte_tokenizer(d / "run" / "tokenizer.bin")
    return d / "run" / "model_00000008.bin"


def test_llama_export_of_a_trained_model(tmp_path, trained_llama):
    """A model trained here with the Llama block exports (with its tokenizer, taken from beside the
    checkpoint) and LlamaForCausalLM gives its logits and loss; imported back, the same tensors."""
    out = script(export_hf, trained_llama, "-o", tmp_path / "hf")
    assert "Llama L=2 H=4 C=64 V=257 maxT=64 hidden=96 untied head" in out and "257 tokens" in out, out
    hf, info = LlamaForCausalLM.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert all(not v for v in info.values()), info
    c = hf.config
    assert (c.vocab_size, c.max_position_embeddings, c.intermediate_size, c.num_key_value_heads, c.eos_token_id) \
        == (257, 64, 96, 4, 256) and not c.tie_word_embeddings, c
    assert_same_model(str(trained_llama), hf.eval(), tmp_path, V=257)
    tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert tok.encode(TEXT) == list(TEXT.encode("utf-8"))
    script(import_hf, tmp_path / "hf", "-o", tmp_path / "again" / "model.bin")
    cfg0, p0, _ = ref_gpt2.read_checkpoint(str(trained_llama))
    cfg1, p1, _ = ref_gpt2.read_checkpoint(str(tmp_path / "again" / "model.bin"))
    assert cfg0 == cfg1, (cfg0, cfg1)
    for name, t in p0.items():
        assert torch.equal(p1[name], t), name


@pytest.mark.parametrize("tie,version", [(1, ref_gpt2.V_FP32), (0, ref_gpt2.V_BF16)])
def test_llama_export_matches_transformers(tmp_path, tie, version):
    model_bin = write_ours(tmp_path / "model.bin", llama_cfg(tie), seed=14, version=version)
    out = run(PYTHON, EXPORT, model_bin, "-o", tmp_path / "hf").stdout if tie else \
        script(export_hf, model_bin, "-o", tmp_path / "hf")
    assert f"hidden=96 {'tied' if tie else 'untied'} head" in out, out
    hf, info = LlamaForCausalLM.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert all(not v for v in info.values()), info
    assert hf.config.tie_word_embeddings == bool(tie)
    assert torch.equal(hf.lm_head.weight, hf.model.embed_tokens.weight) == bool(tie)
    assert_same_model(model_bin, hf.eval(), tmp_path)


@pytest.mark.parametrize("tie", [0, 1])
def test_llama_round_trips_are_exact(tmp_path, tie):
    """ours -> HF -> ours is byte for byte the file; HF -> ours -> HF gives transformers' tensors."""
    model_bin = write_ours(tmp_path / "model.bin", llama_cfg(tie), seed=15)
    script(export_hf, model_bin, "-o", tmp_path / "hf")
    script(import_hf, tmp_path / "hf", "-o", tmp_path / "again.bin")
    assert open(model_bin, "rb").read() == open(tmp_path / "again.bin", "rb").read()
    hf = llama_model(seed=16, tie=bool(tie))
    hf.save_pretrained(tmp_path / "orig")
    script(import_hf, tmp_path / "orig", "-o", tmp_path / "ours.bin")
    script(export_hf, tmp_path / "ours.bin", "-o", tmp_path / "back")
    back = LlamaForCausalLM.from_pretrained(tmp_path / "back").state_dict()
    for name, t in hf.state_dict().items():
        assert torch.equal(back[name], t), name


def test_llama_import_refusals(tmp_path):
    """Each Llama setting the engine does not compute stops the import with one line naming it."""
    out = tmp_path / "m.bin"
    llama_model(seed=17).save_pretrained(tmp_path / "hf")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    for key, value, text in [("num_key_value_heads", 2, "num_key_value_heads 2 (grouped KV"),
                             ("attention_bias", True, "attention_bias true"),
                             ("mlp_bias", True, "mlp_bias true"),
                             ("rope_scaling", {"type": "linear", "factor": 2.0}, 'rope_scaling {"type": "linear"'),
                             ("rope_theta", 500000.0, "rope_theta 500000.0 (the engine's RoPE base is 10000)"),
                             ("rms_norm_eps", 1e-6, "rms_norm_eps 1e-06 (the engine's RMSNorm eps is 1e-5)"),
                             ("hidden_act", "gelu", "hidden_act gelu (not silu)"),
                             ("head_dim", 32, "head_dim 32 (not hidden_size / heads = 16)"),
                             ("num_attention_heads", 64, "head size 1 odd (RoPE rotates channel pairs)"),
                             ("vocab_size", 70000, "vocab_size 70000"),
                             ("model_type", "bert", "not a GPT-2 or Llama config")]:
        bad = dict(cfg, **{key: value})
        if key == "model_type":
            bad.pop("architectures")
        (tmp_path / "hf" / "config.json").write_text(json.dumps(bad))
        script_error(import_hf, tmp_path / "hf", "-o", out, texts=(text,))
    del cfg["rms_norm_eps"]   # transformers' default, 1e-6
    (tmp_path / "hf" / "config.json").write_text(json.dumps(cfg))
    script_error(import_hf, tmp_path / "hf", "-o", out, texts=("rms_norm_eps 1e-06",))
    tied = llama_model(seed=18, tie=True)
    tied.save_pretrained(tmp_path / "tied", safe_serialization=False)
    sd = torch.load(tmp_path / "tied" / "pytorch_model.bin")
    sd["lm_head.weight"] = sd["lm_head.weight"] + 1
    torch.save(sd, tmp_path / "tied" / "pytorch_model.bin")
    script_error(import_hf, tmp_path / "tied", "-o", out, texts=("lm_head.weight differs from embed_tokens.weight",))
    (tmp_path / "hf" / "config.json").write_text(json.dumps(dict(cfg, rms_norm_eps=1e-5, intermediate_size=128)))
    script_error(import_hf, tmp_path / "hf", "-o", out,
                 texts=("layers.0.mlp.gate_proj.weight has shape (96, 64), config.json implies (128, 64)",))
    assert not out.exists() and not os.path.exists(str(out) + ".tmp")


# ---------------------------------------------------------------- tokenizer

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 300-token BPE trained by ./prepare, and the token ids ./prepare gives TEXT with it."""
    d = tmp_path_factory.mktemp("tok")
    (d / "corpus.txt").write_text(CORPUS * 3 + TEXT, encoding="utf-8")
    (d / "text.txt").write_text(TEXT, encoding="utf-8")
    run(PREPARE, "-o", d / "tok", "--vocab", 300, "--val-frac", 0, d / "corpus.txt")
    run(PREPARE, "-o", d / "enc", "--tokenizer", d / "tok" / "tokenizer.bin", "--val-frac", 0, d / "text.txt")
    ids = read_shard(d / "enc" / "train_000000.bin")
    assert ids[0] == 299 and len(ids) > 100   # EOT starts the document
    return d / "tok" / "tokenizer.bin", ids[1:]


def export_with_tokenizer(tmp_path, tokenizer, name="hf"):
    model_bin = str(tmp_path / "model.bin")
    if not os.path.exists(model_bin):
        write_ours(model_bin, seed=8)
    out = script(export_hf, model_bin, "-o", tmp_path / name, "-tk", tokenizer)
    assert "vocab.json, merges.txt" in out
    return tmp_path / name


@pytest.mark.parametrize("cls", [GPT2TokenizerFast, AutoTokenizer, GPT2Tokenizer])
def test_tokenizer_ids_equal(tmp_path, trained, cls):
    tokenizer, ids = trained
    tok = cls.from_pretrained(export_with_tokenizer(tmp_path, tokenizer))
    assert tok.encode(TEXT) == ids
    assert tok.decode(ids) == TEXT
    assert tok.eos_token == "<|endoftext|>" and tok.eos_token_id == 299 and len(tok) == 300
    if cls is AutoTokenizer:
        assert isinstance(tok, GPT2TokenizerFast)


def test_tokenizer_round_trip(tmp_path, trained):
    """Exported, written again by transformers' save_pretrained (its own vocab.json and merges.txt
    formatting), then imported: the same tokenizer file, byte for byte."""
    tokenizer, _ = trained
    exported = export_with_tokenizer(tmp_path, tokenizer)
    resaved = tmp_path / "resaved"
    GPT2TokenizerFast.from_pretrained(exported).save_pretrained(resaved)
    GPT2LMHeadModel.from_pretrained(exported).save_pretrained(resaved)
    out = script(import_hf, resaved, "-o", tmp_path / "ours" / "model.bin")
    assert "300 tokens" in out
    assert open(tmp_path / "ours" / "tokenizer.bin", "rb").read() == open(tokenizer, "rb").read()


def test_tokenizer_without_merges(tmp_path, trained):
    """A tokenizer file without merges (llm.c's format) gets its merges from the ids: the same
    merges.txt as the file with merges; and the byte tokenizer (no merges at all) exports too."""
    tokenizer, ids = trained
    _, tokens, _ = read_tokenizer_file(tokenizer)
    write_tokenizer_file(tmp_path / "llmc.bin", tokens, 299)
    with_merges = export_with_tokenizer(tmp_path, tokenizer, "a")
    derived = export_with_tokenizer(tmp_path, tmp_path / "llmc.bin", "b")
    assert (with_merges / "merges.txt").read_text() == (derived / "merges.txt").read_text()
    assert GPT2TokenizerFast.from_pretrained(derived).encode(TEXT) == ids
    run(PREPARE, "-o", tmp_path / "bytes", "--bytes")
    byte_dir = export_with_tokenizer(tmp_path, tmp_path / "bytes" / "tokenizer.bin", "c")
    tok = GPT2TokenizerFast.from_pretrained(byte_dir)
    assert tok.encode(TEXT) == list(TEXT.encode("utf-8")) and tok.eos_token_id == 256


# ---------------------------------------------------------------- errors

def test_import_errors(tmp_path):
    out = tmp_path / "m.bin"
    one_line_error(run(PYTHON, IMPORT, tmp_path / "missing", "-o", out, ok=False), "no such file or folder")
    (tmp_path / "empty").mkdir()
    script_error(import_hf, tmp_path / "empty", "-o", out, texts=("no model.safetensors",))
    hf = hf_model()
    hf.save_pretrained(tmp_path / "hf")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    for key, value, text in [("model_type", "bert", "not a GPT-2 or Llama config (model_type 'bert'"),
                             ("activation_function", "gelu", "activation gelu"),
                             ("scale_attn_by_inverse_layer_idx", True, "scale_attn_by_inverse_layer_idx")]:
        (tmp_path / "hf" / "config.json").write_text(json.dumps(dict(cfg, **{key: value})))
        script_error(import_hf, tmp_path / "hf", "-o", out, texts=(text,))
    (tmp_path / "hf" / "config.json").write_text(json.dumps(dict(cfg, n_embd=96)))
    script_error(import_hf, tmp_path / "hf", "-o", out, texts=("wte.weight has shape",))
    (tmp_path / "hf" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "hf" / "model.safetensors").write_bytes(b"not a safetensors file at all")
    script_error(import_hf, tmp_path / "hf", "-o", out, texts=("not a safetensors file",))
    untied = tmp_path / "untied"
    save_hub_layout(hf, untied)
    sd = torch.load(untied / "pytorch_model.bin")
    sd["lm_head.weight"] = sd["lm_head.weight"] + 1
    torch.save(sd, untied / "pytorch_model.bin")
    script_error(import_hf, untied, "-o", out, texts=("untied output layer",))
    assert not out.exists() and not os.path.exists(str(out) + ".tmp")


def test_export_errors(tmp_path, trained):
    out = tmp_path / "hf"
    (tmp_path / "notes.txt").write_text("hello\n" * 300)
    one_line_error(run(PYTHON, EXPORT, tmp_path / "notes.txt", "-o", out, ok=False), "not a model checkpoint")
    model_bin = str(tmp_path / "model.bin")
    ref_gpt2.write_checkpoint(model_bin, OUR_CFG, ref_gpt2.random_params(OUR_CFG))
    data = open(model_bin, "rb").read()
    (tmp_path / "cut.bin").write_bytes(data[:-4])
    script_error(export_hf, tmp_path / "cut.bin", "-o", out, texts=("truncated",))
    cfg = dict(OUR_CFG, rope=1, qknorm=1)
    ref_gpt2.write_checkpoint(str(tmp_path / "rope.bin"), cfg, ref_gpt2.random_params(cfg))
    script_error(export_hf, tmp_path / "rope.bin", "-o", out,
                 texts=("mixer options GPT-2 has not (rope=1, qknorm=1)",
                        "options Llama has not (qknorm=1, ln=layer, linbias=1, mlp=gelu)"))
    cfg = dict(OUR_CFG, mixer="sigmoid", gate="elem")
    ref_gpt2.write_checkpoint(str(tmp_path / "sig.bin"), cfg, ref_gpt2.random_params(cfg))
    script_error(export_hf, tmp_path / "sig.bin", "-o", out, texts=("mixer=sigmoid", "gate=elem"))
    cfg = dict(OUR_CFG, ln="rms", linbias=0, tie=0, gelu="erf", hidden=96)
    ref_gpt2.write_checkpoint(str(tmp_path / "block.bin"), cfg, ref_gpt2.random_params(cfg))
    script_error(export_hf, tmp_path / "block.bin", "-o", out,
                 texts=("ln=rms", "linbias=0", "tie=0", "gelu=erf", "hidden=96"))
    cfg = dict(OUR_CFG, mlp="swiglu")
    ref_gpt2.write_checkpoint(str(tmp_path / "swiglu.bin"), cfg, ref_gpt2.random_params(cfg))
    script_error(export_hf, tmp_path / "swiglu.bin", "-o", out, texts=("mlp=swiglu",))
    # the Llama block with one thing Llama has not
    llama = dict(OUR_CFG, rope=1, ln="rms", linbias=0, mlp="swiglu", tie=0)
    for change, text in [(dict(mlp="gelu", gelu="erf"), "Llama has not (mlp=gelu)"),
                         (dict(linbias=1), "Llama has not (linbias=1)"), (dict(ln="layer"), "Llama has not (ln=layer)"),
                         (dict(rope=0, alibi=1), "Llama has not (alibi=1, rope=0)"),
                         (dict(mixer="sigmoid"), "Llama has not (mixer=sigmoid)"),
                         (dict(gate="head"), "Llama has not (gate=head)"), (dict(qknorm=1), "Llama has not (qknorm=1)"),
                         (dict(sink="kv"), "Llama has not (sink=kv)"), (dict(layerscale=1), "Llama has not (layerscale=1)"),
                         (dict(hybrid=1), "Llama has not (hybrid=1)")]:
        cfg = dict(llama, **change)
        ref_gpt2.write_checkpoint(str(tmp_path / "near.bin"), cfg, ref_gpt2.random_params(cfg))
        script_error(export_hf, tmp_path / "near.bin", "-o", out, texts=(text, "nor LlamaForCausalLM"))
    small = dict(OUR_CFG, V=200, Vp=256)
    ref_gpt2.write_checkpoint(str(tmp_path / "small.bin"), small, ref_gpt2.random_params(small))
    script_error(export_hf, tmp_path / "small.bin", "-o", out, "-tk", trained[0],
                 texts=("300 tokens, more than the model's vocabulary V=200",))
    script_error(export_hf, model_bin, "-o", out, "-tk", tmp_path / "notes.txt", texts=("not a tokenizer file",))
    assert not out.exists() or not os.listdir(out)
