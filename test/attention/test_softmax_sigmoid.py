# attention_forward/backward (attention/softmax_sigmoid.c) against causal attention in PyTorch float64, for
# each score map of AttnScore (softmax, sigmoid(s + b), sigmoid normalized by its row sum, each with ALiBi
# or without): training
# shapes (Tq = Tk = Tmax = T) forward, saved row statistic and backward, and the KV-cache decode
# semantics (the last Tq of the first Tk positions of a Tmax-row cache).
import ctypes
import math

import numpy as np
import pytest
import torch
from clib import call, f32, poison, rel_err, t64


class AttnScore(ctypes.Structure):
    _fields_ = [("sigmoid", ctypes.c_int), ("bias", ctypes.c_float), ("normalize", ctypes.c_int),
                ("alibi", ctypes.c_int)]


# name -> (sigmoid, bias, normalize, alibi); the biases are exact in float32.
SCORES = {"softmax": (0, 0.0, 0, 0), "sigmoid": (1, -2.5, 0, 0), "sigmoid_norm": (1, 0.5, 1, 0),
          "softmax_alibi": (0, 0.0, 0, 1), "sigmoid_alibi": (1, -1.5, 0, 1), "sigmoid_norm_alibi": (1, 0.0, 1, 1)}


def alibi_offsets(Tk, NH):
    """-slope_h (i - j) for query i, key j (NH, Tk, Tk); slope_h = 2^(-8 (h+1) / NH) (docs/MODEL.md 6)."""
    slopes = torch.tensor([2.0 ** (-8.0 * (h + 1) / NH) for h in range(NH)], dtype=torch.float64)
    pos = torch.arange(Tk, dtype=torch.float64)
    return -slopes[:, None, None] * (pos[:, None] - pos[None, :])


def reference(qkv64, Tk, NH, score):
    """Causal attention over the first Tk positions: out (B,Tk,C) and the row statistic (B,NH,Tk):
    log-sum-exp (softmax), row sum of the sigmoids (normalized sigmoid), None (plain sigmoid)."""
    sigmoid, bias, normalize, alibi = SCORES[score]
    B, C = qkv64.shape[0], qkv64.shape[2] // 3
    hs = C // NH
    q, k, v = qkv64[:, :Tk].split(C, dim=2)
    q, k, v = (x.reshape(B, Tk, NH, hs).transpose(1, 2) for x in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(hs)
    if alibi:
        scores = scores + alibi_offsets(Tk, NH)
    mask = torch.ones(Tk, Tk, dtype=torch.bool).tril()
    scores = scores.masked_fill(~mask, float("-inf"))
    if not sigmoid:
        weights, stat = torch.softmax(scores, dim=-1), torch.logsumexp(scores, dim=-1)
    else:
        weights = torch.sigmoid(scores + bias)       # masked: sigmoid(-inf) = 0
        stat = weights.sum(-1) if normalize else None
        if normalize:
            weights = weights / (stat + 1e-8).unsqueeze(-1)
    out = weights @ v
    return out.transpose(1, 2).reshape(B, Tk, C), stat


# (B, T, C, NH, scale of qkv): hs = C/NH of 1, 8, 12, 64, 96 and odd T; T = 203 spans two forward
# blocks of 128 query rows and ends in a partial group of rows; scale 3 gives peaked rows.
SHAPES = [(1, 1, 1, 1, 1.0), (2, 7, 8, 1, 1.0), (1, 7, 12, 12, 1.0), (2, 9, 36, 3, 1.0), (2, 65, 96, 12, 1.0),
          (1, 33, 128, 2, 3.0), (1, 17, 192, 2, 1.0), (2, 64, 768, 12, 1.0), (1, 203, 64, 1, 1.0)]


@pytest.mark.parametrize("score", list(SCORES))
@pytest.mark.parametrize("B,T,C,NH,scale", SHAPES)
def test_attention(B, T, C, NH, scale, score):
    gen = np.random.default_rng(B * 1000 + T * 10 + NH)
    qkv = f32(B, T, 3 * C, gen=gen, scale=scale)
    dout = f32(B, T, C, gen=gen)
    out, stat = poison(B, T, C), poison(B, NH, T)
    call("attention_forward", out, stat, qkv, B, T, T, T, C, NH, AttnScore(*SCORES[score]))
    qkv64 = t64(qkv, True)
    ref_out, ref_stat = reference(qkv64, T, NH, score)
    case = f"{score} B={B} T={T} C={C} NH={NH}"
    # Dot products over hs and weighted sums over up to T keys in float32: 2e-5.
    err = rel_err(out, ref_out)
    assert err < 2e-5, f"attention forward {case}: {err:.2e}"
    if ref_stat is not None:
        err = rel_err(stat, ref_stat)
        assert err < 2e-5, f"attention row statistic {case}: {err:.2e}"

    ref_out.backward(t64(dout))
    dqkv0 = f32(B, T, 3 * C, gen=gen, scale=0.5)
    dqkv = dqkv0.copy()
    call("attention_backward", dqkv, dout, qkv, out, stat, B, T, C, NH, AttnScore(*SCORES[score]))
    for part, name in enumerate("qkv"):
        cols = slice(part * C, (part + 1) * C)
        err = rel_err(dqkv[:, :, cols], t64(dqkv0[:, :, cols]) + qkv64.grad[:, :, cols])
        assert err < 2e-5, f"attention backward d{name} {case}: {err:.2e}"


# (B, Tq, Tk, Tmax, C, NH): one new token, a chunk of new tokens, a full cache, prefill, and a
# chunk longer than one forward block of 128 rows.
DECODE = [(1, 1, 1, 4, 8, 1), (2, 1, 9, 16, 64, 8), (2, 3, 17, 17, 96, 12), (1, 5, 5, 33, 128, 2),
          (3, 4, 40, 64, 768, 12), (1, 130, 300, 320, 64, 4)]


@pytest.mark.parametrize("score", list(SCORES))
@pytest.mark.parametrize("B,Tq,Tk,Tmax,C,NH", DECODE)
def test_attention_decode(B, Tq, Tk, Tmax, C, NH, score):
    gen = np.random.default_rng(B * 1000 + Tq * 100 + Tk)
    qkv = f32(B, Tmax, 3 * C, gen=gen)
    qkv[:, Tk:] = np.nan               # cache rows past Tk must never be read
    out, stat = poison(B, Tq, C), poison(B, NH, Tq)
    call("attention_forward", out, stat, qkv, B, Tq, Tk, Tmax, C, NH, AttnScore(*SCORES[score]))
    ref_out, ref_stat = reference(t64(qkv), Tk, NH, score)
    case = f"{score} B={B} Tq={Tq} Tk={Tk} Tmax={Tmax} C={C} NH={NH}"
    err = rel_err(out, ref_out[:, Tk - Tq:])
    assert err < 2e-5, f"attention decode {case}: {err:.2e}"
    if ref_stat is not None:
        err = rel_err(stat, ref_stat[:, :, Tk - Tq:])
        assert err < 2e-5, f"attention decode row statistic {case}: {err:.2e}"
