"""The sink analysis of a whole model (model/analysis.c, gpt_sink_analysis) against the PyTorch
reference model (scripts/ref_gpt2.py) built from the same checkpoint, which records every layer's
attention weights (or mLSTM gated scores), the slot's weights, the residual stream and the gates:
Sink_k, Sink*, first-token attention, alpha, massive activations and gate statistics."""
import ctypes
import math

import numpy as np
import pytest
import torch

from clib import LIB
from test_gpt import CModel
import ref_gpt2

LIB.capi_sink_analysis.restype = ctypes.c_void_p

BASE = dict(maxT=24, V=67, Vp=128, L=2, H=4, C=32)
CONFIGS = {
    "softmax": dict(),
    "sigmoid b=0 (proxy)": dict(mixer="sigmoid", bias=0.0),
    "sigmoid normalized+alibi": dict(mixer="sigmoid", bias=-1.0, norm=1, alibi=1),
    "softmax+sink kv+rope": dict(sink="kv", rope=1),
    "softmax+sink one": dict(sink="one"),
    "softmax+gate head+qknorm": dict(gate="head", qknorm=1),
    "mlstm exp (proxy)": dict(mixer="mlstm", gate="elem", chunk=4),
    "mlstm sig (proxy)": dict(mixer="mlstm", gate="elem", igate="sig"),
}


def proxy(w):
    """|w| / sum over the row of |w|, causal rows (the metric's proxy for unnormalized weights)."""
    T = w.shape[-1]
    w = np.abs(np.where(np.tril(np.ones((T, T), bool)), w, 0.0))
    return w / w.sum(-1, keepdims=True)


def reference(cfg, params, tokens, k, eps):
    model = ref_gpt2.GPT2(cfg, params)
    model.record = {}
    with torch.no_grad():
        model(torch.from_numpy(tokens).long())
    rec = model.record
    cfg = ref_gpt2.full_config(cfg)
    use_proxy = cfg["mixer"] == "mlstm" or (cfg["mixer"] == "sigmoid" and not cfg["norm"])
    W = np.stack([proxy(w.numpy()) if use_proxy else w.numpy() for w in rec["weights"]], axis=1)  # (N,L,H,T,T)
    T = W.shape[-1]
    alpha = (W / np.arange(T, 0, -1)).sum(axis=-2)
    out = dict(sink=((alpha[..., k] > eps).mean(axis=(1, 2)) * 100).mean(), alpha=alpha.mean(0),
               alpha_per_sequence=alpha, first=W[..., :, 0].mean())
    if rec["slot"][0] is not None:
        slot_alpha = np.stack([s.numpy() for s in rec["slot"]], axis=1).mean(-1)
        out["slot"] = ((slot_alpha > eps).mean(axis=(1, 2)) * 100).mean()
    x = np.stack([r.numpy() for r in rec["residual"]], axis=1)                                   # (N,L,T,C)
    norms = np.linalg.norm(x, axis=-1)
    out["massive"] = (norms[..., 0] / norms[..., 1:].mean(-1)).mean(0)
    if "gates" in rec:
        g = np.stack([gg.numpy() for gg in rec["gates"]], axis=0)                                  # (L,N,T,G)
        out["gate_mean"] = g.mean(axis=(1, 2, 3))
        out["gate_small"] = (g < 0.1).mean(axis=(1, 2, 3))
    return out


@pytest.mark.parametrize("name", CONFIGS)
# 19 sequences: two forwards of 16 and 3; eps between the heads (uniform attention gives alpha_1 = 0.26
# at T = 12, 0.41 at T = 6)
@pytest.mark.parametrize("N,T,eps", [(3, 12, 0.3), (19, 6, 0.45)])
def test_sink_analysis_matches_the_reference(tmp_path, name, N, T, eps):
    cfg = dict(BASE, **CONFIGS[name])
    path = str(tmp_path / "model.bin")
    params = ref_gpt2.random_params(cfg, seed=N + T, scale=0.3)
    if cfg.get("mixer") == "mlstm":
        params["mlstm_gateb"][:, cfg["H"]:] += 4.0
    ref_gpt2.write_checkpoint(path, cfg, params)
    cfg, p32, _ = ref_gpt2.read_checkpoint(path)
    tokens = np.random.default_rng(T).integers(0, cfg["V"], (N, T)).astype(np.int32)
    k = 0
    cm = CModel(path)
    r = ctypes.c_void_p(LIB.capi_sink_analysis(cm.h, ctypes.c_void_p(tokens.ctypes.data), N, T, k, ctypes.c_float(eps)))
    L, H = cfg["L"], cfg["H"]
    res, alpha = np.zeros(3), np.zeros((L, H, T))
    massive, gate_mean, gate_small = np.zeros(L), np.zeros(L), np.zeros(L)
    p = lambda a: ctypes.c_void_p(a.ctypes.data)
    LIB.capi_sink_results(r, p(res), p(alpha), p(massive), p(gate_mean), p(gate_small))
    LIB.capi_sink_free(r)
    ref = reference(cfg, p32, tokens, k, eps)
    # float32 forward through two layers against float64: alpha within 1e-5
    assert np.abs(alpha - ref["alpha"]).max() < 1e-5, f"{name}: alpha"
    # the thresholded count is exact only if no head sits within rounding of eps
    per_sequence = ref["alpha_per_sequence"][..., k]
    assert np.abs(per_sequence - eps).min() > 1e-4, f"{name}: a head at the threshold; pick another eps"
    assert res[0] == pytest.approx(ref["sink"], abs=1e-9), f"{name}: Sink_1 {res[0]} vs {ref['sink']}"
    assert res[2] == pytest.approx(ref["first"], abs=1e-5), f"{name}: first-token attention"
    if "slot" in ref:
        assert res[1] == pytest.approx(ref["slot"], abs=1e-9), f"{name}: Sink*"
    assert np.abs(massive - ref["massive"]).max() < 1e-4 * ref["massive"].max(), f"{name}: massive activations"
    if "gate_mean" in ref:
        assert np.abs(gate_mean - ref["gate_mean"]).max() < 1e-5, f"{name}: gate mean"
        assert np.abs(gate_small - ref["gate_small"]).max() < 1e-9, f"{name}: gates below 0.1"
