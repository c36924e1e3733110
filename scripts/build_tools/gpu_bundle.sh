#!/usr/bin/env bash
# make gpu_bundle: the prebuilt programs for a GPU check (docs/GPU.md), in one archive that travels
# to the device machine with the working tree: the CUDA programs (train_gpt2cu, infercu, test_cuda,
# bench_attention_cuda) in both precisions with SASS for sm_90 alone (H100/H200: no sm_80, no PTX, so
# half the size), cuda_link_check (test/cuda/link_check.cu: the check's first CUDA call), and the
# CPU programs the comparisons need (train_gpt2, infer, prepare), host code
# for x86-64-v3 (AVX2; not -march=native: the device machine's CPU is not this one). Built in a copy
# of the working tree (build/gpu_bundle/src), so this tree's objects stay as they are. Fails if the
# archive is over 16 MiB or a CUDA program lacks sm_90 SASS (scripts/check/fatbin_archs.py; cuobjdump
# --list-elf shows the same where it is installed).
#   bash scripts/build_tools/gpu_bundle.sh [ARCHIVE]       (default build/gpu_bundle.tar.gz)
set -euo pipefail
cd "$(dirname "$0")/../.."
archive=${1:-build/gpu_bundle.tar.gz}
limit=$((16 * 1024 * 1024))
work=build/gpu_bundle
jobs=$(nproc)
host_flags="-O3 -march=x86-64-v3 -ffp-contract=fast -fno-math-errno"
mkdir -p "$work/src" "$work/stage"
rm -rf "$work/stage"/*
# the working tree as the device machine gets it: tracked files and untracked ones git does not ignore
git ls-files -co --exclude-standard -z | grep -zv '^datasets' | tar --null -T - -cf - | tar -xf - -C "$work/src"
programs="train_gpt2cu infercu test_cuda bench_attention_cuda"
# CFLAGS from the environment: the Makefile's own flags are added to it (on the command line it would replace them)
CFLAGS="$host_flags" make -C "$work/src" -j"$jobs" train_gpt2 infer prepare > "$work/build.log" 2>&1 ||
    { tail -20 "$work/build.log"; exit 1; }
cp "$work/src"/{train_gpt2,infer,prepare} "$work/stage/"
# test/cuda/link_check.cu: the check's first CUDA call (device count, library versions, one kernel)
make -C "$work/src" build/cuda_link_check CUDA_ARCHS="-gencode arch=compute_90,code=sm_90" >> "$work/build.log" 2>&1 ||
    { tail -20 "$work/build.log"; exit 1; }
cp "$work/src/build/cuda_link_check" "$work/stage/"
for precision in BF16 FP32; do
    CFLAGS="$host_flags" make -C "$work/src" -j"$jobs" $programs PRECISION=$precision \
        CUDA_ARCHS="-gencode arch=compute_90,code=sm_90" >> "$work/build.log" 2>&1 || { tail -20 "$work/build.log"; exit 1; }
    mkdir -p "$work/stage/$precision"
    for p in $programs; do
        cp "$work/src/$p" "$work/stage/$precision/"
        python3 scripts/check/fatbin_archs.py "$work/stage/$precision/$p" --require sass:sm_90 > /dev/null
    done
done
{
    echo "attnlab GPU bundle: commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (with uncommitted changes)'), $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "nvcc: $(nvcc --version | tail -1)"
    echo "host code: $host_flags; GPU code: sm_90 SASS; BF16/ and FP32/: $programs; CPU: train_gpt2 infer prepare; cuda_link_check"
    echo "GPU code of BF16/train_gpt2cu: $(python3 scripts/check/fatbin_archs.py "$work/stage/BF16/train_gpt2cu" | tr '\n' ' ')"
} > "$work/stage/BUNDLE.txt"
strip "$work/stage"/{train_gpt2,infer,prepare,cuda_link_check} "$work/stage"/*/*
tar -C "$work/stage" -cf - . | gzip -9 > "$archive.tmp"
size=$(stat -c %s "$archive.tmp")
if [ "$size" -gt $limit ]; then
    echo "error: $archive would be $size bytes, over the 16 MiB a device run may carry" >&2
    rm "$archive.tmp"
    exit 1
fi
mv "$archive.tmp" "$archive"
echo "$archive: $size bytes ($(cat "$work/stage/BUNDLE.txt" | head -1))"
