# The sink slot (attention/sink_slot.c) after and beside the softmax attention of the keys
# (attention/softmax_sigmoid.c), against softmax over [slot; keys] in PyTorch float64: the slot's logit
# is s q.k* (K and KV biases), a learnable z_h (sink logit) or 0 (off by one), its value v* (KV) or 0.
# Forward output and log-sum-exp, every gradient (q, k, v, k*, v*, z), training and KV-cache decode
# shapes, with ALiBi on the keys too (the slot gets no offset).
import math

import numpy as np
import pytest
import torch
from clib import call, f32, poison, rel_err, t64
from test_softmax_sigmoid import AttnScore, alibi_offsets

KINDS = {"k": 1, "kv": 2, "logit": 3, "one": 4}


def reference(qkv64, key, value, logit, Tk, NH, kind, alibi):
    """Causal softmax attention over [slot; first Tk keys]: out (B,Tk,C), lse (B,NH,Tk)."""
    B, C = qkv64.shape[0], qkv64.shape[2] // 3
    hs = C // NH
    q, k, v = qkv64[:, :Tk].split(C, dim=2)
    q, k, v = (x.reshape(B, Tk, NH, hs).transpose(1, 2) for x in (q, k, v))
    s = q @ k.transpose(-1, -2) / math.sqrt(hs)
    if alibi:
        s = s + alibi_offsets(Tk, NH)
    s = s.masked_fill(~torch.ones(Tk, Tk, dtype=torch.bool).tril(), float("-inf"))
    if kind in ("k", "kv"):
        z = (q * key[None, :, None, :]).sum(-1) / math.sqrt(hs)        # (B,NH,Tk)
    elif kind == "logit":
        z = logit[None, :, None].expand(B, NH, Tk)
    else:
        z = torch.zeros(B, NH, Tk, dtype=torch.float64)
    full = torch.cat([z[..., None], s], dim=-1)
    weights = torch.softmax(full, dim=-1)
    out = weights[..., 1:] @ v
    if kind == "kv":
        out = out + weights[..., :1] * value[None, :, None, :]
    return out.transpose(1, 2).reshape(B, Tk, C), torch.logsumexp(full, dim=-1)


def slot_params(gen, NH, hs):
    return f32(NH, hs, gen=gen), f32(NH, hs, gen=gen), f32(NH, gen=gen)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("alibi", [0, 1])
@pytest.mark.parametrize("B,T,C,NH", [(1, 1, 4, 1), (2, 9, 36, 3), (2, 33, 64, 4), (1, 70, 96, 2)])
def test_sink_slot(B, T, C, NH, kind, alibi):
    gen = np.random.default_rng(B * 100 + T + NH)
    hs = C // NH
    qkv, dout = f32(B, T, 3 * C, gen=gen), f32(B, T, C, gen=gen)
    key, value, logit = slot_params(gen, NH, hs)
    score = AttnScore(0, 0.0, 0, alibi)
    out, lse = poison(B, T, C), poison(B, NH, T)
    call("attention_forward", out, lse, qkv, B, T, T, T, C, NH, score)
    call("attention_sink_forward", out, lse, qkv, key, value, logit, B, T, T, T, C, NH, KINDS[kind])
    qkv64, key64, value64, logit64 = t64(qkv, True), t64(key, True), t64(value, True), t64(logit, True)
    ref_out, ref_lse = reference(qkv64, key64, value64, logit64, T, NH, kind, alibi)
    case = f"sink={kind} alibi={alibi} B={B} T={T} C={C} NH={NH}"
    # as the attention kernel: dot products over hs, sums over up to T keys in float32
    assert rel_err(out, ref_out) < 2e-5, f"sink forward {case}: {rel_err(out, ref_out):.2e}"
    assert rel_err(lse, ref_lse) < 2e-5, f"sink lse {case}: {rel_err(lse, ref_lse):.2e}"

    ref_out.backward(t64(dout))
    dqkv0 = f32(B, T, 3 * C, gen=gen, scale=0.5)
    dqkv = dqkv0.copy()
    dkey, dvalue, dlogit = np.zeros_like(key), np.zeros_like(value), np.zeros_like(logit)
    call("attention_backward", dqkv, dout, qkv, out, lse, B, T, C, NH, score)
    call("attention_sink_backward", dqkv, dkey, dvalue, dlogit, dout, qkv, out, lse, key, value, logit, B, T, C, NH,
         KINDS[kind])
    for part, name in enumerate("qkv"):
        cols = slice(part * C, (part + 1) * C)
        err = rel_err(dqkv[:, :, cols], t64(dqkv0[:, :, cols]) + qkv64.grad[:, :, cols])
        assert err < 2e-5, f"sink backward d{name} {case}: {err:.2e}"
    grads = {"k": [(dkey, key64)], "kv": [(dkey, key64), (dvalue, value64)], "logit": [(dlogit, logit64)], "one": []}
    for got, param in grads[kind]:
        # a sum over B*T rows in float32
        err = rel_err(got, param.grad)
        assert err < 1e-4, f"sink backward of the slot's parameters {case}: {err:.2e}"
    for got, param in [(dkey, key64), (dvalue, value64), (dlogit, logit64)]:
        if all(got is not g for g, _ in grads[kind]):
            assert not got.any(), f"{case}: a gradient of a parameter sink={kind} does not have"


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("B,Tq,Tk,Tmax,C,NH", [(1, 1, 1, 4, 8, 1), (2, 1, 9, 16, 64, 8), (1, 5, 40, 64, 96, 2)])
def test_sink_slot_decode(B, Tq, Tk, Tmax, C, NH, kind):
    gen = np.random.default_rng(B * 1000 + Tq * 100 + Tk)
    qkv = f32(B, Tmax, 3 * C, gen=gen)
    qkv[:, Tk:] = np.nan               # cache rows past Tk must never be read
    key, value, logit = slot_params(gen, NH, C // NH)
    out, lse = poison(B, Tq, C), poison(B, NH, Tq)
    call("attention_forward", out, lse, qkv, B, Tq, Tk, Tmax, C, NH, AttnScore(0, 0.0, 0, 1))
    call("attention_sink_forward", out, lse, qkv, key, value, logit, B, Tq, Tk, Tmax, C, NH, KINDS[kind])
    ref_out, ref_lse = reference(t64(qkv), t64(key), t64(value), t64(logit), Tk, NH, kind, 1)
    case = f"sink={kind} B={B} Tq={Tq} Tk={Tk} Tmax={Tmax} C={C} NH={NH}"
    assert rel_err(out, ref_out[:, Tk - Tq:]) < 2e-5, f"sink decode {case}"
    assert rel_err(lse, ref_lse[:, :, Tk - Tq:]) < 2e-5, f"sink decode lse {case}"
