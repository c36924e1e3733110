"""CPU training throughput: attnlab's ./train_gpt2 against PyTorch (the reference GPT-2 of
scripts/ref_gpt2.py in float32 with torch.optim.AdamW), same configs, same machine, same run.

    /usr/bin/python3 scripts/bench_cpu.py [--steps 12] [--threads 2]

Prints a markdown table (tokens/s, median over the steps after 2 warm-up steps) and which BLAS
PyTorch used. Random token data; the throughput does not depend on the values.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import ref_gpt2  # noqa: E402

CONFIGS = [  # name, descriptor, B, T
    ("tiny (L4 C128 H4, V257)", dict(L=4, C=128, H=4, maxT=128, V=257), 16, 128),
    ("GPT-2 124M (d12)", dict(L=12, C=768, H=12, maxT=1024, V=50257), 4, 64),
]


def write_shard(path, n, V, seed=0):
    header = np.zeros(256, dtype=np.int32)
    header[:3] = [20240520, 1, n]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.random.default_rng(seed).integers(0, V, n).astype(np.uint16).tobytes())


def descriptor(cfg):
    return f"L={cfg['L']},C={cfg['C']},H={cfg['H']},T={cfg['maxT']},V={cfg['V']}"


def bench_attnlab(cfg, B, T, steps, threads, shard):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([os.path.join(ROOT, "train_gpt2"), "-e", descriptor(cfg), "-i", shard, "-b", str(B),
                          "-t", str(T), "-x", str(steps), "-v", "0", "-s", "0", "-sh", "0"],
                         capture_output=True, text=True, env=env, check=True).stdout
    rates = [float(x) for x in re.findall(r"\| (\d+) tok/s", out)]
    return statistics.median(rates[2:])


def bench_torch(cfg, B, T, steps, threads):
    torch.set_num_threads(threads)
    cfg = dict(cfg, Vp=(cfg["V"] + 127) // 128 * 128)
    model = ref_gpt2.GPT2(cfg, ref_gpt2.random_params(cfg, scale=0.02), dtype=torch.float32)
    opt = ref_gpt2.adamw(model, lr=1e-4, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    rates = []
    for _ in range(steps):
        x = torch.randint(0, cfg["V"], (B, T), generator=g)
        y = torch.randint(0, cfg["V"], (B, T), generator=g)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        rates.append(B * T / (time.perf_counter() - t0))
    return statistics.median(rates[2:])


def torch_blas():
    a = torch.randn(256, 256)
    (a @ a).sum()
    with open("/proc/self/maps") as f:
        maps = f.read()
    libs = sorted(set(re.findall(r"/\S*(?:openblas|libblas|mkl)\S*\.so[.\d]*", maps)))
    return ", ".join(os.path.basename(l) for l in libs) or "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, BLAS: {torch_blas()}, threads: {args.threads}\n")
    print("| config | B x T | attnlab tok/s | PyTorch tok/s | ratio |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for name, cfg, B, T in CONFIGS:
            shard = os.path.join(d, f"bench_{cfg['V']}.bin")
            write_shard(shard, B * T * (args.steps + 1) + 1, cfg["V"])
            ours = bench_attnlab(cfg, B, T, args.steps, args.threads, shard)
            ref = bench_torch(cfg, B, T, args.steps, args.threads)
            print(f"| {name} | {B} x {T} | {ours:.0f} | {ref:.0f} | {ours / ref:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
