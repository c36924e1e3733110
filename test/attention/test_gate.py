# gate_forward/backward (attention/gate.c), the G1 output gate of gated attention (docs/MODEL.md section 7,
# 3.3), against out = inp * torch.sigmoid(gate_preact) in PyTorch float64 autograd, headwise (one
# gate per head broadcast over hs) and elementwise (one gate per channel).
import numpy as np
import pytest
import torch
from clib import call, f32, poison, rel_err, t64

# (N, NH, hs, gate scale): odd sizes, hs = 1 and 64, and pre-activations up to about +-80 (scale 20)
# where sigmoid saturates and g (1 - g) underflows.
SHAPES = [(1, 1, 1, 1.0), (1, 3, 2, 1.0), (7, 6, 5, 2.0), (33, 4, 16, 1.0), (64, 12, 64, 1.0), (9, 2, 8, 20.0)]


@pytest.mark.parametrize("headwise", [1, 0], ids=["headwise", "elementwise"])
@pytest.mark.parametrize("N,NH,hs,zscale", SHAPES)
def test_gate(N, NH, hs, zscale, headwise):
    case = f"{'headwise' if headwise else 'elementwise'} N={N} NH={NH} hs={hs} zscale={zscale}"
    gen = np.random.default_rng(N * 1000 + NH * 100 + hs + headwise)
    C = NH * hs
    G = NH if headwise else C
    x, z, dout = f32(N, C, gen=gen), f32(N, G, gen=gen, scale=zscale), f32(N, C, gen=gen)
    out = poison(N, C)
    call("gate_forward", out, x, z, N, NH, hs, headwise)

    x64, z64 = t64(x, True), t64(z, True)
    g = torch.sigmoid(z64)
    if headwise:
        ref = (x64.view(N, NH, hs) * g.view(N, NH, 1)).reshape(N, C)
    else:
        ref = x64 * g
    # One product per element in float32: 1e-5.
    err = rel_err(out, ref)
    assert err < 1e-5, f"gate forward {case}: {err:.2e}"

    ref.backward(t64(dout))
    dx0, dz0 = f32(N, C, gen=gen, scale=0.5), f32(N, G, gen=gen, scale=0.5)
    dx, dz = dx0.copy(), dz0.copy()
    call("gate_backward", dx, dz, dout, x, z, N, NH, hs, headwise)
    err = rel_err(dx, t64(dx0) + x64.grad)
    assert err < 1e-5, f"gate backward dinp {case}: {err:.2e}"
    # Headwise dgate is a sum over the hs channels of a head: 2e-5; elementwise is per element: 1e-5.
    err = rel_err(dz, t64(dz0) + z64.grad)
    bound = 2e-5 if headwise else 1e-5
    assert err < bound, f"gate backward dgate_preact {case}: {err:.2e}"


@pytest.mark.parametrize("headwise", [1, 0], ids=["headwise", "elementwise"])
def test_gate_saturated(headwise):
    """Pre-activations of +-100: g is 1 or (to float32) 0, nothing is NaN, the gate gradient is ~0."""
    N, NH, hs = 4, 2, 4
    C = NH * hs
    G = NH if headwise else C
    x, dout = f32(N, C), f32(N, C)
    z = np.where(np.arange(N * G).reshape(N, G) % 2 == 0, 100.0, -100.0).astype(np.float32)
    out = poison(N, C)
    call("gate_forward", out, x, z, N, NH, hs, headwise)
    g = 1.0 / (1.0 + np.exp(-z.astype(np.float64)))
    gfull = np.repeat(g, hs, axis=1) if headwise else g
    err = rel_err(out, x * gfull)
    assert err < 1e-7, f"gate forward saturated: not x * {{0, 1}}: {err:.2e}"
    dx, dz = np.zeros((N, C), np.float32), np.zeros((N, G), np.float32)
    call("gate_backward", dx, dz, dout, x, z, N, NH, hs, headwise)
    assert np.all(np.isfinite(dx)) and np.all(np.isfinite(dz)), "gate backward saturated: non-finite gradient"
    assert np.max(np.abs(dz)) < 1e-30, f"gate backward saturated: dgate_preact {np.max(np.abs(dz)):.2e}"
