"""Compares a CPU run and a CUDA run of ./train_gpt2 -dg on the same model, data and seed: the
first step's loss and every parameter gradient (per tensor, relative to the tensor's largest
CPU gradient), then the training losses of main.log step by step. Exits 1 if a bound is broken.

    python3 scripts/check/compare_runs.py CPU_DIR GPU_DIR DESCRIPTOR_CFG_JSON BOUND
"""
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ref"))
import ref_gpt2  # noqa: E402


def read_dump(path):
    raw = np.fromfile(path, dtype=np.float32)
    return float(raw[0]), raw[1:]


def losses(run_dir):
    text = open(os.path.join(run_dir, "main.log")).read()
    return [float(x) for x in re.findall(r"trl:([-\d.eE+naif]+)", text)]


def main():
    cpu_dir, gpu_dir, cfg, bound = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])
    failed, checks = 0, 0
    cpu_loss, cpu_grads = read_dump(os.path.join(cpu_dir, "grads.bin"))
    gpu_loss, gpu_grads = read_dump(os.path.join(gpu_dir, "grads.bin"))
    err = abs(gpu_loss - cpu_loss) / abs(cpu_loss)
    print(f"{'ok  ' if err <= bound else 'FAIL'} first-step loss: cpu {cpu_loss:.6f} gpu {gpu_loss:.6f} rel {err:.2e}")
    failed += not err <= bound
    checks += 1
    off = 0
    for name, shape in ref_gpt2.tensor_shapes(cfg):
        n = int(np.prod(shape))
        c, g = cpu_grads[off:off + n], gpu_grads[off:off + n]
        off += n
        err = float(np.max(np.abs(g - c)) / max(np.max(np.abs(c)), 1e-30)) if np.all(np.isfinite(g)) else float("inf")
        print(f"{'ok  ' if err <= bound else 'FAIL'} grad {name:10s} {str(shape):18s} rel err {err:.2e}")
        failed += not err <= bound
        checks += 1
    lc, lg = losses(cpu_dir), losses(gpu_dir)
    for step, (a, b) in enumerate(zip(lc, lg), 1):
        err = abs(a - b) / abs(a)
        print(f"{'ok  ' if err <= bound else 'FAIL'} step {step:2d} loss cpu {a:.6f} gpu {b:.6f} rel {err:.2e}")
        failed += not err <= bound
        checks += 1
    if len(lc) != len(lg) or not lc:
        print(f"FAIL step counts differ: cpu {len(lc)}, gpu {len(lg)}")
        failed += 1
    print(f"{checks - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
