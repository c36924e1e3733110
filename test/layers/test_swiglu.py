# swiglu_forward/backward (layers/swiglu.c) against PyTorch float64 autograd of silu(gate) * up, with
# the rows of inp laid out [gate | up].
import numpy as np
import pytest
import torch
from clib import call, f32, poison, rel_err, t64


@pytest.mark.parametrize("N,hidden", [(1, 1), (3, 7), (33, 40), (64, 341), (257, 384)])
def test_swiglu(N, hidden):
    gen = np.random.default_rng(N * 1000 + hidden)
    inp = f32(N, 2 * hidden, gen=gen, scale=4.0)   # gates far into both tails of the sigmoid
    inp[0, 0] = -100.0                              # exp(-g) beyond float range: silu(g) = 0, no NaN
    dout = f32(N, hidden, gen=gen)
    out = poison(N, hidden)
    call("swiglu_forward", out, inp, N, hidden)
    x64 = t64(inp, True)
    gate, up = x64[:, :hidden], x64[:, hidden:]
    ref = torch.nn.functional.silu(gate) * up
    # a sigmoid (exp to about 1 ulp, a division) and two products per element: 1e-6 is ~10 ulp
    err = rel_err(out, ref)
    assert err < 1e-6, f"swiglu forward N={N} hidden={hidden}: {err:.2e}"

    ref.backward(t64(dout))
    dx0 = f32(N, 2 * hidden, gen=gen, scale=0.5)
    dx = dx0.copy()
    call("swiglu_backward", dx, inp, dout, N, hidden)
    for name, part in [("dgate", np.s_[:, :hidden]), ("dup", np.s_[:, hidden:])]:
        err = rel_err(dx[part], t64(dx0[part]) + x64.grad[part])
        assert err < 1e-6, f"swiglu backward {name} N={N} hidden={hidden}: {err:.2e}"
