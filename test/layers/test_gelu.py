# gelu_forward/backward (layers/gelu.c) against torch.nn.functional.gelu in float64: the tanh
# approximation (exact=0, GPT-2's) and the erf form (exact=1, gelu=erf).
import numpy as np
import pytest
import torch
from clib import call, f32, poison, rel_err, t64


@pytest.mark.parametrize("exact", [0, 1], ids=["tanh", "erf"])
@pytest.mark.parametrize("N", [1, 7, 33, 1000, 4097])
def test_gelu(N, exact):
    gen = np.random.default_rng(N)
    x = f32(N, gen=gen, scale=3.0)    # reaches both tails, where tanh saturates
    dout = f32(N, gen=gen)
    out = poison(N)
    call("gelu_forward", out, x, N, exact)
    x64 = t64(x, True)
    ref = torch.nn.functional.gelu(x64, approximate="none" if exact else "tanh")
    err = rel_err(out, ref)
    assert err < 1e-5, f"gelu forward exact={exact} N={N}: {err:.2e}"

    ref.backward(t64(dout))
    dx0 = f32(N, gen=gen, scale=0.5)
    dx = dx0.copy()
    call("gelu_backward", dx, x, dout, N, exact)
    err = rel_err(dx, t64(dx0) + x64.grad)
    assert err < 1e-5, f"gelu backward exact={exact} N={N}: {err:.2e}"


def test_gelu_erf_elementwise_precision():
    """The erf GELU element by element over [-12, 12] and the extremes, against float64: x Phi(x) within
    1e-6 relative of each value (the normal CDF of common/fastmath.h is good to 4.7e-7; x and the
    product round once more), the derivative Phi(x) + x phi(x) within 1e-6 of its largest magnitude
    (it crosses 0 near x = -0.75, so relative to each value is no bound), and no NaN or infinity."""
    x = np.concatenate([np.linspace(-12, 12, 240001), [-1e30, -100.0, -13.5, 0.0, 1e-30, 100.0, 1e30]])
    x = x.astype(np.float32)
    N = x.size
    out, dx = poison(N), np.zeros(N, np.float32)
    call("gelu_forward", out, x, N, 1)
    call("gelu_backward", dx, x, np.ones(N, np.float32), N, 1)
    # from Phi(x) = erfc(-x / sqrt 2) / 2 in float64: torch's gelu forms 1 + erf(x / sqrt 2), which
    # cancels to nothing in float64 too below x = -8
    x64 = t64(x)
    phi_cdf = 0.5 * torch.special.erfc(-x64 / np.sqrt(2.0))
    ref = (x64 * phi_cdf).numpy()
    dref = (phi_cdf + x64 * torch.exp(-0.5 * x64 * x64) / np.sqrt(2.0 * np.pi)).numpy()
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dx)), "non-finite erf GELU"
    big = np.abs(ref) > 1e-30
    rel = np.abs(out[big] - ref[big]) / np.abs(ref[big])
    assert rel.max() < 1e-6, f"erf GELU forward: {rel.max():.2e} at x = {x[big][rel.argmax()]}"
    assert np.abs(out[~big]).max() < 1e-30, "erf GELU of the far negative tail must vanish"
    err = rel_err(dx, dref)
    assert err < 1e-6, f"erf GELU derivative: {err:.2e}"
