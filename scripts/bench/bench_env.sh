#!/usr/bin/env bash
# The PyTorch a user would pick today, for the CPU benchmarks only (scripts/bench/bench_cpu.py, make bench):
# PyTorch 2.15 from PyPI in a virtual environment, build/bench_venv. The tests do not use it (their
# oracle is Debian's python3-torch). PyPI's Linux wheel depends on several GB of CUDA wheels it does
# not need on a CPU; it is installed without them (--no-deps), with its pure-Python dependencies and
# the four NVIDIA libraries it loads at import (NCCL, NVSHMEM, cuSPARSELt, cuFile); the CUDA 13
# toolkit installed on the machine provides the rest (cuBLAS, cudart). torch.compile's CPU backend
# compiles C++ with the system's g++ and needs Python's headers (python3-dev).
#   bash scripts/bench/bench_env.sh        (prints the venv's python)
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=build/bench_venv
TORCH=2.15.0
if ! "$VENV/bin/python" -c "import torch; assert torch.__version__.startswith('$TORCH')" 2>/dev/null; then
    command -v apt-get > /dev/null && ! dpkg -s python3-dev python3-venv > /dev/null 2>&1 &&
        { SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"; $SUDO apt-get install -y -qq python3-dev python3-venv > /dev/null; }
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --no-deps "torch==$TORCH" nvidia-nccl-cu13==2.30.7 nvidia-nvshmem-cu13==3.7.2 \
        nvidia-cusparselt-cu13==0.8.1 nvidia-cufile==1.20.0.107 >&2
    "$VENV/bin/python" -m pip install -q filelock typing-extensions sympy networkx jinja2 fsspec numpy "setuptools>=77" >&2
fi
echo "$VENV/bin/python"
