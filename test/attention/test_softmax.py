# attention_forward/backward (attention/softmax.c) against causal softmax attention in PyTorch float64:
# training shapes (Tq = Tk = Tmax = T) forward, log-sum-exp and backward, and the KV-cache decode
# semantics (the last Tq of the first Tk positions of a Tmax-row cache).
import math

import numpy as np
import pytest
import torch
from clib import call, f32, poison, rel_err, t64


def reference(qkv64, Tk, NH):
    """Full causal attention over the first Tk positions: out (B,Tk,C), lse (B,NH,Tk)."""
    B, C = qkv64.shape[0], qkv64.shape[2] // 3
    hs = C // NH
    q, k, v = qkv64[:, :Tk].split(C, dim=2)
    q, k, v = (x.reshape(B, Tk, NH, hs).transpose(1, 2) for x in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(hs)
    mask = torch.ones(Tk, Tk, dtype=torch.bool).tril()
    scores = scores.masked_fill(~mask, float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v
    return out.transpose(1, 2).reshape(B, Tk, C), torch.logsumexp(scores, dim=-1)


# (B, T, C, NH, scale of qkv): hs = C/NH of 1, 8, 12, 64, 96 and odd T; T = 203 spans two forward
# blocks of 128 query rows and ends in a partial group of rows; scale 3 gives peaked softmax rows.
SHAPES = [(1, 1, 1, 1, 1.0), (2, 7, 8, 1, 1.0), (1, 7, 12, 12, 1.0), (2, 9, 36, 3, 1.0), (2, 65, 96, 12, 1.0),
          (1, 33, 128, 2, 3.0), (1, 17, 192, 2, 1.0), (2, 64, 768, 12, 1.0), (1, 203, 64, 1, 1.0)]


@pytest.mark.parametrize("B,T,C,NH,scale", SHAPES)
def test_attention(B, T, C, NH, scale):
    gen = np.random.default_rng(B * 1000 + T * 10 + NH)
    qkv = f32(B, T, 3 * C, gen=gen, scale=scale)
    dout = f32(B, T, C, gen=gen)
    out, lse = poison(B, T, C), poison(B, NH, T)
    call("attention_forward", out, lse, qkv, B, T, T, T, C, NH)
    qkv64 = t64(qkv, True)
    ref_out, ref_lse = reference(qkv64, T, NH)
    # Dot products and softmax sums over up to hs and T terms in float32: 2e-5.
    err = rel_err(out, ref_out)
    assert err < 2e-5, f"attention forward B={B} T={T} C={C} NH={NH}: {err:.2e}"
    err = rel_err(lse, ref_lse)
    assert err < 2e-5, f"attention lse B={B} T={T} C={C} NH={NH}: {err:.2e}"

    ref_out.backward(t64(dout))
    dqkv0 = f32(B, T, 3 * C, gen=gen, scale=0.5)
    dqkv = dqkv0.copy()
    call("attention_backward", dqkv, dout, qkv, out, lse, B, T, C, NH)
    for part, name in enumerate("qkv"):
        cols = slice(part * C, (part + 1) * C)
        err = rel_err(dqkv[:, :, cols], t64(dqkv0[:, :, cols]) + qkv64.grad[:, :, cols])
        assert err < 2e-5, f"attention backward d{name} B={B} T={T} C={C} NH={NH}: {err:.2e}"


# (B, Tq, Tk, Tmax, C, NH): one new token, a chunk of new tokens, a full cache, prefill, and a
# chunk longer than one forward block of 128 rows.
DECODE = [(1, 1, 1, 4, 8, 1), (2, 1, 9, 16, 64, 8), (2, 3, 17, 17, 96, 12), (1, 5, 5, 33, 128, 2),
          (3, 4, 40, 64, 768, 12), (1, 130, 300, 320, 64, 4)]


@pytest.mark.parametrize("B,Tq,Tk,Tmax,C,NH", DECODE)
def test_attention_decode(B, Tq, Tk, Tmax, C, NH):
    gen = np.random.default_rng(B * 1000 + Tq * 100 + Tk)
    qkv = f32(B, Tmax, 3 * C, gen=gen)
    qkv[:, Tk:] = np.nan               # cache rows past Tk must never be read
    out, lse = poison(B, Tq, C), poison(B, NH, Tq)
    call("attention_forward", out, lse, qkv, B, Tq, Tk, Tmax, C, NH)
    ref_out, ref_lse = reference(t64(qkv), Tk, NH)
    err = rel_err(out, ref_out[:, Tk - Tq:])
    assert err < 2e-5, f"attention decode B={B} Tq={Tq} Tk={Tk} Tmax={Tmax} C={C} NH={NH}: {err:.2e}"
    err = rel_err(lse, ref_lse[:, :, Tk - Tq:])
    assert err < 2e-5, f"attention decode lse B={B} Tq={Tq} Tk={Tk} Tmax={Tmax} NH={NH}: {err:.2e}"
