# The mLSTM cell kernels (attention/mlstm.c) against the float64 reference scripts/ref/ref_mlstm.py
# (docs/MODEL.md sections 11.1-11.4): the reference's own consistency (stop-gradient autograd == the closed-form
# backward of docs/MODEL.md 11.2; recurrent loop == parallel form), the C parallel form against it, the C
# chunkwise form against the C parallel form over chunk sizes that do and do not divide T, the C
# recurrent step against the C parallel form and the reference's final state, and the chunk <= 0 error.
# Both variants (mLSTMexp, mLSTMsig) and four gate regimes: N(0,1) pre-activations, large ones
# (uniform in +-30, beyond the soft-cap at 15, so the stabiliser m ranges over about +-15), the
# recommended forget-gate bias linspace(3, 6) over heads, and that plus an input-gate bias of -10.
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from clib import ROOT, call, f32, poison, rel_err, t64
from timeouts import HANG_TIMEOUT

sys.path.insert(0, os.path.join(ROOT, "scripts", "ref"))
import ref_mlstm as R  # noqa: E402

VARIANTS = {"exp": 0, "sig": 1}
REGIMES = ["normal", "large", "fbias", "ibias"]

# Bounds, fp32 kernels against float64 (or against another fp32 form of the same function).
# Forward: every h_t is a ratio of two sums over at most T terms of weights <= 1 times q.k: 1e-5
# relative to max |h|. Backward: products of two such sums: 1e-4 relative to each gradient's size
# (see grad_scales for the forget gate). Both hold while the normaliser is well conditioned:
# kappa = max_t sum_s |C~_ts| / n_t <= KAPPA0. With large gate pre-activations (mLSTMexp, m up to
# 15, so the floor exp(-m) is tiny) |sum_s C~_ts| can cancel to a small n_t by chance; then the
# rounding of each term (of its log weight above all: up to 15 u absolute in i~ alone) is amplified
# by kappa, and so are the errors of h_t and of every gradient through 1/n_t. Such cases get the
# bounds times kappa / KAPPA0: above all the "large" regime of mLSTMexp (kappa up to ~1500 here) and
# the forget-bias regime (a long memory sums many terms; kappa up to ~100).
FWD_BOUND, BWD_BOUND, KAPPA0 = 1e-5, 1e-4, 10.0


def allowance(qkv, gates, NH, sig):
    """max(1, kappa / KAPPA0), kappa the normaliser's condition number above, in float64."""
    q, k, _ = R.split_heads(t64(qkv), NH)
    i_pre, f_pre = R.split_gates(t64(gates), NH)
    _, n, m = R.parallel_forward(q, k, torch.zeros_like(q), i_pre, f_pre, bool(sig))
    logD, _ = R.log_decay_matrix(*R.log_gates(i_pre, f_pre, bool(sig)))
    S = q @ k.transpose(-1, -2) / np.sqrt(q.shape[-1])
    kappa = float(((S * torch.exp(logD - m[..., None])).abs().sum(-1) / n).max())
    return max(1.0, kappa / KAPPA0)


def make_inputs(B, T, C, NH, regime, seed):
    gen = np.random.default_rng(seed)
    qkv = f32(B, T, 3 * C, gen=gen)
    i_pre, f_pre = gen.standard_normal((B, T, NH)), gen.standard_normal((B, T, NH))
    if regime == "large":
        i_pre, f_pre = gen.uniform(-30, 30, (B, T, NH)), gen.uniform(-30, 30, (B, T, NH))
    if regime in ("fbias", "ibias"):
        f_pre = f_pre + np.linspace(3.0, 6.0, NH)
    if regime == "ibias":
        i_pre = i_pre - 10.0
    gates = np.ascontiguousarray(np.concatenate([i_pre, f_pre], axis=-1), dtype=np.float32)
    dh = f32(B, T, C, gen=gen)
    return qkv, gates, dh, gen


def grad_parts(dqkv, dgates, C, NH):
    """The five gradients as views: dq, dk, dv of dqkv (B,T,3C), di, df of dgates (B,T,2NH)."""
    return {"dq": dqkv[..., :C], "dk": dqkv[..., C:2 * C], "dv": dqkv[..., 2 * C:],
            "di": dgates[..., :NH], "df": dgates[..., NH:]}


def as64(x):
    return x.detach() if isinstance(x, torch.Tensor) else t64(x)


