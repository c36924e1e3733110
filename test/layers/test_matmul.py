"""matmul_forward / matmul_backward (layers/matmul.c) against PyTorch float64 autograd.

Bound: rel_err < 1e-5 (max abs error over max abs reference). The C kernel accumulates in fp32
over K <= 3072 in KC-deep slices; with unit-variance inputs the observed error is ~1e-6.
"""
import numpy as np
import pytest
import torch

from clib import call, f32, poison, rel_err, t64

BOUND = 1e-5

# (N, C, OC): edges (1, odd, one past a register tile or a cache block), the GPT-2 124M layers and
# the small model's. Between them each GEMM (NT, NN, TN) sees K, M and N below and above KC, MC, NC.
SHAPES = [
    (1, 1, 1), (1, 3, 17), (3, 1, 5), (17, 3, 1), (3, 17, 64), (64, 65, 3), (65, 64, 130),
    (17, 257, 65), (130, 1, 257), (257, 130, 17), (7, 768, 33), (65, 385, 770),
    (1024, 128, 384), (1024, 128, 257), (1024, 128, 128), (256, 768, 768), (64, 3072, 768),
    (256, 768, 2304), (33, 768, 3072),
    (5, 40, 6500),  # N of the forward GEMM spans several NC blocks on each thread
]


def reference(x, w, b, dout):
    tx, tw = t64(x, grad=True), t64(w, grad=True)
    tb = t64(b, grad=True) if b is not None else None
    out = torch.nn.functional.linear(tx, tw, tb)
    out.backward(t64(dout))
    return out, tx.grad, tw.grad, (tb.grad if tb is not None else None)


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("N,C,OC", SHAPES, ids=[f"N{n}_C{c}_OC{o}" for n, c, o in SHAPES])
def test_matmul(N, C, OC, with_bias):
    gen = np.random.default_rng(N * 1000003 + C * 1009 + OC)
    x, w, dout = f32(N, C, gen=gen), f32(OC, C, gen=gen), f32(N, OC, gen=gen)
    b = f32(OC, gen=gen) if with_bias else None
    out = poison(N, OC)
    call("matmul_forward", out, x, w, b, N, C, OC)
    ref_out, ref_dx, ref_dw, ref_db = reference(x, w, b, dout)
    err = rel_err(out, ref_out)
    assert err < BOUND, f"matmul forward N={N} C={C} OC={OC} bias={with_bias}: {err:.2e}"

    # Gradient buffers start from random values: the backward must add to them.
    dx0, dw0 = f32(N, C, gen=gen), f32(OC, C, gen=gen)
    db0 = f32(OC, gen=gen) if with_bias else None
    dx, dw, db = dx0.copy(), dw0.copy(), (db0.copy() if with_bias else None)
    call("matmul_backward", dx, dw, db, dout, x, w, N, C, OC)
    for name, got, start, ref in [("dinp", dx, dx0, ref_dx), ("dweight", dw, dw0, ref_dw),
                                  ("dbias", db, db0, ref_db)]:
        if ref is None:
            continue
        err = rel_err(got, t64(start) + ref)
        assert err < BOUND, f"matmul backward {name} N={N} C={C} OC={OC} bias={with_bias}: {err:.2e}"


@pytest.mark.parametrize("N,C,OC", [(1, 1, 1), (65, 130, 257), (256, 768, 768)])
def test_matmul_backward_without_dinp(N, C, OC):
    """dinp NULL (the first layer's input needs no gradient): dweight and dbias still accumulate."""
    gen = np.random.default_rng(7)
    x, w, b, dout = f32(N, C, gen=gen), f32(OC, C, gen=gen), f32(OC, gen=gen), f32(N, OC, gen=gen)
    _, _, ref_dw, ref_db = reference(x, w, b, dout)
    dw0, db0 = f32(OC, C, gen=gen), f32(OC, gen=gen)
    dw, db = dw0.copy(), db0.copy()
    call("matmul_backward", None, dw, db, dout, x, w, N, C, OC)
    assert rel_err(dw, t64(dw0) + ref_dw) < BOUND, f"dweight N={N} C={C} OC={OC}"
    assert rel_err(db, t64(db0) + ref_db) < BOUND, f"dbias N={N} C={C} OC={OC}"


def test_matmul_backward_without_dbias():
    """dbias NULL with dinp given (a bias-free layer such as the LM head)."""
    N, C, OC = 33, 70, 129
    gen = np.random.default_rng(11)
    x, w, dout = f32(N, C, gen=gen), f32(OC, C, gen=gen), f32(N, OC, gen=gen)
    _, ref_dx, ref_dw, _ = reference(x, w, None, dout)
    dx, dw = np.zeros((N, C), np.float32), np.zeros((OC, C), np.float32)
    call("matmul_backward", dx, dw, None, dout, x, w, N, C, OC)
    assert rel_err(dx, ref_dx) < BOUND and rel_err(dw, ref_dw) < BOUND


@pytest.mark.parametrize("exact", [0, 1], ids=["tanh", "erf"])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("N,C,OC", [(1, 3, 5), (37, 64, 256), (65, 385, 770), (1024, 128, 512), (64, 768, 3072)])
def test_matmul_gelu_forward(N, C, OC, with_bias, exact):
    """The forward's bias and GELU epilogue: pre_gelu = x @ w^T + b, out = gelu(pre_gelu) (tanh, or erf
    with exact=1), for K below and above KC (the epilogue runs on the last K slice only) and N over
    several register tiles; without a bias as linbias=0 runs it."""
    gen = np.random.default_rng(N + C + OC)
    x, w = f32(N, C, gen=gen), f32(OC, C, gen=gen)
    b = f32(OC, gen=gen) if with_bias else None
    pre, out = poison(N, OC), poison(N, OC)
    call("matmul_gelu_forward", out, pre, x, w, b, N, C, OC, exact)
    ref_pre = torch.nn.functional.linear(t64(x), t64(w), t64(b) if with_bias else None)
    ref_out = torch.nn.functional.gelu(ref_pre, approximate="none" if exact else "tanh")
    assert rel_err(pre, ref_pre) < BOUND, f"pre_gelu N={N} C={C} OC={OC} bias={with_bias}"
    assert rel_err(out, ref_out) < BOUND, f"gelu out N={N} C={C} OC={OC} bias={with_bias} exact={exact}"
