# layernorm_forward/backward (layers/layernorm.c) against torch.nn.functional.layer_norm in float64.
import numpy as np
import pytest
import torch
from clib import call, f32, poison, rel_err, t64


@pytest.mark.parametrize("N,C", [(1, 1), (5, 1), (1, 33), (7, 33), (64, 768), (300, 65)])
def test_layernorm(N, C):
    gen = np.random.default_rng(N * 1000 + C)
    x = f32(N, C, gen=gen, scale=2.0) + 0.5      # a non-zero mean, as activations have
    w, b, dout = f32(C, gen=gen), f32(C, gen=gen), f32(N, C, gen=gen)
    out, mean, rstd = poison(N, C), poison(N), poison(N)
    call("layernorm_forward", out, mean, rstd, x, w, b, N, C)

    x64, w64, b64 = t64(x, True), t64(w, True), t64(b, True)
    ref = torch.nn.functional.layer_norm(x64, (C,), w64, b64, eps=1e-5)
    # Row reductions over C in float32: 1e-5 covers C up to a few thousand.
    err = rel_err(out, ref)
    assert err < 1e-5, f"layernorm forward N={N} C={C}: {err:.2e}"
    err = rel_err(mean, x64.mean(-1))
    assert err < 1e-5, f"layernorm mean N={N} C={C}: {err:.2e}"
    rstd_ref = 1.0 / torch.sqrt(x64.var(-1, unbiased=False) + 1e-5)
    err = rel_err(rstd, rstd_ref)
    assert err < 1e-5, f"layernorm rstd N={N} C={C}: {err:.2e}"

    ref.backward(t64(dout))
    dx0, dw0, db0 = f32(N, C, gen=gen, scale=0.5), f32(C, gen=gen, scale=0.5), f32(C, gen=gen, scale=0.5)
    dx, dw, db = dx0.copy(), dw0.copy(), db0.copy()
    call("layernorm_backward", dx, dw, db, dout, x, w, mean, rstd, N, C)
    for name, got, start, grad in [("dinp", dx, dx0, x64.grad), ("dweight", dw, dw0, w64.grad),
                                   ("dbias", db, db0, b64.grad)]:
        err = rel_err(got, t64(start) + grad)
        # C=1: the exact dinp is 0, but the variance is 0 so rstd = 1/sqrt(eps) = 316 multiplies the
        # float32 rounding of weight*dout (about 6e-8): only there the bound is 1e-4.
        bound = 1e-4 if (C == 1 and name == "dinp") else 1e-5
        assert err < bound, f"layernorm backward {name} N={N} C={C}: {err:.2e}"
