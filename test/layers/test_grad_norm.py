# global_norm_squared (layers/grad_norm.c) against a float64 sum of squares.
import ctypes

import numpy as np
import pytest
from clib import LIB, call, f32, poison, rel_err, t64


@pytest.mark.parametrize("N", [1, 7, 33, 65536, 1000003])
def test_grad_norm(N):
    values = f32(N, gen=np.random.default_rng(N), scale=3.0)
    out = poison(1)
    call("global_norm_squared", out, values, ctypes.c_size_t(N))
    ref = (t64(values) ** 2).sum().reshape(1)
    err = rel_err(out, ref)
    assert err < 1e-6, f"global_norm_squared N={N}: {err:.2e}"   # double sum, one float rounding


def test_grad_norm_deterministic():
    """Bitwise the same for 1, 2 and 5 threads (fixed chunks, summed in order)."""
    N = 1000003
    values = f32(N, gen=np.random.default_rng(1))
    threads = LIB.omp_get_max_threads()
    results = []
    try:
        for n in (1, 2, 5):
            LIB.omp_set_num_threads(ctypes.c_int(n))
            out = poison(1)
            call("global_norm_squared", out, values, ctypes.c_size_t(N))
            results.append(out[0])
    finally:
        LIB.omp_set_num_threads(ctypes.c_int(threads))
    assert results[0] == results[1] == results[2], results
