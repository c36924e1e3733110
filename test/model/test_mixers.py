"""Every mixer in the whole model: loss and every parameter gradient against the PyTorch reference
(scripts/ref/ref_gpt2.py) built from the same checkpoint file, KV-cache / recurrent decoding against the
full forward over 50+ steps, and the settings' round trip through the checkpoint header."""
import ctypes
import math

import numpy as np
import pytest
import torch

from clib import LIB, rel_err
from test_gpt import CModel, check_loss_and_every_gradient

import ref_gpt2

BASE = dict(maxT=24, V=67, Vp=128, L=2, H=4, C=32)
# the sink paper's block (docs/MODEL.md 15): RMSNorm, no linear biases, untied head, erf GELU, RoPE
PAPER = dict(ln="rms", linbias=0, tie=0, gelu="erf", rope=1)
MIXERS = {
    "softmax+rope+qknorm": dict(rope=1, qknorm=1),
    "sigmoid b=-ln n": dict(mixer="sigmoid", bias=-math.log(24)),
    "sigmoid b=0": dict(mixer="sigmoid", bias=0.0),
    "sigmoid normalized": dict(mixer="sigmoid", bias=0.0, norm=1),
    "softmax+gate head": dict(gate="head"),
    "sigmoid+gate elem+rope+qknorm": dict(mixer="sigmoid", bias=-2.0, gate="elem", rope=1, qknorm=1),
    "softmax+hybrid+layerscale": dict(hybrid=1, layerscale=1),
    "softmax+alibi": dict(alibi=1),
    "softmax+sink k+rope": dict(sink="k", rope=1),
    "softmax+sink kv+qknorm": dict(sink="kv", qknorm=1),
    "softmax+sink logit+alibi": dict(sink="logit", alibi=1),
    "softmax+sink one+gate elem": dict(sink="one", gate="elem"),
    "sigmoid+alibi+qknorm+gate head": dict(mixer="sigmoid", bias=-1.0, alibi=1, qknorm=1, gate="head"),
    "mlstm exp chunk 4": dict(mixer="mlstm", gate="elem", igate="exp", chunk=4),
    "mlstm sig chunk 64": dict(mixer="mlstm", gate="elem", igate="sig", chunk=64),
    "paper block softmax": PAPER,
    "paper block sigmoid": dict(PAPER, mixer="sigmoid", bias=-math.log(24)),
    "paper block swiglu": dict(ln="rms", linbias=0, tie=0, mlp="swiglu", rope=1),
    "paper block gate elem": dict(PAPER, gate="elem"),
    "paper block mlstm": dict(ln="rms", linbias=0, tie=0, gelu="erf", mixer="mlstm", gate="elem", chunk=4),
    "rms+sink kv+qknorm+hybrid+layerscale": dict(ln="rms", sink="kv", qknorm=1, hybrid=1, layerscale=1),
    "linbias 0+tie 0+alibi+sink logit": dict(linbias=0, tie=0, alibi=1, sink="logit"),
    "swiglu hidden 40+gate head": dict(mlp="swiglu", hidden=40, gate="head"),
    "erf gelu hidden 72+sigmoid norm": dict(gelu="erf", hidden=72, mixer="sigmoid", bias=0.0, norm=1),
}


def make_model(tmp_path, name, seed=0, scale=0.1, **over):
    cfg = dict(BASE, **MIXERS[name], **over)
    path = str(tmp_path / "model.bin")
    params = ref_gpt2.random_params(cfg, seed=seed, scale=scale)
    if cfg.get("mixer") == "mlstm":   # forget gates open, as the recommended init (docs/MODEL.md 3)
        params["mlstm_gateb"][:, cfg["H"]:] += 4.0
    ref_gpt2.write_checkpoint(path, cfg, params)
    return cfg, path


@pytest.mark.parametrize("name", MIXERS)
@pytest.mark.parametrize("B,T", [(1, 5), (2, 11), (2, 24)])
def test_loss_and_every_gradient(tmp_path, name, B, T):
    _, path = make_model(tmp_path, name, seed=B + T)
    check_loss_and_every_gradient(path, B, T, seed=T, what=name)


@pytest.mark.parametrize("name", MIXERS)
def test_decoding_matches_full_forward(tmp_path, name):
    cfg, path = make_model(tmp_path, name, seed=9, scale=0.3, maxT=64)
    cm = CModel(path)
    V = cfg["V"]
    seq = np.random.default_rng(2).integers(0, V, (1, 64)).astype(np.int32)
    full = np.zeros((1, 64, cfg["Vp"]), dtype=np.float32)
    LIB.capi_forward_logits(cm.h, ctypes.c_void_p(seq.ctypes.data), 1, 64, ctypes.c_void_p(full.ctypes.data))
    out = np.zeros(cfg["Vp"], dtype=np.float32)
    prefix = np.ascontiguousarray(seq[0, :3])
    LIB.capi_decode(cm.h, ctypes.c_void_p(prefix.ctypes.data), 3, 0, ctypes.c_void_p(out.ctypes.data))
    assert rel_err(out[:V], full[0, 2, :V]) < 1e-5
    for pos in range(3, 64):   # 61 single-token steps
        tok = np.ascontiguousarray(seq[0, pos:pos + 1])
        LIB.capi_decode(cm.h, ctypes.c_void_p(tok.ctypes.data), 1, pos, ctypes.c_void_p(out.ctypes.data))
        err = rel_err(out[:V], full[0, pos, :V])
        assert err < 1e-4, f"{name}: position {pos}: decoded logits differ from the full forward by {err:.2e}"
    rcfg, p32, _ = ref_gpt2.read_checkpoint(path)
    ref_logits, _ = ref_gpt2.GPT2(rcfg, p32)(torch.from_numpy(seq).long())
    assert rel_err(full[..., :V], ref_logits[..., :V]) < 1e-5


