# The attention-sink metric (model/sink_metric.c) against a Python reference written from the paper's
# definition (Gu et al., arXiv 2410.10781, docs/MODEL.md section 13) on stored attention tensors:
# normalized weights, the proxy |w| / (sum |w| + 1e-8) of unnormalized ones (the paper's code), the
# extra slot; and against hand-built patterns with known answers.
import ctypes

import numpy as np
import pytest
from clib import LIB

LIB.capi_sink_report_new.restype = ctypes.c_void_p
LIB.capi_sink_analysis.restype = ctypes.c_void_p


def ptr(a):
    return ctypes.c_void_p(a.ctypes.data) if a is not None else None


class Report:
    """A C SinkReport fed with weights[seq][l][h] (T,T), slots[seq][l][h] (T) or None, residuals
    [seq][l] (T,C), gates [seq][l] (n)."""

    def __init__(self, weights, eps, k, slots=None, residuals=None, gates=None):
        S, L, NH, T, _ = weights.shape
        self.shape = (L, NH, T)
        self.h = ctypes.c_void_p(LIB.capi_sink_report_new(L, NH, T, k, ctypes.c_float(eps), int(slots is not None),
                                                          int(gates is not None)))
        for s in range(S):
            for l in range(L):
                for h in range(NH):
                    A = np.ascontiguousarray(weights[s, l, h], dtype=np.float32)
                    slot = None if slots is None else np.ascontiguousarray(slots[s, l, h], dtype=np.float32)
                    LIB.capi_sink_add_head(self.h, l, h, ptr(A), ptr(slot))
                if residuals is not None:
                    x = np.ascontiguousarray(residuals[s, l], dtype=np.float32)
                    LIB.capi_sink_add_residual(self.h, l, ptr(x), x.shape[-1])
                if gates is not None:
                    g = np.ascontiguousarray(gates[s, l], dtype=np.float32)
                    LIB.capi_sink_add_gates(self.h, l, ptr(g), ctypes.c_long(g.size))
            LIB.capi_sink_end_sequences(self.h, 1)

    def results(self):
        L, NH, T = self.shape
        out, alpha = np.zeros(3), np.zeros((L, NH, T))
        massive, gate_mean, gate_small = np.zeros(L), np.zeros(L), np.zeros(L)
        LIB.capi_sink_results(self.h, ptr(out), ptr(alpha), ptr(massive), ptr(gate_mean), ptr(gate_small))
        return dict(sink=out[0], slot=out[1], first=out[2], alpha=alpha, massive=massive, gate_mean=gate_mean,
                    gate_small=gate_small)

    def __del__(self):
        LIB.capi_sink_free(self.h)


def reference(weights, eps, k, slots=None):
    """The paper's code: importance = (A / [T, T-1, ..., 1]).sum over queries; metric = mean over layers
    and heads of (importance > eps), per sequence, then the mean over sequences, in percent."""
    T = weights.shape[-1]
    importance = (weights / np.arange(T, 0, -1)[None, None, None, None, :]).sum(axis=-2)   # (S,L,NH,T)
    sink = ((importance[..., k] > eps).mean(axis=(1, 2)) * 100).mean()
    slot = None if slots is None else ((slots.mean(axis=-1) > eps).mean(axis=(1, 2)) * 100).mean()
    return dict(sink=sink, slot=slot, alpha=importance.mean(axis=0), first=weights[..., :, 0].mean())


def causal_softmax(logits):
    T = logits.shape[-1]
    logits = np.where(np.tril(np.ones((T, T), bool)), logits, -np.inf)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def proxy(w):
    """The paper's code: |A| / (|A|.sum(-1) + 1e-8) on the causal rows."""
    T = w.shape[-1]
    w = np.abs(np.where(np.tril(np.ones((T, T), bool)), w, 0.0))
    return w / (w.sum(-1, keepdims=True) + 1e-8)


@pytest.mark.parametrize("S,L,NH,T,k,eps", [(3, 2, 4, 16, 0, 0.3), (5, 3, 2, 64, 0, 0.3), (4, 2, 3, 9, 2, 0.5)])
def test_metric_on_stored_softmax_weights(S, L, NH, T, k, eps):
    gen = np.random.default_rng(S * 100 + T)
    logits = gen.standard_normal((S, L, NH, T, T)) * 2.0
    logits[..., k] += gen.uniform(-2, 6, (S, L, NH, 1))   # heads with and without a sink on key k
    weights = causal_softmax(logits)
    got, ref = Report(weights, eps, k).results(), reference(weights, eps, k)
    assert 0 < ref["sink"] < 100, "the case should have heads on both sides of eps"
    assert got["sink"] == pytest.approx(ref["sink"], abs=1e-9)
    # float32 weights summed in double: 1e-6
    assert np.abs(got["alpha"] - ref["alpha"]).max() < 1e-6
    assert got["first"] == pytest.approx(ref["first"], abs=1e-6)


def test_metric_on_the_proxy_of_unnormalized_weights():
    """Sigmoid weights (rows not normalized): the C proxy then the metric == the paper's proxy then
    its metric."""
    gen = np.random.default_rng(7)
    S, L, NH, T = 4, 2, 3, 32
    raw = 1 / (1 + np.exp(-(gen.standard_normal((S, L, NH, T, T)) * 2 - 1)))
    raw *= np.tril(np.ones((T, T)))
    A = np.ascontiguousarray(raw, dtype=np.float32)
    for idx in np.ndindex(S, L, NH):
        LIB.sink_proxy_normalize(ptr(A[idx]), T)
    assert np.abs(A - proxy(raw)).max() < 1e-6
    got, ref = Report(A, 0.3, 0).results(), reference(proxy(raw), 0.3, 0)
    assert got["sink"] == pytest.approx(ref["sink"], abs=1e-9)
    assert np.abs(got["alpha"] - ref["alpha"]).max() < 1e-6


