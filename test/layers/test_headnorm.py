# headnorm_forward/backward (layers/headnorm.c) against the float64 MultiHeadLayerNorm of
# scripts/ref/ref_mlstm.py (per-head LayerNorm, biased variance, per-channel weight, no bias).
import os
import sys

import numpy as np
import pytest
import torch
from clib import ROOT, call, f32, poison, rel_err, t64

sys.path.insert(0, os.path.join(ROOT, "scripts", "ref"))
import ref_mlstm as R  # noqa: E402


# (N, NH, hs, eps): hs from 1 to 65, one head and many, xLSTM's eps 1e-6 and LayerNorm's 1e-5.
CASES = [(1, 1, 1, 1e-6), (5, 2, 3, 1e-6), (7, 4, 16, 1e-6), (64, 12, 64, 1e-6), (33, 1, 65, 1e-5),
         (300, 8, 2, 1e-5)]


@pytest.mark.parametrize("N,NH,hs,eps", CASES)
def test_headnorm(N, NH, hs, eps):
    C = NH * hs
    case = f"headnorm N={N} NH={NH} hs={hs} eps={eps}"
    gen = np.random.default_rng(N * 1000 + NH * 10 + hs)
    x = f32(N, C, gen=gen, scale=2.0) + 0.5      # a non-zero mean, as the cell output may have
    w, dout = 1.0 + f32(C, gen=gen, scale=0.1), f32(N, C, gen=gen)
    out, mean, rstd = poison(N, C), poison(N, NH), poison(N, NH)
    call("headnorm_forward", out, mean, rstd, x, w, N, NH, hs, eps)

    x64, w64 = t64(x, True), t64(w, True)
    ref = R.multihead_layernorm(x64, w64, NH, eps)
    xh = x64.detach().reshape(N, NH, hs)
    ref_mean, ref_rstd = xh.mean(-1), 1.0 / torch.sqrt(xh.var(-1, unbiased=False) + eps)
    # Reductions over hs <= 65 in float32: 1e-5. But x - mean loses u |mean| absolutely, so a head whose
    # spread is small against its mean (among the 2400 heads of two features some have |x0 - x1| far
    # below |mean|) has the relative error u |mean| rstd: each head's error is divided by
    # max(1, |mean| rstd) (the condition number of x - mean) before it is compared with max |out|.
    cond = torch.clamp(ref_mean.abs() * ref_rstd, min=1.0)[..., None]
    scale = max(float(ref.detach().abs().max()), 1e-30)   # out is exactly 0 at hs = 1
    err = float(((t64(out) - ref.detach()).reshape(N, NH, hs).abs() / cond).max()) / scale
    assert np.all(np.isfinite(out)) and err < 1e-5, f"{case} forward out: {err:.2e}"
    for name, got, r in [("mean", mean, ref_mean), ("rstd", rstd, ref_rstd)]:
        err = rel_err(got, r)
        assert err < 1e-5, f"{case} forward {name}: {err:.2e}"

    ref.backward(t64(dout))
    dx0, dw0 = f32(N, C, gen=gen, scale=0.5), f32(C, gen=gen, scale=0.5)
    dx, dw = dx0.copy(), dw0.copy()
    call("headnorm_backward", dx, dw, dout, x, w, mean, rstd, N, NH, hs)
    # dinp = rstd (w dout - mean(w dout) - norm mean(w dout norm)): its error is u times its terms,
    # rstd |w dout|, which can be far larger than dinp itself (at hs = 1 dinp is exactly 0, and
    # rstd = 1/sqrt(eps) = 1000), so it is measured against the larger of the two; and norm carries
    # the error of x - mean, so each head's error is divided by its cond as in the forward.
    dinp_ref = t64(dx0) + x64.grad
    terms = (ref_rstd[..., None] * (t64(w) * t64(dout)).reshape(N, NH, hs).abs()).max()
    scale = max(float(dinp_ref.abs().max()), float(terms))
    err = float(((t64(dx) - dinp_ref).reshape(N, NH, hs).abs() / cond).max()) / scale
    assert np.all(np.isfinite(dx)) and err < 1e-5, f"{case} backward dinp: {err:.2e}"
    err = rel_err(dw, t64(dw0) + w64.grad)
    assert err < 1e-5, f"{case} backward dweight: {err:.2e}"
