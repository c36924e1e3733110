"""PyTorch reference GPT-2 built from an llm.c / attnlab checkpoint file (the test oracle).

Written independently of the C code from the GPT-2 definition (pre-LayerNorm blocks, learned
positions, causal softmax attention, tanh-GELU MLP, final LayerNorm, LM head tied to wte), in
float64 by default, plus attnlab's mixers from docs/MODEL.md: sigmoid attention (section 5),
the G1 output gate (7), mLSTM (11, via ref_mlstm), ALiBi (6), RoPE (8), QK-norm (9), hybrid norm
and LayerScale (10), and the block's options (15): RMSNorm, no linear biases, an untied LM head,
the erf GELU, SwiGLU and the MLP width; StreamingLLM's cache of first and last tokens (StreamCache,
stream_logits; docs/STREAMING.md). Also reads and writes the checkpoint format (version 3 fp32, 5 bf16; attnlab's
mixer settings in header slots 16.., docs/FORMATS.md) so tests can hand the C code a model made here.
"""
import math
import struct

import numpy as np
import torch
import torch.nn.functional as F

import ref_mlstm

MAGIC, V_FP32, V_BF16 = 20240326, 3, 5
ATTNLAB_MARKER = 0x4C4E5441
MIXERS, GATES, IGATES = ["softmax", "sigmoid", "mlstm"], ["none", "head", "elem"], ["exp", "sig"]
SINKS = ["none", "k", "kv", "logit", "one"]
# the mixer and block settings and their llm.c GPT-2 defaults; cfg dicts may leave them out. hidden=None:
# the default MLP width, 4C (gelu) or 8C/3 rounded up to a multiple of 64 (swiglu)
MIXER_DEFAULTS = dict(mixer="softmax", bias=0.0, norm=0, gate="none", rope=0, qknorm=0, hybrid=0, layerscale=0,
                      igate="exp", alibi=0, chunk=64, sink="none", bos=0, ln="layer", linbias=1, tie=1, gelu="tanh",
                      mlp="gelu", hidden=None)
# header slot of each setting (after the marker in 16 and the version in 17); choices stored as indices
# (bos as its index too: 0, 1, 2 = window)
SLOTS = dict(mixer=18, bias=19, norm=20, gate=21, rope=22, qknorm=23, hybrid=24, layerscale=25, igate=26, chunk=27,
             alibi=28, sink=29, bos=30, ln=31, linbias=32, tie=33, gelu=34, mlp=35, hidden=36)
CHOICES = dict(mixer=MIXERS, gate=GATES, igate=IGATES, sink=SINKS, ln=["layer", "rms"], gelu=["tanh", "erf"],
               mlp=["gelu", "swiglu"])
COMPLEMENTED = ("linbias", "tie")   # stored as 1 - value, so that 0 is GPT-2's 1