def test_proxy_epsilon_keeps_a_near_dormant_head_from_being_a_sink():
    """A near-dormant sigmoid head (row sums about 1e-9) that puts 80% of its tiny weight on the first
    key: with the paper's + 1e-8 its proxy rows sum to about 0.09 and alpha_1 stays below eps (no
    sink); dividing by the sum alone would make every row sum to 1 and alpha_1 about 0.8 (a sink)."""
    S, L, NH, T = 2, 2, 2, 16
    raw = np.zeros((S, L, NH, T, T))
    for t in range(T):
        raw[..., t, 0] = 0.8e-9 if t else 1e-9
        raw[..., t, 1:t + 1] = 0.2e-9 / max(t, 1)
    raw[:, :, 1] *= 1e9                                   # the second head is awake: its proxy is the weights
    A = np.ascontiguousarray(raw, dtype=np.float32)
    for idx in np.ndindex(S, L, NH):
        LIB.sink_proxy_normalize(ptr(A[idx]), T)
    want = proxy(raw)
    assert np.abs(A - want).max() < 1e-6 * want.max(), "not |w| / (sum |w| + 1e-8)"
    sums = A[:, :, 0].sum(-1)
    assert np.abs(sums - 1e-9 / (1e-9 + 1e-8)).max() < 1e-5, "a dormant row must not be scaled up to sum 1"
    got = Report(A, 0.3, 0).results()
    alpha_1 = got["alpha"][:, :, 0]
    assert alpha_1[:, 0].max() < 0.1 and alpha_1[:, 1].min() > 0.7, f"alpha_1 {alpha_1}"
    assert got["sink"] == pytest.approx(50.0, abs=1e-9), "only the awake head may be a sink"
    without_eps = raw / raw.sum(-1, keepdims=True)      # the old proxy: every head a sink
    assert Report(without_eps, 0.3, 0).results()["sink"] == 100.0


def test_metric_on_the_slot():
    """Softmax over [slot; keys]: the keys' weights and the slot's weight per query; Sink* is the same
    threshold on the slot's mean weight."""
    gen = np.random.default_rng(3)
    S, L, NH, T = 3, 2, 4, 16
    logits = gen.standard_normal((S, L, NH, T, T + 1)) * 2
    logits[..., 0] += gen.uniform(-2, 5, (S, L, NH, 1))
    T_mask = np.concatenate([np.ones((T, 1), bool), np.tril(np.ones((T, T), bool))], axis=1)
    e = np.exp(np.where(T_mask, logits, -np.inf) - logits.max(-1, keepdims=True))
    full = e / e.sum(-1, keepdims=True)
    keys, slots = full[..., 1:], full[..., 0]
    got, ref = Report(keys, 0.3, 0, slots=slots).results(), reference(keys, 0.3, 0, slots=slots)
    assert 0 < ref["slot"] < 100
    assert got["slot"] == pytest.approx(ref["slot"], abs=1e-9)
    assert got["sink"] == pytest.approx(ref["sink"], abs=1e-9)


@pytest.mark.parametrize("T", [2, 16, 64])
def test_hand_built_patterns(T):
    S, L, NH = 2, 2, 3
    all_on_first = np.zeros((S, L, NH, T, T))
    all_on_first[..., 0] = 1.0
    r = Report(all_on_first, 0.3, 0).results()
    assert r["sink"] == 100.0 and r["first"] == 1.0 and np.allclose(r["alpha"][..., 0], 1.0)
    uniform = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]
    uniform = np.broadcast_to(uniform, (S, L, NH, T, T))
    r = Report(uniform, 0.3, 0).results()
    alpha_1 = np.sum(1.0 / np.arange(1, T + 1)) / T      # (1/T) sum_{t=1..T} 1/t
    assert np.abs(r["alpha"][..., 0] - alpha_1).max() < 1e-6
    assert r["sink"] == (100.0 if alpha_1 > 0.3 else 0.0)
    assert Report(uniform, alpha_1 - 1e-4, 0).results()["sink"] == 100.0
    assert Report(uniform, alpha_1 + 1e-4, 0).results()["sink"] == 0.0
    diagonal = np.broadcast_to(np.eye(T), (S, L, NH, T, T))   # each query on itself: alpha_k = 1/(T-k+1)
    r = Report(diagonal, 0.3, 0).results()
    assert np.abs(r["alpha"] - 1.0 / np.arange(T, 0, -1)).max() < 1e-6


def test_massive_activations_and_gates():
    S, L, T, C = 2, 3, 8, 5
    gen = np.random.default_rng(1)
    x = gen.standard_normal((S, L, T, C))
    x[:, :, 0] *= np.array([1.0, 10.0, 100.0])[None, :, None]
    norms = np.linalg.norm(x, axis=-1)
    ratio = (norms[..., 0] / norms[..., 1:].mean(-1)).mean(0)
    gates = gen.uniform(0, 0.3, (S, L, 40))
    weights = np.broadcast_to(np.eye(T), (S, L, 1, T, T))
    r = Report(weights, 0.3, 0, residuals=x, gates=gates).results()
    assert np.abs(r["massive"] - ratio).max() < 1e-5 * ratio.max()
    assert np.abs(r["gate_mean"] - gates.mean(axis=(0, 2))).max() < 1e-6
    assert np.abs(r["gate_small"] - (gates < 0.1).mean(axis=(0, 2))).max() < 1e-12
