# rope_forward/backward (attention/rope.c) against an independent rotate-half (GPT-NeoX) RoPE on
# (B,T,NH,hs) tensors in PyTorch float64 autograd: out-of-place and in-place forward, accumulating
# backward, positions starting at pos0 (KV-cache decoding) up to 1e5, and the one-line error for
# an odd head size.
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from clib import LIB, call, f32, poison, rel_err, t64
from timeouts import HANG_TIMEOUT


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def reference(qkv64, NH, pos0):
    """RoPE (base 10000) on the q and k parts of qkv (B,T,3C); v unchanged."""
    B, T, C = qkv64.shape[0], qkv64.shape[1], qkv64.shape[2] // 3
    hs = C // NH
    pos = torch.arange(pos0, pos0 + T, dtype=torch.float64)
    inv_freq = 10000.0 ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    angle = torch.outer(pos, inv_freq)                       # (T, hs/2)
    emb = torch.cat((angle, angle), dim=-1)                  # (T, hs)
    cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]
    q, k, v = qkv64.split(C, dim=2)
    q, k = (x.reshape(B, T, NH, hs) for x in (q, k))
    q, k = (x * cos + rotate_half(x) * sin for x in (q, k))
    return torch.cat((q.reshape(B, T, C), k.reshape(B, T, C), v), dim=2)


# (B, T, C, NH, pos0): hs from 2 to 64, T from 1 to 65, pos0 0, small, 4000 and 1e5.
SHAPES = [(1, 1, 2, 1, 0), (2, 7, 12, 6, 3), (1, 65, 64, 1, 0), (2, 33, 96, 3, 4000), (3, 5, 20, 2, 17),
          (1, 3, 384, 6, 100000), (2, 64, 768, 12, 0), (1, 1, 48, 4, 4000)]


@pytest.mark.parametrize("B,T,C,NH,pos0", SHAPES)
def test_rope(B, T, C, NH, pos0):
    case = f"B={B} T={T} C={C} NH={NH} pos0={pos0}"
    gen = np.random.default_rng(B * 1000 + T * 10 + NH + pos0)
    qkv, dout = f32(B, T, 3 * C, gen=gen), f32(B, T, 3 * C, gen=gen)
    out = poison(B, T, 3 * C)
    call("rope_forward", out, qkv, B, T, C, NH, pos0)
    qkv64 = t64(qkv, True)
    ref = reference(qkv64, NH, pos0)
    # Two products and a sum per element in float32, sin/cos rounded once to float32: 1e-5.
    err = rel_err(out, ref)
    assert err < 1e-5, f"rope forward {case}: {err:.2e}"

    inplace = qkv.copy()
    call("rope_forward", inplace, inplace, B, T, C, NH, pos0)
    assert np.array_equal(inplace, out), f"rope forward in place differs from out of place {case}"

    ref.backward(t64(dout))
    dqkv0 = f32(B, T, 3 * C, gen=gen, scale=0.5)
    dqkv = dqkv0.copy()
    call("rope_backward", dqkv, dout, B, T, C, NH, pos0)
    for part, name in enumerate("qkv"):
        cols = slice(part * C, (part + 1) * C)
        err = rel_err(dqkv[:, :, cols], t64(dqkv0[:, :, cols]) + qkv64.grad[:, :, cols])
        assert err < 1e-5, f"rope backward d{name} {case}: {err:.2e}"


ODD_HS = """
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
buf = (ctypes.c_float * 27)()
getattr(lib, sys.argv[2])(buf, buf, 1, 1, 9, 3, 0)   # C = 9, NH = 3: hs = 3
"""


@pytest.mark.parametrize("fn", ["rope_forward", "rope_backward"])
def test_rope_odd_head_size(fn):
    r = subprocess.run([sys.executable, "-c", ODD_HS, LIB._name, fn], capture_output=True, text=True,
                       timeout=HANG_TIMEOUT)
    assert r.returncode != 0, f"{fn} with hs = 3 did not fail"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, f"{fn} odd hs: expected a one-line error, got {r.stderr!r}"
    assert lines[0].startswith(f"error: {fn}: head size 3") and "odd" in lines[0], lines[0]
