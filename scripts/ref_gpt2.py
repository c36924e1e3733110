"""PyTorch reference GPT-2 built from an llm.c / attnlab checkpoint file (the test oracle).

Written independently of the C code from the GPT-2 definition (pre-LayerNorm blocks, learned
positions, causal softmax attention, tanh-GELU MLP, final LayerNorm, LM head tied to wte), in
float64 by default. Also reads and writes the checkpoint format (version 3 fp32, 5 bf16) so
tests can hand the C code a model made here.
"""
import math
import struct

import numpy as np
import torch
import torch.nn.functional as F

MAGIC, V_FP32, V_BF16 = 20240326, 3, 5


def tensor_shapes(cfg):
    """The 16 tensors in llm.c's order, with their shapes."""
    L, C, Vp, T = cfg["L"], cfg["C"], cfg["Vp"], cfg["maxT"]
    return [
        ("wte", (Vp, C)), ("wpe", (T, C)), ("ln1w", (L, C)), ("ln1b", (L, C)),
        ("qkvw", (L, 3 * C, C)), ("qkvb", (L, 3 * C)), ("attprojw", (L, C, C)), ("attprojb", (L, C)),
        ("ln2w", (L, C)), ("ln2b", (L, C)), ("fcw", (L, 4 * C, C)), ("fcb", (L, 4 * C)),
        ("fcprojw", (L, C, 4 * C)), ("fcprojb", (L, C)), ("lnfw", (C,)), ("lnfb", (C,)),
    ]


DECAYED = {"wte", "wpe", "qkvw", "attprojw", "fcw", "fcprojw"}


def read_checkpoint(path):
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(1024), dtype=np.int32)
        assert header[0] == MAGIC, f"{path}: bad magic {header[0]}"
        version = int(header[1])
        cfg = dict(maxT=int(header[2]), V=int(header[3]), L=int(header[4]), H=int(header[5]),
                   C=int(header[6]), Vp=int(header[7]))
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
        if name in ("ln1w", "ln2w", "lnfw"):
            t = 1.0 + t
        params[name] = t
    return params


class GPT2(torch.nn.Module):
    def __init__(self, cfg, params, dtype=torch.float64):
        super().__init__()
        self.cfg = cfg
        self.p = torch.nn.ParameterDict({k: torch.nn.Parameter(v.to(dtype).clone()) for k, v in params.items()})

    def forward(self, idx, targets=None):
        cfg, p = self.cfg, self.p
        B, T = idx.shape
        C, H, L, V = cfg["C"], cfg["H"], cfg["L"], cfg["V"]
        hs = C // H
        x = p["wte"][idx] + p["wpe"][:T]
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        for l in range(L):
            h = F.layer_norm(x, (C,), p["ln1w"][l], p["ln1b"][l], eps=1e-5)
            qkv = h @ p["qkvw"][l].T + p["qkvb"][l]
            q, k, v = qkv.split(C, dim=-1)
            q, k, v = (t.view(B, T, H, hs).transpose(1, 2) for t in (q, k, v))
            att = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
            att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            y = (att @ v).transpose(1, 2).reshape(B, T, C)
            x = x + y @ p["attprojw"][l].T + p["attprojb"][l]
            h = F.layer_norm(x, (C,), p["ln2w"][l], p["ln2b"][l], eps=1e-5)
            h = F.gelu(h @ p["fcw"][l].T + p["fcb"][l], approximate="tanh")
            x = x + h @ p["fcprojw"][l].T + p["fcprojb"][l]
        x = F.layer_norm(x, (C,), p["lnfw"], p["lnfb"], eps=1e-5)
        logits = x @ p["wte"].T  # (B, T, Vp); the padded columns are not part of the softmax
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits[..., :V].reshape(-1, V), targets.reshape(-1))
        return logits, loss


def adamw(model, lr, weight_decay, betas=(0.9, 0.95), eps=1e-8):
    """torch.optim.AdamW with weight decay on the 2-D tensors only (llm.c's grouping)."""
    decay = [p for n, p in model.p.items() if n in DECAYED]
    rest = [p for n, p in model.p.items() if n not in DECAYED]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=lr, betas=betas, eps=eps)


def clip_grad_norm(model, max_norm):
    """Global-norm clipping as llm.c: scale = max_norm / norm when norm > max_norm. Returns the norm."""
    norm = math.sqrt(sum(float((p.grad ** 2).sum()) for p in model.p.values()))
    if max_norm > 0 and norm > max_norm:
        for p in model.p.values():
            p.grad.mul_(max_norm / norm)
    return norm