def grad_scales(qkv, gates, ref_dqkv, ref_dgates, NH):
    """The size each gradient's error is measured against: max |reference| of each part, except for
    df. df_t = sigmoid(-f~_t) softcap'(z_t) sum_{u>=t} (q_u.dq_u - k_u.dk_u) is a reverse cumulative
    sum of differences that cancel (df_0 = 0 exactly; at T = 1 df is all zeros), so its rounding
    error scales with the same sum over |q_u.dq_u| + |k_u.dk_u|: the largest such sum is its size."""
    C = qkv.shape[-1] // 3
    ref = grad_parts(as64(ref_dqkv), as64(ref_dgates), C, NH)
    scales = {name: max(float(part.abs().max()), 1e-30) for name, part in ref.items()}
    q, k, _ = R.split_heads(t64(qkv), NH)
    dq, dk, _ = R.split_heads(as64(ref_dqkv), NH)
    terms = (q * dq).sum(-1).abs() + (k * dk).sum(-1).abs()
    _, f_pre = R.split_gates(t64(gates), NH)
    factor = torch.sigmoid(-R.soft_cap(f_pre)) * R.soft_cap_grad(f_pre)
    scales["df"] = max(scales["df"], float((factor * terms.flip(-1).cumsum(-1).flip(-1)).max()))
    return scales


def start_buffers(scales, shape_qkv, shape_gates, C, NH, gen):
    """Random starting values for the accumulated gradients, each part of its gradient's size, so that
    the += is tested and the rounding of the sum stays below the bound."""
    dqkv0, dgates0 = f32(*shape_qkv, gen=gen), f32(*shape_gates, gen=gen)
    for name, part in grad_parts(dqkv0, dgates0, C, NH).items():
        part *= np.float32(scales[name])
    return dqkv0, dgates0


def check_grads(dqkv, dgates, dqkv0, dgates0, ref_dqkv, ref_dgates, scales, bound, case):
    """max |got - (start + reference)| / scale < bound for each of dq, dk, dv, di, df."""
    C, NH = dqkv.shape[-1] // 3, dgates.shape[-1] // 2
    got = grad_parts(dqkv, dgates, C, NH)
    start = grad_parts(dqkv0, dgates0, C, NH)
    ref = grad_parts(ref_dqkv, ref_dgates, C, NH)
    for name in got:
        g = t64(got[name])
        err = float((g - t64(start[name]) - as64(ref[name])).abs().max()) / scales[name]
        err = err if torch.isfinite(g).all() else float("inf")
        assert err < bound, f"{case} {name}: {err:.2e} (bound {bound:.1e})"


def c_forward(qkv, gates, NH, sig, chunk=None):
    B, T, C = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
    h, n, m = poison(B, T, C), poison(B, NH, T), poison(B, NH, T)
    if chunk is None:
        call("mlstm_parallel_forward", h, n, m, qkv, gates, B, T, C, NH, sig)
    else:
        call("mlstm_chunkwise_forward", h, n, m, qkv, gates, B, T, C, NH, chunk, sig)
    return h, n, m


def c_backward(dqkv, dgates, dh, qkv, gates, n, m, NH, sig, chunk=None):
    B, T, C = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
    if chunk is None:
        call("mlstm_parallel_backward", dqkv, dgates, dh, qkv, gates, n, m, B, T, C, NH, sig)
    else:
        call("mlstm_chunkwise_backward", dqkv, dgates, dh, qkv, gates, n, m, B, T, C, NH, chunk, sig)


def reference(qkv, gates, dh, NH, sig):
    """float64 h (B,T,C), n, m (B,NH,T) and, by autograd with n and m detached, dqkv, dgates."""
    qkv64, gates64 = t64(qkv, True), t64(gates, True)
    q, k, v = R.split_heads(qkv64, NH)
    i_pre, f_pre = R.split_gates(gates64, NH)
    h, n, m = R.parallel_forward(q, k, v, i_pre, f_pre, bool(sig))
    h = R.merge_heads(h)
    h.backward(t64(dh))
    return h.detach(), n.detach(), m.detach(), qkv64.grad, gates64.grad


# ---- the reference itself (float64) ----

@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("regime", REGIMES)
def test_reference_consistent(variant, regime):
    """Autograd with n, m detached == the closed-form backward of docs/MODEL.md 11.2; the recurrent loop of
    docs/MODEL.md 11.1 == the parallel form. Both in float64, so 1e-10."""
    sig = bool(VARIANTS[variant])
    B, T, C, NH = 2, 33, 24, 3
    qkv, gates, dh, _ = make_inputs(B, T, C, NH, regime, seed=7)
    q, k, v = [x.detach().requires_grad_() for x in R.split_heads(t64(qkv), NH)]
    i_pre, f_pre = [x.detach().requires_grad_() for x in R.split_gates(t64(gates), NH)]
    dh64 = R.to_heads(t64(dh), NH)
    h, _, _ = R.parallel_forward(q, k, v, i_pre, f_pre, sig)
    h.backward(dh64)
    closed = R.parallel_backward(q, k, v, i_pre, f_pre, dh64, sig)
    for name, auto, cf in zip(["dq", "dk", "dv", "di", "df"], [q, k, v, i_pre, f_pre], closed):
        err = rel_err(auto.grad, cf)
        assert err < 1e-10, f"reference closed-form backward {variant} {regime} {name}: {err:.2e}"
    h_rec, _ = R.recurrent_forward(q, k, v, i_pre, f_pre, sig)
    err = rel_err(h_rec.detach(), h)
    assert err < 1e-10, f"reference recurrent vs parallel {variant} {regime}: {err:.2e}"


