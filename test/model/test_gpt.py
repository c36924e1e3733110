"""The whole CPU model against the PyTorch reference (scripts/ref/ref_gpt2.py) built from the same
checkpoint file: loss, every parameter gradient, AdamW steps, KV-cache decoding, file formats."""
import ctypes
import math
import os
import sys

import numpy as np
import pytest
import torch

from clib import LIB, ROOT, call, rel_err

sys.path.insert(0, os.path.join(ROOT, "scripts", "ref"))
import ref_gpt2  # noqa: E402

LIB.capi_load.restype = ctypes.c_void_p
LIB.capi_random.restype = ctypes.c_void_p
LIB.capi_random_init.restype = ctypes.c_void_p
LIB.capi_num_parameters.restype = ctypes.c_size_t
LIB.capi_params.restype = ctypes.POINTER(ctypes.c_float)
LIB.capi_grads.restype = ctypes.POINTER(ctypes.c_float)
LIB.capi_forward_backward.restype = ctypes.c_float
LIB.capi_update.restype = ctypes.c_float
LIB.capi_forward.restype = ctypes.c_float

CONFIGS = [
    dict(maxT=16, V=67, Vp=128, L=2, H=4, C=32),
    dict(maxT=24, V=300, Vp=384, L=3, H=3, C=48),
]


class CModel:
    def __init__(self, path=None, descriptor=None, seed=0, init=None):
        if path:
            self.h = ctypes.c_void_p(LIB.capi_load(path.encode()))
        elif init:
            self.h = ctypes.c_void_p(LIB.capi_random_init(descriptor.encode(), seed, init.encode()))
        else:
            self.h = ctypes.c_void_p(LIB.capi_random(descriptor.encode(), seed))
        self.n = LIB.capi_num_parameters(self.h)

    def _view(self, ptr):
        return np.ctypeslib.as_array(ptr, shape=(self.n,))

    def params(self):
        return self._view(LIB.capi_params(self.h)).copy()

    def grads(self):
        return self._view(LIB.capi_grads(self.h)).copy()

    def __del__(self):
        LIB.capi_free(self.h)


def split(flat, cfg):
    out, off = {}, 0
    for name, shape in ref_gpt2.tensor_shapes(cfg):
        n = int(np.prod(shape))
        out[name] = flat[off:off + n].reshape(shape)
        off += n
    return out


def tokens(cfg, B, T, seed):
    g = np.random.default_rng(seed)
    return g.integers(0, cfg["V"], (B, T)).astype(np.int32), g.integers(0, cfg["V"], (B, T)).astype(np.int32)


def check_loss_and_every_gradient(path, B, T, seed, what=""):
    """The C model from the checkpoint file against the PyTorch reference from the same file."""
    cm = CModel(path)
    cfg, p32, _ = ref_gpt2.read_checkpoint(path)   # the reference starts from the fp32 values C holds
    inp, tgt = tokens(cfg, B, T, seed=seed)
    loss = LIB.capi_forward_backward(cm.h, ctypes.c_void_p(inp.ctypes.data), ctypes.c_void_p(tgt.ctypes.data), B, T)
    ref = ref_gpt2.GPT2(cfg, p32)
    _, ref_loss = ref(torch.from_numpy(inp).long(), torch.from_numpy(tgt).long())
    ref_loss.backward()
    # fp32 through a few layers against float64: 1e-5 relative is about 100 ulp of fp32
    assert abs(loss - ref_loss.item()) / ref_loss.item() < 1e-5, f"{what} loss {loss} vs {ref_loss.item()}"
    grads = split(cm.grads(), cfg)
    for name, _ in ref_gpt2.tensor_shapes(cfg):
        # 1e-4 relative to the tensor's largest gradient
        err = rel_err(grads[name], ref.p[name].grad)
        assert err < 1e-4, f"{what} grad {name}: rel err {err:.2e}"


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"L{c['L']}C{c['C']}V{c['V']}")
@pytest.mark.parametrize("B,T", [(1, 1), (2, 7), (3, 16)])
def test_loss_and_every_gradient(tmp_path, cfg, B, T):
    path = str(tmp_path / "model.bin")
    ref_gpt2.write_checkpoint(path, cfg, ref_gpt2.random_params(cfg, seed=B * 10 + T))
    check_loss_and_every_gradient(path, B, min(T, cfg["maxT"]), seed=T)


