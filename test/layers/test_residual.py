# residual_forward/backward (layers/residual.c) against float64 sums.
import numpy as np
import pytest
from clib import call, f32, poison, rel_err, t64


@pytest.mark.parametrize("N", [1, 7, 33, 4097])
def test_residual(N):
    gen = np.random.default_rng(N)
    a, b, dout = f32(N, gen=gen), f32(N, gen=gen), f32(N, gen=gen)
    out = poison(N)
    call("residual_forward", out, a, b, N)
    err = rel_err(out, t64(a) + t64(b))
    assert err < 1e-6, f"residual forward N={N}: {err:.2e}"   # one rounded add

    da0, db0 = f32(N, gen=gen, scale=0.5), f32(N, gen=gen, scale=0.5)
    da, db = da0.copy(), db0.copy()
    call("residual_backward", da, db, dout, N)
    assert rel_err(da, t64(da0) + t64(dout)) < 1e-6, f"residual backward dinp1 N={N}"
    assert rel_err(db, t64(db0) + t64(dout)) < 1e-6, f"residual backward dinp2 N={N}"