def default_hidden(cfg):
    C = cfg["C"]
    return -(-8 * C // 3 // 64) * 64 if cfg.get("mlp", "gelu") == "swiglu" else 4 * C


def full_config(cfg):
    full = {**MIXER_DEFAULTS, **cfg}
    if not full["hidden"] and "C" in full:   # None, or 0 from a header: the default
        full["hidden"] = default_hidden(full)
    return full


def is_gpt2_setting(cfg, key):
    """Whether setting key of the (full) config is at GPT-2's value (hidden: 4C)."""
    if key == "hidden":
        return cfg["mlp"] == "gelu" and cfg["hidden"] == 4 * cfg["C"]
    return cfg[key] == MIXER_DEFAULTS[key]


def tensor_shapes(cfg):
    """The tensors in checkpoint order with their shapes: llm.c's 16, then the mixer's extras
    (only those the config uses)."""
    cfg = full_config(cfg)
    L, C, Vp, T, H = cfg["L"], cfg["C"], cfg["Vp"], cfg["maxT"], cfg["H"]
    hs, G = C // H, {"none": 0, "head": H, "elem": C}[cfg["gate"]]
    hidden = cfg["hidden"]
    F = 2 * hidden if cfg["mlp"] == "swiglu" else hidden   # fcw stacks W_gate over W_up for SwiGLU
    shapes = [
        ("wte", (Vp, C)), ("wpe", (0 if cfg["rope"] or cfg["alibi"] else T, C)), ("ln1w", (L, C)), ("ln1b", (L, C)),
        ("qkvw", (L, 3 * C, C)), ("qkvb", (L, 3 * C)), ("attprojw", (L, C, C)), ("attprojb", (L, C)),
        ("ln2w", (L, C)), ("ln2b", (L, C)), ("fcw", (L, F, C)), ("fcb", (L, F)),
        ("fcprojw", (L, C, hidden)), ("fcprojb", (L, C)), ("lnfw", (C,)), ("lnfb", (C,)),
        ("gatew", (L, G, C)), ("gateb", (L, G)),
        ("qnormw", (L, hs)), ("qnormb", (L, hs)), ("knormw", (L, hs)), ("knormb", (L, hs)),
        ("hybrid_normw", (L, C)), ("hybrid_normb", (L, C)), ("ls_mixer", (L, C)), ("ls_mlp", (L, C)),
        ("mlstm_gatew", (L, 2 * H, C)), ("mlstm_gateb", (L, 2 * H)), ("mlstm_normw", (L, C)),
        ("sink_key", (L, H, hs)), ("sink_value", (L, H, hs)), ("sink_logit", (L, H)), ("lm_head", (Vp, C)),
    ]
    layer_norm, linbias = cfg["ln"] == "layer", bool(cfg["linbias"])
    used = {"qnormw": cfg["qknorm"], "qnormb": cfg["qknorm"], "knormw": cfg["qknorm"], "knormb": cfg["qknorm"],
            "hybrid_normw": cfg["hybrid"], "hybrid_normb": cfg["hybrid"], "ls_mixer": cfg["layerscale"], "ls_mlp": cfg["layerscale"],
            "mlstm_gatew": cfg["mixer"] == "mlstm", "mlstm_gateb": cfg["mixer"] == "mlstm", "mlstm_normw": cfg["mixer"] == "mlstm",
            "gatew": G > 0, "gateb": G > 0, "wpe": not (cfg["rope"] or cfg["alibi"]),
            "sink_key": cfg["sink"] in ("k", "kv"), "sink_value": cfg["sink"] == "kv", "sink_logit": cfg["sink"] == "logit",
            "ln1b": layer_norm, "ln2b": layer_norm, "lnfb": layer_norm, "qkvb": linbias, "attprojb": linbias,
            "fcb": linbias, "fcprojb": linbias, "lm_head": not cfg["tie"]}
    return [(n, shape) for n, shape in shapes if used.get(n, True)]


DECAYED = {"wte", "wpe", "qkvw", "attprojw", "fcw", "fcprojw", "gatew", "mlstm_gatew", "sink_key", "sink_value",
           "lm_head"}


def _mixer_header(cfg):
    """Header slots 16..255: empty for llm.c's GPT-2 (every setting at its default), else the marker,
    version 1 and each setting in its slot (the bias as float32 bits; linbias and tie as 1 - value;
    hidden as 0 when it is the default width)."""
    cfg = full_config(cfg)
    slots = np.zeros(256, dtype=np.int32)
    if all(is_gpt2_setting(cfg, k) for k in SLOTS):
        return slots[16:]
    slots[16:18] = [ATTNLAB_MARKER, 1]
    for key, slot in SLOTS.items():
        value = cfg[key]
        if key == "bias":
            slots[slot] = np.array([value], dtype=np.float32).view(np.int32)[0]
        elif key in COMPLEMENTED:
            slots[slot] = 1 - value
        elif key == "hidden":
            slots[slot] = 0 if value == default_hidden(cfg) else value
        else:
            slots[slot] = CHOICES[key].index(value) if key in CHOICES else value
    return slots[16:]


def _read_mixer_header(h):
    if h[16] != ATTNLAB_MARKER:
        return {}
    cfg = {}
    for key, slot in SLOTS.items():
        if key == "bias":
            cfg[key] = float(np.array([h[slot]], dtype=np.int32).view(np.float32)[0])
        elif key in COMPLEMENTED:
            cfg[key] = 1 - int(h[slot])
        else:   # hidden 0 and chunk 0 (files from before them): the default, as full_config gives it
            cfg[key] = CHOICES[key][h[slot]] if key in CHOICES else int(h[slot])
    if cfg["chunk"] == 0:
        cfg["chunk"] = MIXER_DEFAULTS["chunk"]
    return cfg


def read_checkpoint(path):
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(1024), dtype=np.int32)
        assert header[0] == MAGIC, f"{path}: bad magic {header[0]}"
        version = int(header[1])
        cfg = dict(maxT=int(header[2]), V=int(header[3]), L=int(header[4]), H=int(header[5]),
                   C=int(header[6]), Vp=int(header[7]), **_read_mixer_header(header))
        if "hidden" in cfg and not cfg["hidden"]:
            cfg["hidden"] = default_hidden(cfg)
        raw = f.read()
    if version == V_FP32:
        flat = np.frombuffer(raw, dtype=np.float32).astype(np.float64)
    elif version == V_BF16:
        bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
        flat = bits.view(np.float32).astype(np.float64)
    else:
        raise ValueError(f"{path}: version {version}")
    params, off = {}, 0
    for name, shape in tensor_shapes(cfg):
        n = int(np.prod(shape))
        params[name] = torch.from_numpy(flat[off:off + n].reshape(shape).copy())
        off += n
    assert off == flat.size, f"{path}: {flat.size} values, expected {off}"
    return cfg, params, header


