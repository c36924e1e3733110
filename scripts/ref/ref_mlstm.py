"""PyTorch float64 reference of the mLSTM cell and its per-head norm (docs/MODEL.md section 11).

Written from docs/MODEL.md 11.1 (recurrent), 11.2 (parallel, incl. the closed-form backward), 11.4 (mLSTMsig)
and 4.7 (gate soft-cap, MultiHeadLayerNorm), independently of the C code; the test oracle for
attention/mlstm.c and layers/headnorm.c, and a building block for a whole-model reference.

Per-head tensors: q, k, v (B,NH,T,hs); raw gate pre-activations i_pre, f_pre (B,NH,T). The kernel
applies the soft-cap 15*tanh(z/15) itself, then:
  mLSTMexp (sig_igate=False): log input gate li = i~, stabiliser m, normaliser max(|n.q|, exp(-m))
  mLSTMsig (sig_igate=True):  li = logsigmoid(i~), m fixed at 0, normaliser max(|n.q|, 1)
and log forget gate lf = logsigmoid(f~) in both. The output h is the cell output before the norm.

The initial state is C_0 = 0, n_0 = 0, m_0 = 0 (docs/MODEL.md 11.1, 11.3). In the parallel form the max state
m_t therefore also covers the initial state's log weight F_t + m_0 (a column that carries no value):
m_t = max(F_t, max_s log D_ts). This makes the parallel, chunkwise and recurrent forms the same
function, not only up to the eps*exp(m) term by which docs/MODEL.md 11.2 (m_t = max_s log D_ts) differs.

Engine layout helpers: qkv (B,T,3C) rows [q | k | v] with heads of hs = C/NH side by side in each part,
gates (B,T,2NH) rows [i of the NH heads | f of the NH heads], h (B,T,C).
"""
import math

import torch
import torch.nn.functional as F

EPS = 1e-6          # normaliser epsilon (docs/MODEL.md 11.1)
GATE_SOFT_CAP = 15.0
NORM_EPS = 1e-6     # MultiHeadLayerNorm epsilon of xLSTM-7B (docs/MODEL.md 11)


def soft_cap(z, cap=GATE_SOFT_CAP):
    return cap * torch.tanh(z / cap)


def soft_cap_grad(z, cap=GATE_SOFT_CAP):
    """d soft_cap(z) / dz = 1 - tanh^2(z/cap)."""
    return 1.0 - torch.tanh(z / cap) ** 2


def log_gates(i_pre, f_pre, sig_igate=False):
    """Log input gate li and log forget gate lf (B,NH,T) from the raw pre-activations."""
    i_t, f_t = soft_cap(i_pre), soft_cap(f_pre)
    return (F.logsigmoid(i_t) if sig_igate else i_t), F.logsigmoid(f_t)


