#!/usr/bin/env bash
# Installs what attnlab needs on Debian 12 (run as root): the C toolchain with OpenMP (and an aarch64
# cross-compiler with qemu-user for the NEON build), PyTorch and NumPy for the test references
# (Debian's python3-torch, with OpenBLAS so it is not on the slow reference BLAS), pytest, the King
# James Bible (the offline default corpus), and tiktoken (PyPI) for the tokenizer tests. The CUDA
# toolkit is expected to be installed already (nvcc on PATH).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends build-essential python3 python3-torch python3-numpy \
    python3-pytest python3-pip python3-matplotlib libopenblas0-pthread bible-kjv > /dev/null
# clang-14 with libFuzzer and LLVM's OpenMP for the fuzz targets (make fuzz, test/fuzz)
$SUDO apt-get install -y -qq --no-install-recommends clang-14 libclang-rt-14-dev libomp-14-dev > /dev/null
# the aarch64 cross compiler and qemu-user for the NEON build and its check (make check_aarch64)
$SUDO apt-get install -y -qq --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user > /dev/null
/usr/bin/python3 -c "import tiktoken" 2>/dev/null || \
    $SUDO /usr/bin/python3 -m pip install -q --break-system-packages tiktoken
# transformers (PyPI) for the Hugging Face interop tests (scripts/import_hf.py, export_hf.py): 4.40.2
# works with Debian's PyTorch 1.13 (newer releases move to PyTorch 2); pinned with the tokenizers,
# safetensors and huggingface-hub it was tested with. Only local folders are read: no network at run time.
/usr/bin/python3 -c "import transformers, safetensors; assert transformers.__version__ == '4.40.2'" 2>/dev/null || \
    $SUDO /usr/bin/python3 -m pip install -q --break-system-packages transformers==4.40.2 tokenizers==0.19.1 \
        safetensors==0.8.0 huggingface-hub==0.36.2
