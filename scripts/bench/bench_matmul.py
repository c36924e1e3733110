"""GFLOP/s of our matmul_forward / matmul_backward (build/libattnlab.so) against PyTorch on the CPU.

Usage: build/bench_venv/bin/python scripts/bench/bench_matmul.py [--threads 2] [--lib build/libattnlab.so]
(`make bench` makes the venv with scripts/bench/bench_env.sh: PyTorch 2.x from PyPI, whose CPU matmul is MKL.)
Both sides get the same number of threads (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / torch.set_num_threads).
Forward counts 2*N*C*OC flops; backward 4*N*C*OC (dinp and dweight; dbias is negligible).
Each cell is the best over --rounds passes of --min-time repeats: the machine may be shared.
"""
import argparse
import ctypes
import os
import re
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--lib", default=os.path.join(ROOT, "build", "libattnlab.so"))
ap.add_argument("--min-time", type=float, default=0.3, help="seconds of repeats per measurement")
ap.add_argument("--rounds", type=int, default=3,
                help="passes over all shapes; each cell keeps its best (the machine may be shared)")
args = ap.parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(args.threads)
lib = ctypes.CDLL(args.lib)
P = ctypes.c_void_p


def ptr(a):
    return None if a is None else P(a.ctypes.data)


def timeit(fn):
    fn()  # warm-up: page faults, packing buffers, thread pool
    reps, start = 0, time.perf_counter()
    best = float("inf")
    while time.perf_counter() - start < args.min_time or reps < 3:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        reps += 1
    return best


# (name, N, C, OC, bias): GPT-2 124M with B*T = 256, then the small test model with B*T = 1024.
SHAPES = [
    ("attn qkv", 256, 768, 2304, True),
    ("attn proj", 256, 768, 768, True),
    ("mlp fc", 256, 768, 3072, True),
    ("mlp proj", 256, 3072, 768, True),
    ("lm head", 256, 768, 50304, False),
    ("tiny qkv", 1024, 128, 384, True),
    ("tiny fc", 1024, 128, 512, True),
    ("tiny proj", 1024, 128, 128, True),
    ("tiny odd", 1024, 128, 257, True),
]


def bench(N, C, OC, has_bias):
    """GFLOP/s [ours fw, torch fw, ours bw, torch bw] for one linear layer."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C), dtype=np.float32)
    w = rng.standard_normal((OC, C), dtype=np.float32) * 0.02
    b = rng.standard_normal(OC, dtype=np.float32) if has_bias else None
    dout = rng.standard_normal((N, OC), dtype=np.float32)
    out = np.empty((N, OC), np.float32)
    dx, dw = np.zeros((N, C), np.float32), np.zeros((OC, C), np.float32)
    db = np.zeros(OC, np.float32) if has_bias else None
    ci = ctypes.c_int
    ours_f = timeit(lambda: lib.matmul_forward(ptr(out), ptr(x), ptr(w), ptr(b), ci(N), ci(C), ci(OC)))
    ours_b = timeit(lambda: lib.matmul_backward(ptr(dx), ptr(dw), ptr(db), ptr(dout), ptr(x), ptr(w),
                                                ci(N), ci(C), ci(OC)))
    tx, tw, tdout = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(dout)
    tb = torch.from_numpy(b) if has_bias else None
    tdx, tdw = torch.empty(N, C), torch.empty(OC, C)

    def torch_backward():  # what autograd runs for F.linear: two GEMMs and a column sum
        torch.mm(tdout, tw, out=tdx)
        torch.mm(tdout.t(), tx, out=tdw)
        if has_bias:
            tdout.sum(0)

    torch_f = timeit(lambda: torch.nn.functional.linear(tx, tw, tb))
    torch_b = timeit(torch_backward)
    flops = 2.0 * N * C * OC
    return [flops / ours_f / 1e9, flops / torch_f / 1e9, 2 * flops / ours_b / 1e9, 2 * flops / torch_b / 1e9]


def torch_blas():
    """The BLAS torch really calls: BLAS_INFO from its build config and the libraries mapped in."""
    info = re.findall(r"BLAS_INFO=\w+", torch.__config__.show())
    torch.mm(torch.ones(64, 64), torch.ones(64, 64))
    with open("/proc/self/maps") as f:
        libs = sorted({l.split("/")[-1].strip() for l in f if "blas" in l.lower() or "mkl" in l.lower()})
    return " ".join(info + libs)


print(f"threads {args.threads}; torch {torch.__version__}; {torch_blas()}")
print("%-10s %-16s %8s %8s %8s %8s" % ("layer", "N x C -> OC", "ours fw", "torch fw", "ours bw", "torch bw"))
print(f"(GFLOP/s, best of {args.rounds} rounds of repeats)")
best = {s[0]: [0.0] * 4 for s in SHAPES}
for _ in range(args.rounds):
    for shape in SHAPES:
        best[shape[0]] = [max(a, b) for a, b in zip(best[shape[0]], bench(*shape[1:]))]
for name, N, C, OC, _ in SHAPES:
    print("%-10s %-16s %8.1f %8.1f %8.1f %8.1f" % (name, f"{N}x{C}->{OC}", *best[name]))
gpt = [best[s[0]] for s in SHAPES if not s[0].startswith("tiny")]
print("GPT-2 mean  ours fw %.1f torch fw %.1f | ours bw %.1f torch bw %.1f" % tuple(
    sum(r[i] for r in gpt) / len(gpt) for i in range(4)))
