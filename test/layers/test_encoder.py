# encoder_forward/backward (layers/encoder.c) against PyTorch float64 embedding lookups.
import ctypes

import numpy as np
import pytest
import torch
from clib import LIB, call, f32, poison, rel_err, t64

# (B, T, C, V, rows of wpe): few tokens so they repeat; wpe longer than T as in the trainer.
SHAPES = [(1, 1, 1, 1, 1), (2, 7, 33, 5, 9), (4, 65, 64, 11, 65), (3, 16, 768, 50, 32)]


def inputs(B, T, C, V, maxT):
    gen = np.random.default_rng(B * 10007 + T * 101 + C)
    inp = gen.integers(0, V, size=(B, T), dtype=np.int32)
    return inp, f32(V, C, gen=gen), f32(maxT, C, gen=gen), f32(B, T, C, gen=gen), gen


@pytest.mark.parametrize("positions", [True, False])   # False: wpe = dwpe = NULL (RoPE models)
@pytest.mark.parametrize("B,T,C,V,maxT", SHAPES)
def test_encoder(B, T, C, V, maxT, positions):
    inp, wte, wpe, dout, gen = inputs(B, T, C, V, maxT)
    out = poison(B, T, C)
    call("encoder_forward", out, inp, wte, wpe if positions else None, B, T, C)
    wte64, wpe64 = t64(wte, True), t64(wpe, True)
    ref = wte64[torch.from_numpy(inp).long()] + (wpe64[:T] if positions else 0.0)
    case = f"B={B} T={T} C={C} positions={positions}"
    err = rel_err(out, ref)
    assert err < 1e-6, f"encoder forward {case}: {err:.2e}"   # one rounded add

    ref.backward(t64(dout))
    dwte0, dwpe0 = f32(V, C, gen=gen, scale=0.5), f32(maxT, C, gen=gen, scale=0.5)
    dwte, dwpe = dwte0.copy(), dwpe0.copy()
    call("encoder_backward", dwte, dwpe if positions else None, dout, inp, B, T, C)
    err = rel_err(dwte, t64(dwte0) + wte64.grad)
    assert err < 1e-5, f"encoder backward dwte {case}: {err:.2e}"
    if positions:
        err = rel_err(dwpe, t64(dwpe0) + wpe64.grad)
        assert err < 1e-5, f"encoder backward dwpe {case}: {err:.2e}"


def test_encoder_backward_deterministic():
    """Bitwise the same result for 1, 2 and 5 threads (every element sums in (b,t) order)."""
    B, T, C, V, maxT = 4, 65, 100, 3, 65
    inp, _, _, dout, gen = inputs(B, T, C, V, maxT)
    dwte0, dwpe0 = f32(V, C, gen=gen), f32(maxT, C, gen=gen)
    threads = LIB.omp_get_max_threads()
    results = []
    try:
        for n in (1, 2, 5):
            LIB.omp_set_num_threads(ctypes.c_int(n))
            dwte, dwpe = dwte0.copy(), dwpe0.copy()
            call("encoder_backward", dwte, dwpe, dout, inp, B, T, C)
            results.append((dwte, dwpe))
    finally:
        LIB.omp_set_num_threads(ctypes.c_int(threads))
    for dwte, dwpe in results[1:]:
        assert np.array_equal(dwte, results[0][0]) and np.array_equal(dwpe, results[0][1])
