# rmsnorm_forward/backward and residual_rmsnorm_forward (layers/rmsnorm.c) against PyTorch float64
# autograd of the definition y = x / sqrt(mean(x^2) + 1e-5) * w (torch 1.13 has no rms_norm).
import numpy as np
import pytest
import torch
from clib import call, f32, poison, rel_err, t64

SHAPES = [(1, 1), (5, 1), (1, 33), (7, 33), (64, 768), (300, 65)]


def reference(x64, w64):
    rstd = torch.rsqrt((x64 * x64).mean(-1) + 1e-5)
    return x64 * rstd[:, None] * w64, rstd


@pytest.mark.parametrize("N,C", SHAPES)
def test_rmsnorm(N, C):
    gen = np.random.default_rng(N * 1000 + C)
    x = f32(N, C, gen=gen, scale=2.0) + 0.5      # a non-zero mean, which RMSNorm keeps
    w, dout = f32(C, gen=gen), f32(N, C, gen=gen)
    out, rstd = poison(N, C), poison(N)
    call("rmsnorm_forward", out, rstd, x, w, N, C)
    x64, w64 = t64(x, True), t64(w, True)
    ref, ref_rstd = reference(x64, w64)
    # a sum of squares over C in float32 and a few roundings per element: 1e-5 covers C up to thousands
    err = rel_err(out, ref)
    assert err < 1e-5, f"rmsnorm forward N={N} C={C}: {err:.2e}"
    err = rel_err(rstd, ref_rstd)
    assert err < 1e-5, f"rmsnorm rstd N={N} C={C}: {err:.2e}"

    ref.backward(t64(dout))
    dx0, dw0 = f32(N, C, gen=gen, scale=0.5), f32(C, gen=gen, scale=0.5)
    dx, dw = dx0.copy(), dw0.copy()
    call("rmsnorm_backward", dx, dw, dout, x, w, rstd, N, C)
    for name, got, start, grad in [("dinp", dx, dx0, x64.grad), ("dweight", dw, dw0, w64.grad)]:
        err = rel_err(got, t64(start) + grad)
        assert err < 1e-5, f"rmsnorm backward {name} N={N} C={C}: {err:.2e}"


@pytest.mark.parametrize("aliased", [False, True], ids=["separate", "residual is inp2"])
@pytest.mark.parametrize("N,C", [(1, 1), (7, 33), (300, 65)])
def test_residual_rmsnorm(N, C, aliased):
    """The fused residual add: residual = inp1 + inp2 (written over inp2 as the graph does), then its RMSNorm."""
    gen = np.random.default_rng(N + C)
    a, b, w = f32(N, C, gen=gen), f32(N, C, gen=gen), f32(C, gen=gen)
    out, rstd = poison(N, C), poison(N)
    residual = b if aliased else poison(N, C)
    b64 = t64(b)
    call("residual_rmsnorm_forward", residual, out, rstd, a, b, w, N, C)
    ref_res = t64(a) + b64
    ref, ref_rstd = reference(ref_res, t64(w))
    assert rel_err(residual, ref_res) < 1e-6, f"residual N={N} C={C}"   # one rounded add
    assert rel_err(out, ref) < 1e-5, f"residual rmsnorm out N={N} C={C}"
    assert rel_err(rstd, ref_rstd) < 1e-5, f"residual rmsnorm rstd N={N} C={C}"