# ---- the C parallel and chunkwise forms ----

def check_forward(got, ref, bound, case):
    """got, ref: (h, n_out, m_out)."""
    for name, g, r in zip(["h", "n_out", "m_out"], got, ref):
        err = rel_err(g, r)
        assert err < bound, f"{case} forward {name}: {err:.2e} (bound {bound:.1e})"


def check_backward(qkv, gates, dh, n, m, NH, sig, chunk, ref_dqkv, ref_dgates, bound, gen, case):
    """The C backward (parallel if chunk is None) from random starting gradients against start + ref."""
    C = qkv.shape[-1] // 3
    scales = grad_scales(qkv, gates, ref_dqkv, ref_dgates, NH)
    dqkv0, dgates0 = start_buffers(scales, qkv.shape, gates.shape, C, NH, gen)
    dqkv, dgates = dqkv0.copy(), dgates0.copy()
    c_backward(dqkv, dgates, dh, qkv, gates, n, m, NH, sig, chunk)
    check_grads(dqkv, dgates, dqkv0, dgates0, ref_dqkv, ref_dgates, scales, bound, f"{case} backward")


# (B, T, C, NH): hs = C/NH of 1, 3, 4, 12, 16, 32, 64; T from 1 to 64. hs a multiple of 32 (the usual
# head sizes) takes another path in attention/mlstm.c (q, k, v read in place, not copied and padded).
SHAPES = [(1, 1, 1, 1), (2, 7, 8, 2), (2, 20, 6, 2), (1, 33, 64, 4), (2, 33, 16, 1), (1, 64, 3, 3),
          (2, 64, 48, 4), (1, 40, 64, 2), (1, 24, 128, 2)]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("B,T,C,NH", SHAPES)
def test_parallel(B, T, C, NH, regime, variant):
    """The C parallel form against float64."""
    sig = VARIANTS[variant]
    qkv, gates, dh, gen = make_inputs(B, T, C, NH, regime, seed=B * 1000 + T * 10 + NH)
    allow = allowance(qkv, gates, NH, sig)
    case = f"mlstm parallel {variant} {regime} B={B} T={T} C={C} NH={NH}"
    h, n, m = c_forward(qkv, gates, NH, sig)
    ref_h, ref_n, ref_m, ref_dqkv, ref_dgates = reference(qkv, gates, dh, NH, sig)
    check_forward((h, n, m), (ref_h, ref_n, ref_m), FWD_BOUND * allow, case)
    check_backward(qkv, gates, dh, n, m, NH, sig, None, ref_dqkv, ref_dgates, BWD_BOUND * allow, gen, case)


# One (B, C, NH) per T: hs 2, 4, 16, 4 (hs 1, 3, 12 are covered by the parallel tests).
CHUNK_SHAPES = {1: (1, 4, 2), 7: (2, 12, 3), 33: (2, 32, 2), 64: (1, 16, 4)}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("chunk", [1, 3, 4, 16, 64])
@pytest.mark.parametrize("T", [1, 7, 33, 64])
def test_chunkwise(T, chunk, regime, variant):
    """The C chunkwise form against the C parallel form: the same function summed in another order,
    fp32 both, so the same bounds as against float64."""
    sig = VARIANTS[variant]
    B, C, NH = CHUNK_SHAPES[T]
    qkv, gates, dh, gen = make_inputs(B, T, C, NH, regime, seed=T * 100 + chunk)
    allow = allowance(qkv, gates, NH, sig)
    case = f"mlstm chunkwise {variant} {regime} chunk={chunk} B={B} T={T} C={C} NH={NH}"
    par = c_forward(qkv, gates, NH, sig)
    h, n, m = c_forward(qkv, gates, NH, sig, chunk)
    check_forward((h, n, m), par, FWD_BOUND * allow, case)
    dqkv_par, dgates_par = np.zeros_like(qkv), np.zeros_like(gates)
    c_backward(dqkv_par, dgates_par, dh, qkv, gates, par[1], par[2], NH, sig)
    check_backward(qkv, gates, dh, n, m, NH, sig, chunk, dqkv_par, dgates_par, BWD_BOUND * allow, gen, case)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("B,T,C,NH,chunk", [(2, 100, 32, 4, 16), (1, 100, 64, 2, 32), (1, 70, 128, 2, 64)])