# the sink paper's block: RMSNorm, no linear biases, an untied head, erf GELU, RoPE (docs/MODEL.md 15)
PAPER_BLOCK = dict(ln="rms", linbias=0, tie=0, gelu="erf", rope=1)


@pytest.mark.parametrize("weight_decay,decay_all,clip,block", [
    (0.0, 0, 1.0, {}), (0.1, 0, 0.05, {}), (0.1, 1, 0.05, {}), (0.1, 1, 1.0, PAPER_BLOCK),
    (0.1, 1, 1.0, dict(mlp="swiglu", hidden=40))], ids=["no decay", "decay 2-D", "decay all", "paper block decay all",
                                                         "swiglu decay all"])
def test_five_adamw_steps(tmp_path, weight_decay, decay_all, clip, block):
    """5 steps of clipping and AdamW against torch.optim.AdamW: weight decay on the 2-D tensors, or on
    every parameter (-ca 1, the sink paper's setting)."""
    cfg = dict(CONFIGS[0], **block)
    path = str(tmp_path / "model.bin")
    ref_gpt2.write_checkpoint(path, cfg, ref_gpt2.random_params(cfg, seed=3))
    cm = CModel(path)
    _, p32, _ = ref_gpt2.read_checkpoint(path)
    ref = ref_gpt2.GPT2(cfg, p32)
    opt = ref_gpt2.adamw(ref, lr=1e-2, weight_decay=weight_decay, decay_all=bool(decay_all))
    B, T = 2, 12
    for step in range(1, 6):
        inp, tgt = tokens(cfg, B, T, seed=100 + step)
        loss = LIB.capi_forward_backward(cm.h, ctypes.c_void_p(inp.ctypes.data), ctypes.c_void_p(tgt.ctypes.data), B, T)
        norm = LIB.capi_update(cm.h, ctypes.c_float(1e-2), ctypes.c_float(0.9), ctypes.c_float(0.95),
                               ctypes.c_float(1e-8), ctypes.c_float(weight_decay), decay_all, ctypes.c_float(clip),
                               step)
        opt.zero_grad()
        _, ref_loss = ref(torch.from_numpy(inp).long(), torch.from_numpy(tgt).long())
        ref_loss.backward()
        ref_norm = ref_gpt2.clip_grad_norm(ref, clip)
        opt.step()
        assert abs(loss - ref_loss.item()) / ref_loss.item() < 1e-5, f"step {step}: loss {loss} vs {ref_loss.item()}"
        assert abs(norm - ref_norm) / ref_norm < 1e-4, f"step {step}: grad norm {norm} vs {ref_norm}"
    params = split(cm.params(), cfg)
    C = cfg["C"]
    for name, _ in ref_gpt2.tensor_shapes(cfg):
        got, want = params[name], ref.p[name].detach().numpy()
        if name == "qkvb":
            # The key bias adds q.b_k to a whole score row, which softmax ignores: its true gradient
            # is 0, both sides hold rounding noise (1e-9 vs 1e-18), and Adam's m/sqrt(v) turns noise
            # of either size into a step of +-lr. Compare the query and value biases only.
            got, want = np.delete(got, np.s_[C:2 * C], axis=1), np.delete(want, np.s_[C:2 * C], axis=1)
        err = rel_err(got, want)
        assert err < 1e-4, f"param {name} after 5 steps: rel err {err:.2e}"


