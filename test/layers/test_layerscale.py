# layerscale_forward/backward (layers/layerscale.c), LayerScale out = inp * scale[c] (docs/MODEL.md 10),
# against PyTorch float64 autograd: out-of-place and in-place forward, accumulating backward.
import numpy as np
import pytest
import torch
from clib import call, f32, poison, rel_err, t64

# (N, C): N = 1, odd sizes, and more rows than the 64 reduction chunks (300, 1000).
SHAPES = [(1, 1), (1, 33), (7, 5), (64, 768), (300, 65), (1000, 3)]


@pytest.mark.parametrize("N,C", SHAPES)
def test_layerscale(N, C):
    case = f"N={N} C={C}"
    gen = np.random.default_rng(N * 1000 + C)
    x, scale, dout = f32(N, C, gen=gen), f32(C, gen=gen, scale=0.1), f32(N, C, gen=gen)
    out = poison(N, C)
    call("layerscale_forward", out, x, scale, N, C)
    x64, s64 = t64(x, True), t64(scale, True)
    ref = x64 * s64
    # One product per element: 1e-5.
    err = rel_err(out, ref)
    assert err < 1e-5, f"layerscale forward {case}: {err:.2e}"
    inplace = x.copy()
    call("layerscale_forward", inplace, inplace, scale, N, C)
    assert np.array_equal(inplace, out), f"layerscale forward in place differs {case}"

    ref.backward(t64(dout))
    dx0, ds0 = f32(N, C, gen=gen, scale=0.5), f32(C, gen=gen, scale=0.5)
    dx, ds = dx0.copy(), ds0.copy()
    call("layerscale_backward", dx, ds, dout, x, scale, N, C)
    err = rel_err(dx, t64(dx0) + x64.grad)
    assert err < 1e-5, f"layerscale backward dinp {case}: {err:.2e}"
    # dscale sums over N rows in float32: 2e-5.
    err = rel_err(ds, t64(ds0) + s64.grad)
    assert err < 2e-5, f"layerscale backward dscale {case}: {err:.2e}"