def write_checkpoint(path, cfg, params, version=V_FP32):
    header = np.zeros(256, dtype=np.int32)
    header[:8] = [MAGIC, version, cfg["maxT"], cfg["V"], cfg["L"], cfg["H"], cfg["C"], cfg["Vp"]]
    header[16:] = _mixer_header(cfg)
    flat = np.concatenate([params[n].detach().numpy().astype(np.float32).ravel() for n, _ in tensor_shapes(cfg)])
    if version == V_BF16:  # round to nearest even
        bits = flat.view(np.uint32).astype(np.uint64)
        bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
        payload = bits.tobytes()
    else:
        payload = flat.tobytes()
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(payload)


def random_params(cfg, seed=0, scale=0.1):
    """Random parameters with every tensor non-trivial (LayerNorm weights around 1, non-zero biases)."""
    g = torch.Generator().manual_seed(seed)
    params = {}
    for name, shape in tensor_shapes(cfg):
        t = torch.randn(shape, generator=g, dtype=torch.float64) * scale
        if name in ("ln1w", "ln2w", "lnfw", "qnormw", "knormw", "hybrid_normw", "mlstm_normw", "ls_mixer", "ls_mlp"):
            t = 1.0 + t
        params[name] = t
    return params


def rope(x, pos0=0):
    """Rotary embedding, rotate-half convention, base 10000, on x (B,H,T,hs)."""
    hs, T = x.shape[-1], x.shape[-2]
    freq = 10000.0 ** (-torch.arange(0, hs // 2, dtype=torch.float64) * 2 / hs)
    angle = torch.arange(pos0, pos0 + T, dtype=torch.float64)[:, None] * freq[None, :]
    cos, sin = torch.cat([angle.cos()] * 2, -1).to(x.dtype), torch.cat([angle.sin()] * 2, -1).to(x.dtype)
    x1, x2 = x[..., :hs // 2], x[..., hs // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def rms_norm(x, w, eps=1e-5):
    """RMSNorm over the last dim: x / sqrt(mean(x^2) + eps) * w (no centering, no bias)."""
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


class StreamCache:
    """StreamingLLM's KV cache (Xiao et al. 2024; docs/STREAMING.md): per layer the keys (after QK-norm,
    before RoPE) and values of the first `sinks` tokens fed and of the last `window`."""

    def __init__(self, sinks, window):
        self.sinks, self.window, self.k, self.v = sinks, window, {}, {}

    def add(self, l, k, v):
        """Appends layer l's new keys and values (B,H,T,hs); evicts the oldest beyond the window; returns
        the cached keys and values in order (first tokens, then the window)."""
        k = torch.cat([self.k[l], k], 2) if l in self.k else k
        v = torch.cat([self.v[l], v], 2) if l in self.v else v
        n = k.shape[2]
        if n > self.sinks + self.window:
            keep = list(range(self.sinks)) + list(range(n - self.window, n))
            k, v = k[:, :, keep], v[:, :, keep]
        self.k[l], self.v[l] = k, v
        return k, v


class GPT2(torch.nn.Module):
    def __init__(self, cfg, params, dtype=torch.float64):
        super().__init__()
        self.cfg = full_config(cfg)
        self.p = torch.nn.ParameterDict({k: torch.nn.Parameter(v.to(dtype).clone()) for k, v in params.items()})
        # when a dict, the forward records per layer what the sink analysis reads (lists by layer):
        # "weights" (B,H,T,T), "slot" (B,H,T) or None, "residual" (B,T,C), "gates" (B,T,G) or None
        self.record = None
        # when a StreamCache, the attention of each forward (of the next tokens) reads and extends it:
        # the queries are the cache's last positions, RoPE and ALiBi use positions within the cache
        self.stream = None

    def _record(self, key, value):
        if self.record is not None:
            self.record.setdefault(key, []).append(None if value is None else value.detach())

    def linear(self, x, name, l):
        """x W^T + b of layer l's linear layer name (qkv, attproj, fc, fcproj); no b with linbias=0."""
        y = x @ self.p[name + "w"][l].T
        return y + self.p[name + "b"][l] if self.cfg["linbias"] else y

    def block_norm(self, x, name, l=None):
        """ln1, ln2 (layer l) or lnf: LayerNorm, or RMSNorm with ln=rms."""
        w = self.p[name + "w"] if l is None else self.p[name + "w"][l]
        if self.cfg["ln"] == "rms":
            return rms_norm(x, w)
        b = self.p[name + "b"] if l is None else self.p[name + "b"][l]
        return F.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5)

    def mlp(self, h, l):
        """The MLP on the normed input h: GELU (tanh or erf) of the fc layer, or SwiGLU of its two
        halves [gate | up], then the projection."""
        u = self.linear(h, "fc", l)
        if self.cfg["mlp"] == "swiglu":
            gate, up = u.split(self.cfg["hidden"], dim=-1)
            u = F.silu(gate) * up
        else:
            u = F.gelu(u, approximate="tanh" if self.cfg["gelu"] == "tanh" else "none")
        return self.linear(u, "fcproj", l)

    def attention(self, h, l):
        """softmax / sigmoid attention of one layer on the normed input h (B,T,C) -> (B,H,T,hs)."""
        cfg, p = self.cfg, self.p
        B, T, C = h.shape
        H, hs = cfg["H"], C // cfg["H"]
        qkv = self.linear(h, "qkv", l)
        q, k, v = (t.view(B, T, H, hs).transpose(1, 2) for t in qkv.split(C, dim=-1))
        if cfg["qknorm"]:
            q = F.layer_norm(q, (hs,), p["qnormw"][l], p["qnormb"][l], eps=1e-5)
            k = F.layer_norm(k, (hs,), p["knormw"][l], p["knormb"][l], eps=1e-5)
        if self.stream is not None:
            k, v = self.stream.add(l, k, v)
        Tk = k.shape[2]   # the queries are positions Tk-T .. Tk-1
        if cfg["rope"]:
            q, k = rope(q, Tk - T), rope(k)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
        qpos, kpos = torch.arange(Tk - T, Tk, dtype=s.dtype), torch.arange(Tk, dtype=s.dtype)
        if cfg["alibi"]:   # -slope_h (i - j), slope_h = 2^(-8 (h+1) / H)
            slopes = torch.tensor([2.0 ** (-8.0 * (i + 1) / H) for i in range(H)], dtype=s.dtype)
            s = s - slopes[:, None, None] * (qpos[:, None] - kpos[None, :])
        mask = kpos[None, :] <= qpos[:, None]
        if cfg["mixer"] == "softmax" and cfg["sink"] != "none":   # softmax over [slot; keys]
            if cfg["sink"] in ("k", "kv"):
                z = (q * p["sink_key"][l][None, :, None, :]).sum(-1) / math.sqrt(hs)
            else:
                z = (p["sink_logit"][l] if cfg["sink"] == "logit" else torch.zeros(H, dtype=s.dtype))[None, :, None]
                z = z.expand(B, H, T)
            att = torch.cat([z[..., None], s.masked_fill(~mask, float("-inf"))], -1).softmax(dim=-1)
            self._record("weights", att[..., 1:])
            self._record("slot", att[..., 0])
            y = att[..., 1:] @ v
            return y + att[..., :1] * p["sink_value"][l][None, :, None, :] if cfg["sink"] == "kv" else y
        if cfg["mixer"] == "softmax":
            att = s.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        else:  # masked before the sigmoid: masked weights are exactly 0
            att = torch.sigmoid(s.masked_fill(~mask, float("-inf")) + cfg["bias"])
            if cfg["norm"]:
                att = att / (att.sum(-1, keepdim=True) + 1e-8)
        self._record("weights", att)
        self._record("slot", None)
        return att @ v

    def mlstm(self, h, l):
        cfg, p = self.cfg, self.p
        H = cfg["H"]
        qkv = self.linear(h, "qkv", l)
        gates = h @ p["mlstm_gatew"][l].T + p["mlstm_gateb"][l]
        cell = ref_mlstm.mlstm_cell(qkv, gates, H, sig_igate=cfg["igate"] == "sig")
        if self.record is not None:
            self._record("weights", ref_mlstm.gated_score_magnitude(qkv, gates, H, cfg["igate"] == "sig"))
            self._record("slot", None)
        y = ref_mlstm.multihead_layernorm(cell, p["mlstm_normw"][l], H)
        B, T, C = y.shape
        return y.view(B, T, H, C // H).transpose(1, 2)

    def forward(self, idx, targets=None, pos=None):
        """Logits (B,T,Vp) and the mean loss; pos: the learned positions' rows (default 0..T-1)."""
        cfg, p = self.cfg, self.p
        B, T = idx.shape
        C, H, L, V = cfg["C"], cfg["H"], cfg["L"], cfg["V"]
        pos = torch.arange(T) if pos is None else pos
        x = p["wte"][idx] + (0 if cfg["rope"] or cfg["alibi"] else p["wpe"][pos])
        for l in range(L):
            h = self.block_norm(x, "ln1", l)
            y = self.mlstm(h, l) if cfg["mixer"] == "mlstm" else self.attention(h, l)   # (B,H,T,hs)
            if cfg["gate"] != "none":   # G1: y * sigmoid(h W_g + b_g), headwise or elementwise
                g = torch.sigmoid(h @ p["gatew"][l].T + p["gateb"][l])
                self._record("gates", g)
                g = g.transpose(1, 2)[..., None] if cfg["gate"] == "head" else g.view(B, T, H, -1).transpose(1, 2)
                y = y * g
            y = y.transpose(1, 2).reshape(B, T, C)
            a = self.linear(y, "attproj", l)
            if cfg["hybrid"]:
                a = F.layer_norm(a, (C,), p["hybrid_normw"][l], p["hybrid_normb"][l], eps=1e-5)
            x = x + (a * p["ls_mixer"][l] if cfg["layerscale"] else a)
            m = self.mlp(self.block_norm(x, "ln2", l), l)
            x = x + (m * p["ls_mlp"][l] if cfg["layerscale"] else m)
            self._record("residual", x)
        x = self.block_norm(x, "lnf")
        logits = x @ (p["wte"] if cfg["tie"] else p["lm_head"]).T  # (B, T, Vp); padded columns not in the softmax
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits[..., :V].reshape(-1, V), targets.reshape(-1))
        return logits, loss


def stream_logits(model, tokens, sinks, window):
    """The logits (N, Vp) of StreamingLLM's decoding of tokens (N,) one at a time (docs/STREAMING.md):
    attention models through a StreamCache of sinks + window; mLSTM through its full forward (the
    recurrent state equals it), its learned positions past maxT staying at the last one."""
    idx = torch.as_tensor(tokens).long()[None]
    if model.cfg["mixer"] == "mlstm":
        pos = torch.arange(idx.shape[1]).clamp(max=model.cfg["maxT"] - 1)
        return model(idx, pos=pos)[0][0]
    model.stream = StreamCache(sinks, window)
    try:
        return torch.cat([model(idx[:, t:t + 1])[0][0] for t in range(idx.shape[1])])
    finally:
        model.stream = None


def adamw(model, lr, weight_decay, betas=(0.9, 0.95), eps=1e-8, decay_all=False):
    """torch.optim.AdamW with weight decay on the 2-D tensors only (llm.c's grouping), or on every
    parameter with decay_all (train_gpt2 -ca 1)."""
    decay = [p for n, p in model.p.items() if decay_all or n in DECAYED]
    rest = [p for n, p in model.p.items() if not (decay_all or n in DECAYED)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=lr, betas=betas, eps=eps)


def clip_grad_norm(model, max_norm):
    """Global-norm clipping as llm.c: scale = max_norm / norm when norm > max_norm. Returns the norm."""
    norm = math.sqrt(sum(float((p.grad ** 2).sum()) for p in model.p.values()))
    if max_norm > 0 and norm > max_norm:
        for p in model.p.values():
            p.grad.mul_(max_norm / norm)
    return norm