def test_kv_cache_decoding_matches_full_forward(tmp_path):
    cfg = dict(maxT=64, V=67, Vp=128, L=2, H=4, C=32)
    path = str(tmp_path / "model.bin")
    ref_gpt2.write_checkpoint(path, cfg, ref_gpt2.random_params(cfg, seed=7, scale=0.3))
    cm = CModel(path)
    seq = np.random.default_rng(1).integers(0, cfg["V"], (1, 64)).astype(np.int32)
    full = np.zeros((1, 64, cfg["Vp"]), dtype=np.float32)
    LIB.capi_forward_logits(cm.h, ctypes.c_void_p(seq.ctypes.data), 1, 64, ctypes.c_void_p(full.ctypes.data))
    out = np.zeros(cfg["Vp"], dtype=np.float32)
    # a 5-token prefill, then one token at a time: 64 positions in all
    prefix = np.ascontiguousarray(seq[0, :5])
    LIB.capi_decode(cm.h, ctypes.c_void_p(prefix.ctypes.data), 5, 0, ctypes.c_void_p(out.ctypes.data))
    assert rel_err(out[:cfg["V"]], full[0, 4, :cfg["V"]]) < 1e-5
    for pos in range(5, 64):
        tok = np.ascontiguousarray(seq[0, pos:pos + 1])
        LIB.capi_decode(cm.h, ctypes.c_void_p(tok.ctypes.data), 1, pos, ctypes.c_void_p(out.ctypes.data))
        err = rel_err(out[:cfg["V"]], full[0, pos, :cfg["V"]])
        assert err < 1e-5, f"position {pos}: cached logits differ from the full forward by {err:.2e}"
    # and the full forward itself matches PyTorch
    _, p32, _ = ref_gpt2.read_checkpoint(path)
    ref_logits, _ = ref_gpt2.GPT2(cfg, p32)(torch.from_numpy(seq).long())
    assert rel_err(full[..., :cfg["V"]], ref_logits[..., :cfg["V"]]) < 1e-5


