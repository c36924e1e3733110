"""CPU training throughput: attnlab's ./train_gpt2 against PyTorch 2.x as a user writes it today
(a nanoGPT-style GPT-2: nn.Linear, nn.LayerNorm, F.scaled_dot_product_attention with is_causal,
tied embedding, torch.optim.AdamW), eager and torch.compile, same configs, same machine, same run.

    build/bench_venv/bin/python scripts/bench/bench_cpu.py [--steps 12] [--rounds 3] [--threads 2] [--only tiny]
        [--lib build/libattnlab.so]

(`make bench` makes the venv with scripts/bench/bench_env.sh, and passes the library of the ISA it built,
e.g. build/isa-avx2/libattnlab.so for `make bench ISA=avx2`.) Prints which CPU kernels ./train_gpt2
was built with (the library's cpu_kernel_shapes(): instruction set and register shapes), then
markdown tables of tokens/s (median over the steps after 2 warm-up steps; each contender runs once
per round, the rounds alternate between them, and the best round counts, so a slow spell of a
shared machine hits no side alone): attnlab against PyTorch eager and compiled, the ratio to the
better of the two, the fraction of the machine's FMA peak (--peak, GFLOP/s, by default the 2-core
peak of the machine docs/PERF.md measured that instruction set on; 6 FLOPs per parameter per token
plus the attention's 6·L·T·C per token for the causal half of QK^T and AV, forward and backward);
then attnlab's mixers against softmax at T = 128 and 512, and one rank of two threads against two
ranks of one thread. Random token data; the throughput does not depend on the values.
"""
import argparse
import ctypes
import os
import re
import statistics
import subprocess
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PEAK_2_CORES = {"avx512": 228.0, "avx2": 202.0}   # GFLOP/s, docs/PERF.md
CONFIGS = [  # key, name, model, B, T
    ("tiny", "tiny (L4 C128 H4, V257)", dict(L=4, C=128, H=4, maxT=128, V=257), 16, 128),
    ("124m", "GPT-2 124M (d12)", dict(L=12, C=768, H=12, maxT=1024, V=50257), 4, 64),
]


def write_shard(path, n, V, seed=0):
    header = np.zeros(256, dtype=np.int32)
    header[:3] = [20240520, 1, n]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.random.default_rng(seed).integers(0, V, n).astype(np.uint16).tobytes())


def descriptor(cfg, extra=""):
    return f"L={cfg['L']},C={cfg['C']},H={cfg['H']},T={cfg['maxT']},V={cfg['V']}{extra}"


