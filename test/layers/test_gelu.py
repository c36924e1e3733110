# gelu_forward/backward (layers/gelu.c) against torch.nn.functional.gelu(approximate='tanh') in float64.
import numpy as np
import pytest
import torch
from clib import call, f32, poison, rel_err, t64


@pytest.mark.parametrize("N", [1, 7, 33, 1000, 4097])
def test_gelu(N):
    gen = np.random.default_rng(N)
    x = f32(N, gen=gen, scale=3.0)    # reaches both tails, where tanh saturates
    dout = f32(N, gen=gen)
    out = poison(N)
    call("gelu_forward", out, x, N)
    x64 = t64(x, True)
    ref = torch.nn.functional.gelu(x64, approximate="tanh")
    err = rel_err(out, ref)
    assert err < 1e-5, f"gelu forward N={N}: {err:.2e}"

    ref.backward(t64(dout))
    dx0 = f32(N, gen=gen, scale=0.5)
    dx = dx0.copy()
    call("gelu_backward", dx, x, dout, N)
    err = rel_err(dx, t64(dx0) + x64.grad)
    assert err < 1e-5, f"gelu backward N={N}: {err:.2e}"