def fnv1a64_words(data):
    """The checksum of docs/FORMATS.md, written here from its definition: FNV-1a over 8-byte
    little-endian words, then the tail bytes."""
    h, prime, mask = 14695981039346656037, 1099511628211, (1 << 64) - 1
    words = np.frombuffer(data[: len(data) // 8 * 8].tobytes(), dtype="<u8")
    for w in words.tolist():
        h = ((h ^ w) * prime) & mask
    for b in data[len(data) // 8 * 8:].tolist():
        h = ((h ^ b) * prime) & mask
    return h


def test_random_init_and_saved_file(tmp_path):
    """llm.c's init (N(0,0.02), residual projections 0.02/sqrt(2L), LayerNorm 1/0, zero biases), and a
    saved checkpoint that the independent Python reader parses as llm.c's layout."""
    path = str(tmp_path / "init.bin")
    cm = CModel(descriptor="L=4,C=64,H=4,T=32,V=100", seed=5)
    call("capi_save", cm.h, path.encode())
    cfg, p, header = ref_gpt2.read_checkpoint(path)
    assert {k: cfg[k] for k in ("maxT", "V", "L", "H", "C", "Vp")} == dict(maxT=32, V=100, L=4, H=4, C=64, Vp=128)
    assert all(ref_gpt2.is_gpt2_setting(ref_gpt2.full_config(cfg), k) for k in ref_gpt2.SLOTS), "GPT-2's settings"
    # llm.c reads slots 0-7; 8-13 stay zero, 16-17 hold attnlab's marker and settings version 2, whose
    # checksum in 14-15 covers the whole file, those two slots counted as zero
    assert header[1] == 3 and not header[8:14].any(), "llm.c's header layout"
    assert list(header[16:18]) == [ref_gpt2.ATTNLAB_MARKER, 2], "attnlab's marker and settings version 2"
    raw = np.fromfile(path, dtype=np.uint8)
    zeroed = header.astype("<i4").copy()
    zeroed[14:16] = 0
    whole = np.concatenate([np.frombuffer(zeroed.tobytes(), dtype=np.uint8), raw[1024:]])
    assert header[14:16].view(np.uint64)[0] == fnv1a64_words(whole), "slots 14-15: the checksum of the file"
    assert abs(p["wte"][:100].std().item() - 0.02) < 0.002
    assert not p["wte"][100:].any(), "padded vocabulary rows stay zero"
    assert abs(p["qkvw"].std().item() - 0.02) < 0.002
    assert abs(p["attprojw"].std().item() - 0.02 / math.sqrt(8)) < 0.001
    assert abs(p["fcprojw"].std().item() - 0.02 / math.sqrt(8)) < 0.001
    assert (p["ln1w"] == 1).all() and (p["lnfw"] == 1).all() and not p["qkvb"].any() and not p["lnfb"].any()
    again = CModel(descriptor="L=4,C=64,H=4,T=32,V=100", seed=5)
    assert np.array_equal(again.params(), cm.params()), "init must be reproducible from the seed"


def test_neox_init(tmp_path):
    """-init neox: GPT-NeoX's small init N(0, sqrt(2/(5C))) for every weight matrix, the embedding and
    the untied LM head, and N(0, 1/(L sqrt(C))) for the two residual projections (TinyLlama's
    _init_weights, which the sink paper's code uses); norms 1, no biases here. gpt2 differs from it."""
    desc = "L=4,C=128,H=4,T=32,V=300,rope=1,ln=rms,linbias=0,tie=0,gelu=erf"
    path = str(tmp_path / "neox.bin")
    cm = CModel(descriptor=desc, seed=3, init="neox")
    call("capi_save", cm.h, path.encode())
    _, p, _ = ref_gpt2.read_checkpoint(path)
    small, residual = math.sqrt(2 / (5 * 128)), 1 / (4 * math.sqrt(128))   # 0.0559, 0.0221
    for name in ("qkvw", "fcw", "lm_head", "wte"):
        x = p[name][:300] if name in ("wte", "lm_head") else p[name]
        # thousands of draws: the sample std is within 3% of sigma with overwhelming probability
        assert abs(x.std().item() / small - 1) < 0.03, f"{name}: std {x.std().item()} vs {small}"
    for name in ("attprojw", "fcprojw"):
        assert abs(p[name].std().item() / residual - 1) < 0.03, f"{name}: std {p[name].std().item()} vs {residual}"
    assert not p["wte"][300:].any() and not p["lm_head"][300:].any(), "padded vocabulary rows stay zero"
    assert (p["ln1w"] == 1).all() and (p["lnfw"] == 1).all()
    gpt2 = split(CModel(descriptor=desc, seed=3).params(), ref_gpt2.read_checkpoint(path)[0])
    assert abs(gpt2["qkvw"].std() - 0.02) < 0.002, "the default stays llm.c's"


def test_reads_bf16_checkpoint(tmp_path):
    cfg = CONFIGS[1]
    params = ref_gpt2.random_params(cfg, seed=11)
    path = str(tmp_path / "bf16.bin")
    ref_gpt2.write_checkpoint(path, cfg, params, version=ref_gpt2.V_BF16)
    _, rounded, _ = ref_gpt2.read_checkpoint(path)
    got = split(CModel(path).params(), cfg)
    for name, _ in ref_gpt2.tensor_shapes(cfg):
        assert np.array_equal(got[name], rounded[name].numpy().astype(np.float32)), name


def test_backward_uses_the_last_forwards_batch(tmp_path):
    """A forward at B=4, then one at B=2, then the backward: the gradients are those of the B=2 batch
    (the activation buffers stay sized for B=4). Same kernels, same order: equal bit for bit."""
    cfg = dict(CONFIGS[0])
    path = str(tmp_path / "m.bin")
    ref_gpt2.write_checkpoint(path, cfg, ref_gpt2.random_params(cfg, seed=3, scale=0.1))
    T = 12
    big_inp, big_tgt = tokens(cfg, 4, T, seed=1)
    inp, tgt = tokens(cfg, 2, T, seed=2)
    ptr = lambda a: ctypes.c_void_p(a.ctypes.data)
    reused, fresh = CModel(path), CModel(path)
    LIB.capi_zero_grad(reused.h)
    LIB.capi_forward(reused.h, ptr(big_inp), ptr(big_tgt), 4, T)
    loss = LIB.capi_forward(reused.h, ptr(inp), ptr(tgt), 2, T)
    LIB.capi_backward(reused.h, ctypes.c_float(1.0 / (2 * T)))
    fresh_loss = LIB.capi_forward_backward(fresh.h, ptr(inp), ptr(tgt), 2, T)
    assert loss == fresh_loss
    assert np.array_equal(reused.grads(), fresh.grads()), "the backward did not use the last forward's B=2"
