"""The sink analysis of a whole model (model/analysis.c, gpt_sink_analysis) against the PyTorch
reference model (scripts/ref/ref_gpt2.py) built from the same checkpoint, which records every layer's
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
    """|w| / (sum over the row of |w| + 1e-8), causal rows (the paper's proxy for unnormalized weights)."""
    T = w.shape[-1]
    w = np.abs(np.where(np.tril(np.ones((T, T), bool)), w, 0.0))
    return w / (w.sum(-1, keepdims=True) + 1e-8)


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


# ----------------------------------------------------------------------------
# The probe sets of gpt_sink_analysis_shards (docs/SINKS.md): the analysis on the shards equals the
# analysis of the sequences the probe set defines, built here from the shard's tokens.

LIB.capi_sink_analysis_shards.restype = ctypes.c_void_p
LIB.capi_sink_probes.restype = ctypes.c_char_p
EOT = 256
PROBE_MODEL = "L=2,C=32,H=4,T=24,V=257"


def write_shard(path, tokens):
    header = np.zeros(256, dtype=np.int32)
    header[:3] = [20240520, 1, len(tokens)]
    with open(path, "wb") as f:
        f.write(header.tobytes() + np.asarray(tokens, dtype=np.uint16).tobytes())


@pytest.fixture(scope="module")
def probe_shards(tmp_path_factory):
    """Two shards of documents (EOT first) made of lines (byte 10 ends each): documents of 2 to 9
    lines of 1 to 11 bytes, and some of one line of 1 to 5 bytes, so some document windows hold a
    second EOT and most do not."""
    d = tmp_path_factory.mktemp("probes")
    gen = np.random.default_rng(2)
    streams = []
    for i in range(2):
        s = []
        for _ in range(30):
            s.append(EOT)
            short = gen.random() < 0.3   # a document of one short line: its window holds the next EOT
            for _ in range(1 if short else gen.integers(2, 10)):
                s += [int(x) for x in gen.integers(32, 127, gen.integers(1, 6 if short else 12))] + [10]
        streams.append(s)
        write_shard(d / f"val_{i:03d}.bin", s)
    return d / "val_*.bin", streams


def expected_probes(streams, bos, N, T, probes="auto"):
    """The probe set written from docs/SINKS.md: (sequences (N, T), starts passed over). A model with a
    BOS (bos=1, window) gets the EOT first; line starts are the default for bos=window only."""
    lines = probes == "line" or (probes == "auto" and bos == "window")
    with_bos = bos != "0"
    rows, skipped = [], 0
    for s in streams:
        free = 0
        for p in range(len(s)):
            if lines:             # [BOS +] tokens after a newline, T in all, not overlapping, EOTs kept
                n = T - with_bos
                if p > 0 and s[p - 1] == 10 and p >= free and p + n <= len(s):
                    rows.append([EOT] * with_bos + s[p:p + n])
                    free = p + n
            elif s[p] == EOT:     # the EOT and T-1 tokens (with a BOS), or the T tokens after it (bos=0)
                span = s[p:p + T + (not with_bos)]
                if len(span) < T + (not with_bos):
                    continue
                if EOT in span[1:]:
                    skipped += 1
                    continue
                rows.append(span if with_bos else span[1:])
            if len(rows) == N:
                return np.array(rows, dtype=np.int32), skipped
    return np.array(rows, dtype=np.int32), skipped


def results(r, L, H, T):
    out, alpha = np.zeros(3), np.zeros((L, H, T))
    massive, gate_mean, gate_small = np.zeros(L), np.zeros(L), np.zeros(L)
    p = lambda a: ctypes.c_void_p(a.ctypes.data)
    LIB.capi_sink_results(r, p(out), p(alpha), p(massive), p(gate_mean), p(gate_small))
    return out, alpha, massive


@pytest.mark.parametrize("bos,probes", [("0", "auto"), ("1", "auto"), ("window", "auto"), ("0", "line"),
                                        ("1", "line"), ("window", "doc")])
def test_probe_sets_are_the_documented_sequences(probe_shards, bos, probes):
    pattern, streams = probe_shards
    N, T = 18, 12      # two forwards (16 + 2); the second shard is reached for document starts
    cm = CModel(descriptor=f"{PROBE_MODEL},bos={bos}", seed=3)
    tokens, skipped = expected_probes(streams, bos, N, T, probes)
    lines = probes == "line" or (probes == "auto" and bos == "window")
    assert len(tokens) == N, "the case needs N probes"
    if not lines:
        assert skipped > 0, "the case needs document starts with another EOT inside the window"
    else:
        assert (tokens[:, 1:] == EOT).any(), "the case needs an EOT inside a line window"
    r = ctypes.c_void_p(LIB.capi_sink_analysis_shards(cm.h, str(pattern).encode(), EOT, None, probes.encode(), N, T,
                                                      0, ctypes.c_float(0.3)))
    direct = ctypes.c_void_p(LIB.capi_sink_analysis(cm.h, ctypes.c_void_p(tokens.ctypes.data), N, T, 0,
                                                    ctypes.c_float(0.3)))
    got, want = results(r, 2, 4, T), results(direct, 2, 4, T)
    # the same sequences through the same code: the same numbers to the bit
    assert all((g == w).all() for g, w in zip(got, want)), f"bos={bos} {probes}: not the documented probe set"
    n_skipped = ctypes.c_long(0)
    text = LIB.capi_sink_probes(r, ctypes.byref(n_skipped)).decode()
    assert text.startswith("line starts" if lines else "document starts"), text
    assert n_skipped.value == (0 if lines else skipped), f"bos={bos} {probes}: {n_skipped.value} passed over"
    LIB.capi_sink_free(r)
    LIB.capi_sink_free(direct)


def test_line_ends_come_from_the_table_given(probe_shards):
    """With a line-end table, spans start after its tokens (here bytes 60..126 as well as the newline)."""
    pattern, streams = probe_shards
    N, T = 6, 12
    cm = CModel(descriptor=f"{PROBE_MODEL},bos=window", seed=3)
    line_end = np.zeros(257, dtype=np.uint8)
    line_end[10] = line_end[60:127] = 1
    rows, free = [], 0
    for p in range(1, len(streams[0])):
        if line_end[streams[0][p - 1]] and p >= free and p + T - 1 <= len(streams[0]) and len(rows) < N:
            rows.append([EOT] + streams[0][p:p + T - 1])
            free = p + T - 1
    tokens = np.array(rows, dtype=np.int32)
    r = ctypes.c_void_p(LIB.capi_sink_analysis_shards(cm.h, str(pattern).encode(), EOT,
                                                      ctypes.c_void_p(line_end.ctypes.data), b"auto", N, T, 0,
                                                      ctypes.c_float(0.3)))
    direct = ctypes.c_void_p(LIB.capi_sink_analysis(cm.h, ctypes.c_void_p(tokens.ctypes.data), N, T, 0,
                                                    ctypes.c_float(0.3)))
    assert all((g == w).all() for g, w in zip(results(r, 2, 4, T), results(direct, 2, 4, T)))
    assert rows != expected_probes(streams, "window", N, T)[0].tolist(), "the table made no difference"
    LIB.capi_sink_free(r)
    LIB.capi_sink_free(direct)
