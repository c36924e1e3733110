# crossentropy_forward_backward (layers/crossentropy.c) against torch.nn.functional.cross_entropy in
# float64: the padding of the vocabulary (V < Vp), loss-only calls and the in-place dlogits = logits.
import numpy as np
import pytest
import torch
from clib import call, f32, poison, rel_err, t64

SHAPES = [(1, 1, 1), (1, 1, 4), (7, 33, 40), (64, 50, 64), (5, 1000, 1024), (3, 50257, 50304)]


def inputs(N, V, Vp):
    gen = np.random.default_rng(N * 100003 + V)
    logits = f32(N, Vp, gen=gen, scale=3.0)
    logits[0, 0] += 100.0              # exp(100) overflows float32: needs the row max subtracted
    logits[:, V:] = np.nan             # the padding must never be read
    targets = gen.integers(0, V, size=N, dtype=np.int32)
    return logits, targets


def reference(logits, targets, V, dloss):
    x = t64(logits[:, :V], True)
    losses = torch.nn.functional.cross_entropy(x, torch.from_numpy(targets).long(), reduction="none")
    losses.backward(torch.full_like(losses, dloss))
    return losses, x.grad


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("N,V,Vp", SHAPES)
def test_crossentropy(N, V, Vp, inplace):
    logits, targets = inputs(N, V, Vp)
    dloss = 1.0 / N
    ref_losses, ref_dlogits = reference(logits, targets, V, dloss)
    losses = poison(N)
    dlogits = logits if inplace else poison(N, Vp)
    call("crossentropy_forward_backward", losses, dlogits, logits, targets, dloss, N, V, Vp)
    # Sums of up to 50k exps in float32 and a log: 1e-5 relative to the largest loss/gradient.
    err = rel_err(losses, ref_losses)
    assert err < 1e-5, f"crossentropy loss N={N} V={V} Vp={Vp} inplace={inplace}: {err:.2e}"
    err = rel_err(dlogits[:, :V], ref_dlogits)
    assert err < 1e-5, f"crossentropy dlogits N={N} V={V} Vp={Vp} inplace={inplace}: {err:.2e}"
    assert np.all(dlogits[:, V:] == 0.0), f"crossentropy padding not zeroed N={N} V={V} Vp={Vp}"


@pytest.mark.parametrize("N,V,Vp", SHAPES[:4])
def test_crossentropy_loss_only(N, V, Vp):
    logits, targets = inputs(N, V, Vp)
    before = logits.copy()
    losses = poison(N)
    call("crossentropy_forward_backward", losses, None, logits, targets, 1.0, N, V, Vp)
    ref_losses, _ = reference(logits, targets, V, 1.0)
    err = rel_err(losses, ref_losses)
    assert err < 1e-5, f"crossentropy loss-only N={N} V={V} Vp={Vp}: {err:.2e}"
    assert np.array_equal(logits, before, equal_nan=True), "loss-only call wrote into logits"