@pytest.mark.parametrize("descriptor,expected", [
    ("L=2,C=32,H=4,T=64,V=67,mixer=sigmoid", dict(mixer="sigmoid", bias=-math.log(64))),
    ("L=2,C=32,H=4,T=64,V=67,mixer=sigmoid,bias=0,norm=1", dict(mixer="sigmoid", bias=0.0, norm=1)),
    ("L=2,C=32,H=4,T=64,V=67,gate=head,rope=1,qknorm=1,hybrid=1,layerscale=1",
     dict(gate="head", rope=1, qknorm=1, hybrid=1, layerscale=1)),
    ("L=2,C=32,H=4,T=64,V=67,mixer=mlstm,igate=sig,chunk=16", dict(mixer="mlstm", gate="elem", igate="sig", chunk=16)),
    ("L=2,C=32,H=4,T=64,V=67,mixer=sigmoid,norm=1,alibi=1", dict(mixer="sigmoid", norm=1, alibi=1)),
    ("L=2,C=32,H=4,T=64,V=67,sink=kv,bos=1", dict(sink="kv", bos=1)),
    ("L=2,C=32,H=4,T=64,V=67,ln=rms,linbias=0,tie=0,gelu=erf,rope=1", dict(PAPER)),
    ("L=2,C=96,H=4,T=64,V=67,mlp=swiglu,linbias=0", dict(mlp="swiglu", hidden=256, linbias=0)),   # 8C/3 = 256
    ("L=2,C=100,H=4,T=64,V=67,mlp=swiglu", dict(mlp="swiglu", hidden=320)),   # 8C/3 = 266.7, up to 64s: 320
    ("L=2,C=32,H=4,T=64,V=67,gelu=erf,hidden=72", dict(gelu="erf", hidden=72)),
    ("L=2,C=32,H=4,T=64,V=67,rope=1,bos=window", dict(rope=1, bos=2)),   # slot 30: 2 = window
])
def test_descriptor_settings_reach_the_checkpoint(tmp_path, descriptor, expected):
    path = str(tmp_path / "m.bin")
    cm = CModel(descriptor=descriptor, seed=1)
    LIB.capi_save(cm.h, path.encode())
    cfg, params, header = ref_gpt2.read_checkpoint(path)
    for key, value in expected.items():
        assert cfg[key] == pytest.approx(value), f"{key}: {cfg[key]} != {value}"
    if "hidden" in expected:   # the width reaches the tensors
        F = 2 * expected["hidden"] if expected.get("mlp") == "swiglu" else expected["hidden"]
        assert params["fcw"].shape == (2, F, cfg["C"]) and params["fcprojw"].shape == (2, cfg["C"], expected["hidden"])
    if expected.get("tie") == 0:   # docs/MODEL.md 3: lm_head as wte, N(0, 0.02) on the V real rows, padding 0
        head = params["lm_head"]
        assert abs(head[:67].std().item() - 0.02) < 0.003 and not head[67:].any(), "lm_head init"
        assert not np.allclose(head, params["wte"]), "lm_head must be drawn on its own"
    if expected.get("ln") == "rms":
        assert np.allclose(params["ln1w"], 1) and np.allclose(params["lnfw"], 1) and "ln1b" not in params
    if "layerscale" in expected:
        assert np.allclose(params["ls_mixer"], 1e-4) and np.allclose(params["ls_mlp"], 1e-4)
    if expected.get("mixer") == "mlstm":   # docs/MODEL.md 3: input gate bias -10, forget gate linspace(3, 6)
        assert np.allclose(params["mlstm_gateb"][:, :4], -10) and np.allclose(params["mlstm_gateb"][0, 4:], [3, 4, 5, 6])


@pytest.mark.parametrize("name", ["softmax+gate head", "mlstm sig chunk 64"])
def test_file_from_before_the_block_keys_is_gpt2s_block(tmp_path, name):
    """A file written before the block keys (marker set, slots 31-36 zero; before chunk, its slot 27
    zero too) loads as GPT-2's block: LayerNorm, linear biases, tied head, tanh GELU, width 4C (and
    chunk 64), and saves back as the same file."""
    cfg, path = make_model(tmp_path, name, seed=13)   # the model and batch of the row's (2, 11) test
    raw = bytearray(open(path, "rb").read())
    header = np.frombuffer(raw[:1024], dtype=np.int32).copy()
    assert header[16] == ref_gpt2.ATTNLAB_MARKER
    header[31:37] = 0
    if cfg.get("mixer") == "mlstm":
        header[27] = 0
    old = str(tmp_path / "old.bin")
    with open(old, "wb") as f:
        f.write(header.tobytes() + bytes(raw[1024:]))
    check_loss_and_every_gradient(old, 2, 11, seed=11, what=name)
    resaved = str(tmp_path / "resaved.bin")
    loaded = CModel(old)
    LIB.capi_save(loaded.h, resaved.encode())
    saved = np.fromfile(resaved, dtype=np.int32, count=256)
    assert not saved[31:37].any(), f"{name}: GPT-2's block must write slots 31-36 as 0: {saved[31:37]}"
    assert saved[27] == 64, f"{name}: chunk {saved[27]}, not the default 64"