def test_chunkwise_against_reference(B, T, C, NH, chunk, regime, variant):
    """Longer cases straight against float64: T = 100 in chunks of 16 or 32 (the last one 4 long), T = 70
    in chunks of 64; hs 8, 32, 64."""
    sig = VARIANTS[variant]
    qkv, gates, dh, gen = make_inputs(B, T, C, NH, regime, seed=99)
    allow = allowance(qkv, gates, NH, sig)
    case = f"mlstm chunkwise vs float64 {variant} {regime} chunk={chunk} B={B} T={T} C={C} NH={NH}"
    h, n, m = c_forward(qkv, gates, NH, sig, chunk)
    ref_h, ref_n, ref_m, ref_dqkv, ref_dgates = reference(qkv, gates, dh, NH, sig)
    check_forward((h, n, m), (ref_h, ref_n, ref_m), FWD_BOUND * allow, case)
    check_backward(qkv, gates, dh, n, m, NH, sig, chunk, ref_dqkv, ref_dgates, BWD_BOUND * allow, gen, case)


# ---- the C recurrent step ----

@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("B,T,C,NH", [(1, 1, 1, 1), (2, 7, 8, 2), (2, 33, 64, 4), (1, 64, 12, 3), (1, 9, 64, 2)])
def test_recurrent(B, T, C, NH, regime, variant):
    """T steps from the zero state == the C parallel form (fp32 both: FWD_BOUND); the final state
    (C, n, m) == the float64 recurrent loop's (FWD_BOUND relative to its largest entry)."""
    sig = VARIANTS[variant]
    hs = C // NH
    qkv, gates, _, _ = make_inputs(B, T, C, NH, regime, seed=B * 100 + T)
    bound = FWD_BOUND * allowance(qkv, gates, NH, sig)
    case = f"mlstm recurrent {variant} {regime} B={B} T={T} C={C} NH={NH}"
    h_par, _, _ = c_forward(qkv, gates, NH, sig)
    c_state, n_state, m_state = np.zeros((B, NH, hs, hs), np.float32), np.zeros((B, NH, hs), np.float32), \
        np.zeros((B, NH), np.float32)
    h = poison(B, T, C)
    for t in range(T):
        h_t = poison(B, C)
        call("mlstm_recurrent_step", h_t, c_state, n_state, m_state, np.ascontiguousarray(qkv[:, t]),
             np.ascontiguousarray(gates[:, t]), B, C, NH, sig)
        h[:, t] = h_t
    err = rel_err(h, h_par)
    assert err < bound, f"{case} h: {err:.2e} (bound {bound:.1e})"

    q, k, v = R.split_heads(t64(qkv), NH)
    i_pre, f_pre = R.split_gates(t64(gates), NH)
    _, (ref_c, ref_n, ref_m) = R.recurrent_forward(q, k, v, i_pre, f_pre, bool(sig))
    for name, got, ref in [("C", c_state, ref_c), ("n", n_state, ref_n), ("m", m_state, ref_m)]:
        err = rel_err(got, ref)
        assert err < bound, f"{case} state {name}: {err:.2e} (bound {bound:.1e})"


# ---- errors ----

FAIL_SCRIPT = """
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
chunk = int(sys.argv[3])
if sys.argv[2] == "mlstm_chunkwise_forward":
    lib.mlstm_chunkwise_forward(None, None, None, None, None, 1, 4, 8, 2, chunk, 0)
else:
    lib.mlstm_chunkwise_backward(None, None, None, None, None, None, None, 1, 4, 8, 2, chunk, 0)
print("returned")
"""


@pytest.mark.parametrize("fn", ["mlstm_chunkwise_forward", "mlstm_chunkwise_backward"])
@pytest.mark.parametrize("chunk", [0, -3])
def test_chunk_not_positive(fn, chunk):
    """chunk <= 0 calls fail(): exit status 1 and one line on stderr, before touching any buffer."""
    lib = os.path.join(ROOT, "build", "libattnlab.so")
    r = subprocess.run([sys.executable, "-c", FAIL_SCRIPT, lib, fn, str(chunk)], capture_output=True, text=True,
                       timeout=HANG_TIMEOUT)
    assert r.returncode == 1, f"{fn} chunk={chunk}: exit status {r.returncode}, stderr {r.stderr!r}"
    assert "returned" not in r.stdout
    assert r.stderr.splitlines() == [
        f"error: {fn}: chunk size {chunk} is not positive; use a chunk size >= 1 (64 is usual)"], r.stderr