def to_heads(x, NH):
    """x (B,T,C) -> (B,NH,T,hs)."""
    B, T, C = x.shape
    return x.reshape(B, T, NH, C // NH).transpose(1, 2)


def split_heads(qkv, NH):
    """qkv (B,T,3C) -> q, k, v (B,NH,T,hs)."""
    return [to_heads(x, NH) for x in qkv.split(qkv.shape[-1] // 3, dim=-1)]


def split_gates(gates, NH):
    """gates (B,T,2NH) -> i_pre, f_pre (B,NH,T)."""
    return gates[..., :NH].transpose(1, 2), gates[..., NH:].transpose(1, 2)


def merge_heads(h):
    """h (B,NH,T,hs) -> (B,T,C)."""
    B, NH, T, hs = h.shape
    return h.transpose(1, 2).reshape(B, T, NH * hs)


def log_decay_matrix(li, lf):
    """log D (B,NH,T,T): log D_ts = sum_{r=s+1..t} lf_r + li_s for s <= t, -inf above the diagonal;
    and F (B,NH,T) = cumsum lf, the log weight of the initial state."""
    T = li.shape[-1]
    Fc = torch.cumsum(lf, dim=-1)
    logD = Fc[..., :, None] - Fc[..., None, :] + li[..., None, :]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    return logD.masked_fill(~causal, float("-inf")), Fc


def parallel_forward(q, k, v, i_pre, f_pre, sig_igate=False, stop_grad=True, eps=EPS):
    """The quadratic form (docs/MODEL.md 11.2, 11.4). Returns h (B,NH,T,hs), n, m (B,NH,T).

    stop_grad=True detaches n and m, so autograd gives the backward of the NX-AI *_custbw references
    (no gradient through the normaliser and the stabiliser), which is what the C kernels implement;
    stop_grad=False differentiates through max/abs (the 'native_autograd' reference)."""
    li, lf = log_gates(i_pre, f_pre, sig_igate)
    logD, Fc = log_decay_matrix(li, lf)
    if sig_igate:
        m = torch.zeros_like(li)
    else:
        m = torch.maximum(Fc, logD.max(dim=-1).values)   # includes the initial state m_0 = 0
    m_used = m.detach() if stop_grad else m
    Dp = torch.exp(logD - m_used[..., None])
    S = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    Ct = S * Dp
    n = torch.maximum(Ct.sum(dim=-1).abs(), torch.exp(-m_used))
    n_used = n.detach() if stop_grad else n
    h = (Ct / (n_used + eps)[..., None]) @ v
    return h, n, m


def parallel_backward(q, k, v, i_pre, f_pre, dh, sig_igate=False, eps=EPS):
    """The closed-form backward of docs/MODEL.md 11.2 (n, m constants), then through the gate activations and
    the soft-cap. Returns dq, dk, dv (B,NH,T,hs), di_pre, df_pre (B,NH,T)."""
    with torch.no_grad():
        _, n, m = parallel_forward(q, k, v, i_pre, f_pre, sig_igate, eps=eps)
        li, lf = log_gates(i_pre, f_pre, sig_igate)
        logD, _ = log_decay_matrix(li, lf)
        Dp = torch.exp(logD - m[..., None])
        scale = 1.0 / math.sqrt(q.shape[-1])
        S = q @ k.transpose(-1, -2) * scale
        dC = (dh @ v.transpose(-1, -2)) / (n + eps)[..., None]
        dq = (dC * Dp) @ k * scale
        dk = (dC * Dp).transpose(-1, -2) @ q * scale
        dv = (S * Dp).transpose(-1, -2) @ (dh / (n + eps)[..., None])
        dli = (dC * Dp * S).sum(dim=-2)                                   # column sums
        qdq_kdk = (q * dq).sum(-1) - (k * dk).sum(-1)
        dlf = qdq_kdk.flip(-1).cumsum(-1).flip(-1)                          # reverse cumsum, inclusive
        i_t, f_t = soft_cap(i_pre), soft_cap(f_pre)
        di = dli * torch.sigmoid(-i_t) if sig_igate else dli
        df = dlf * torch.sigmoid(-f_t)
        return dq, dk, dv, di * soft_cap_grad(i_pre), df * soft_cap_grad(f_pre)


def zero_state(B, NH, hs, dtype=torch.float64):
    """(C (B,NH,hs,hs) indexed [key dim, value dim], n (B,NH,hs), m (B,NH)), all zeros."""
    return (torch.zeros(B, NH, hs, hs, dtype=dtype), torch.zeros(B, NH, hs, dtype=dtype),
            torch.zeros(B, NH, dtype=dtype))


def recurrent_step(state, q, k, v, i_pre, f_pre, sig_igate=False, eps=EPS):
    """One step of docs/MODEL.md 11.1 (11.4 for mLSTMsig). q, k, v (B,NH,hs), i_pre, f_pre (B,NH).
    Returns h (B,NH,hs) and the new state."""
    C, n, m = state
    li, lf = log_gates(i_pre, f_pre, sig_igate)
    m_new = torch.zeros_like(m) if sig_igate else torch.maximum(lf + m, li)
    i_g, f_g = torch.exp(li - m_new), torch.exp(lf + m - m_new)
    C = f_g[..., None, None] * C + i_g[..., None, None] * k[..., :, None] * v[..., None, :]
    n = f_g[..., None] * n + i_g[..., None] * k
    qs = q / math.sqrt(q.shape[-1])
    num = (C * qs[..., :, None]).sum(dim=-2)
    den = torch.maximum((n * qs).sum(-1).abs(), torch.exp(-m_new))
    return num / (den + eps)[..., None], (C, n, m_new)


def recurrent_forward(q, k, v, i_pre, f_pre, sig_igate=False, eps=EPS, state=None):
    """A plain loop of recurrent_step over T. Returns h (B,NH,T,hs) and the final state."""
    B, NH, T, hs = q.shape
    state = state if state is not None else zero_state(B, NH, hs, q.dtype)
    hs_out = []
    for t in range(T):
        h, state = recurrent_step(state, q[:, :, t], k[:, :, t], v[:, :, t], i_pre[:, :, t], f_pre[:, :, t],
                                  sig_igate, eps)
        hs_out.append(h)
    return torch.stack(hs_out, dim=2), state


def mlstm_cell(qkv, gates, NH, sig_igate=False, eps=EPS):
    """Engine layout: qkv (B,T,3C), gates (B,T,2NH) -> h (B,T,C), with the stop-gradient rule."""
    q, k, v = split_heads(qkv, NH)
    i_pre, f_pre = split_gates(gates, NH)
    h, _, _ = parallel_forward(q, k, v, i_pre, f_pre, sig_igate, stop_grad=True, eps=eps)
    return merge_heads(h)


def gated_score_magnitude(qkv, gates, NH, sig_igate=False):
    """|C~| = |S * D'| (B,NH,T,T) of the parallel form, with the row stabilizer max_s log D_ts (any
    per-row scale: the sink metric normalizes each row); zeros above the diagonal."""
    q, k, _ = split_heads(qkv, NH)
    li, lf = log_gates(*split_gates(gates, NH), sig_igate)
    logD, _ = log_decay_matrix(li, lf)
    Dp = torch.exp(logD - logD.max(dim=-1, keepdim=True).values)
    return (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) * Dp).abs()


def multihead_layernorm(x, weight, NH, eps=NORM_EPS):
    """xLSTM MultiHeadLayerNorm: LayerNorm (biased variance, no bias) over each head's hs features of
    x (..., C), times weight (C)."""
    shape = x.shape
    xh = x.reshape(*shape[:-1], NH, shape[-1] // NH)
    mean = xh.mean(dim=-1, keepdim=True)
    var = ((xh - mean) ** 2).mean(dim=-1, keepdim=True)
    return ((xh - mean) / torch.sqrt(var + eps)).reshape(shape) * weight