def bench_attnlab(cfg, B, T, steps, threads, shard, extra="", ranks=1):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([os.path.join(ROOT, "train_gpt2"), "-e", descriptor(cfg, extra), "-i", shard, "-b",
                          str(B // ranks), "-t", str(T), "-x", str(steps), "-v", "0", "-s", "0", "-sh", "0", "-ng",
                          str(ranks)], capture_output=True, text=True, env=env, check=True).stdout
    rates = [float(x) for x in re.findall(r"\| (\d+) tok/s", out)]
    return statistics.median(rates[2:])


class Block(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.H = H
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.fc_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.fc_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(cfg["V"], cfg["C"]), nn.Embedding(cfg["maxT"], cfg["C"])
        self.blocks = nn.ModuleList(Block(cfg["C"], cfg["H"]) for _ in range(cfg["L"]))
        self.ln_f = nn.LayerNorm(cfg["C"])

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def bench_torch(cfg, B, T, steps, threads, compiled):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = GPT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0)
    loss_of = torch.compile(model) if compiled else model
    g = torch.Generator().manual_seed(0)
    rates = []
    for _ in range(steps + (3 if compiled else 0)):   # compiling takes the first steps
        x = torch.randint(0, cfg["V"], (B, T), generator=g)
        y = torch.randint(0, cfg["V"], (B, T), generator=g)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_of(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        rates.append(B * T / (time.perf_counter() - t0))
    return statistics.median(rates[-(steps - 2):])


def best_of(rounds, contenders):
    """The best of `rounds` calls of each function in `contenders`, calling them in turn each round."""
    best = [0.0] * len(contenders)
    for _ in range(rounds):
        for i, run in enumerate(contenders):
            best[i] = max(best[i], run())
    return best


def flops_per_token(cfg, T):
    C, L, V = cfg["C"], cfg["L"], cfg["V"]
    params = V * C + L * 12 * C * C   # the matrices: embedding / lm head and each layer's four
    return 6 * params + 6 * L * T * C


def throughput_table(args, d):
    print("| config | B x T | attnlab tok/s | PyTorch eager | PyTorch compiled | attnlab / best | attnlab % of peak |")
    print("|---|---|---|---|---|---|---|")
    for key, name, cfg, B, T in CONFIGS:
        if args.only and key != args.only:
            continue
        shard = os.path.join(d, f"bench_{cfg['V']}.bin")
        write_shard(shard, B * T * (args.steps + 1) + 1, cfg["V"])
        ours, eager, compiled = best_of(args.rounds, [
            lambda: bench_attnlab(cfg, B, T, args.steps, args.threads, shard),
            lambda: bench_torch(cfg, B, T, args.steps, args.threads, compiled=False),
            lambda: bench_torch(cfg, B, T, args.steps, args.threads, compiled=True)])
        peak = 100 * ours * flops_per_token(cfg, T) / (args.peak * 1e9)
        print(f"| {name} | {B} x {T} | {ours:.0f} | {eager:.0f} | {compiled:.0f} | {ours / max(eager, compiled):.2f}x "
              f"| {peak:.0f}% |", flush=True)


def mixer_table(args, d):
    cfg = dict(L=4, C=128, H=4, maxT=512, V=257)
    shard = os.path.join(d, "bench_mixers.bin")
    write_shard(shard, 16 * 512 * (args.steps + 1) + 1, cfg["V"])
    mixers = [("softmax", ""), ("sigmoid", ",mixer=sigmoid"), ("gate head", ",gate=head"),
              ("mLSTM exp", ",mixer=mlstm"), ("mLSTM sig", ",mixer=mlstm,igate=sig"),
              # the sink paper's block (docs/MODEL.md): its kernels must not slow the tiny model down
              ("softmax, paper block", ",ln=rms,linbias=0,tie=0,gelu=erf"),
              ("softmax, paper block + SwiGLU", ",ln=rms,linbias=0,tie=0,mlp=swiglu,hidden=344")]
    print("\n| mixer or block (L4 C128 H4) | T=128 tok/s | vs softmax | T=512 tok/s | vs softmax |")
    print("|---|---|---|---|---|")
    shapes = ((16, 128), (4, 512))
    runs = [lambda extra=extra, B=B, T=T: bench_attnlab(cfg, B, T, args.steps, args.threads, shard, extra)
            for _, extra in mixers for B, T in shapes]
    rates = best_of(args.rounds, runs)
    for m, (name, _) in enumerate(mixers):
        cells = []
        for s, _ in enumerate(shapes):
            rate, base = rates[m * len(shapes) + s], rates[s]
            cells += [f"{rate:.0f}", f"{base / rate:.2f}x time"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def ranks_table(args, d):
    key, name, cfg, B, T = CONFIGS[0]
    shard = os.path.join(d, "bench_ranks.bin")
    write_shard(shard, B * T * (args.steps + 1) + 1, cfg["V"])
    one, two = best_of(args.rounds, [lambda: bench_attnlab(cfg, B, T, args.steps, 2, shard),
                                     lambda: bench_attnlab(cfg, B, T, args.steps, 2, shard, ranks=2)])
    print(f"\n| {name}, B={B} in all | tok/s |\n|---|---|\n| 1 rank x 2 threads | {one:.0f} |\n"
          f"| 2 ranks x 1 thread (-ng 2) | {two:.0f} ({two / one:.2f}x) |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; each contender's best counts")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peak", type=float, help="FMA peak of the threads used, GFLOP/s (default: the 2-core peak "
                    "of the machine docs/PERF.md measured the library's instruction set on)")
    ap.add_argument("--only", choices=[c[0] for c in CONFIGS], help="one config of the first table, nothing else")
    ap.add_argument("--lib", default=os.path.join(ROOT, "build", "libattnlab.so"),
                    help="the library built with ./train_gpt2 (make bench passes the one of its ISA)")
    args = ap.parse_args()
    shapes = ctypes.CDLL(args.lib).cpu_kernel_shapes
    shapes.restype = ctypes.c_char_p
    shapes = shapes().decode()
    isa = shapes.split()[2]
    if args.peak is None:   # register-only FMA loops on 2 cores: the Zen 4 EPYC (AVX-512), the Zen 3 EPYC (AVX2)
        args.peak = PEAK_2_CORES.get(isa, 228.0)
    print(f"attnlab {shapes}")
    print(f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}, "
          f"MKL {torch.backends.mkl.is_available()}), threads: {args.threads}, best of {args.rounds} rounds, peak {args.peak:.0f} GFLOP/s\n")
    with tempfile.TemporaryDirectory() as d:
        throughput_table(args, d)
        if not args.only:
            mixer_table(args, d)
            ranks_table(args, d)


if __name__ == "__main__":
    main()
