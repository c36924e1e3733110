#!/usr/bin/env bash
# Where NCCL and cuBLASLt are, for the Makefile and scripts/gpu_check.sh: the CUDA toolkit's library
# folders (beside the nvcc on PATH, or CUDA_HOME) and the system loader's first, then the pip wheels of
# the python3 on PATH (PYTHON_WHEELS overrides it): NCCL from nvidia-nccl-cu13 in
# site-packages/nvidia/nccl, cuBLASLt from nvidia/cublas or, in CUDA 13's wheels, nvidia/cu13.
#   find_cuda_libs.sh dir nccl|cublasLt   the wheel folder (holding lib/ and include/) when the library is
#                                         only in a wheel; nothing when the toolkit or the loader has it,
#                                         or when nothing has it (the link then fails, naming it)
#   find_cuda_libs.sh report              one line per library: where it is and from what, or "absent"
#   find_cuda_libs.sh libdirs             the library folders of the wheels that dir names, ':'-separated
#                                         (for LD_LIBRARY_PATH)
set -uo pipefail
python=${PYTHON_WHEELS:-python3}
soname() { case $1 in nccl) echo libnccl.so ;; cublasLt) echo libcublasLt.so ;; *) echo "$1" ;; esac; }

# toolkit_file LIB: the library in the toolkit's or the system's folders
toolkit_file() {
    local name home dir f
    name=$(soname "$1")
    home=${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")")}
    for dir in "$home/lib64" "$home/lib" "$home/targets/x86_64-linux/lib" /usr/lib/x86_64-linux-gnu /usr/lib64; do
        for f in "$dir/$name" "$dir/$name".[0-9]*; do
            [ -e "$f" ] && { echo "$f"; return 0; }
        done
    done
    f=$(ldconfig -p 2>/dev/null | awk -v n="$name" 'index($1, n) == 1 {print $NF; exit}')
    [ -n "$f" ] && echo "$f"
}

# wheel_file LIB: the library in a pip wheel under site-packages/nvidia
wheel_file() {
    local name p f
    name=$(soname "$1")
    while read -r p; do
        for f in "$p"/*/lib/"$name"*; do
            [ -e "$f" ] && { echo "$f"; return 0; }
        done
    done < <("$python" -c "import nvidia; print('\n'.join(nvidia.__path__))" 2>/dev/null)
}

case ${1:-report} in
dir)
    if [ -z "$(toolkit_file "$2")" ]; then
        f=$(wheel_file "$2")
        [ -n "$f" ] && dirname "$(dirname "$f")"
    fi ;;
libdirs)
    dirs=()
    for lib in nccl cublasLt; do
        [ -n "$(toolkit_file $lib)" ] && continue
        f=$(wheel_file $lib)
        [ -n "$f" ] && dirs+=("$(dirname "$f")")
    done
    (IFS=:; echo "${dirs[*]}") ;;
report)
    for lib in nccl cublasLt; do
        if f=$(toolkit_file $lib) && [ -n "$f" ]; then echo "$lib: $f (toolkit or system)"
        elif f=$(wheel_file $lib) && [ -n "$f" ]; then echo "$lib: $f (pip wheel of $python)"
        else echo "$lib: absent (not in the CUDA toolkit, the loader's cache or a pip wheel of $python)"; fi
    done ;;
*) echo "usage: find_cuda_libs.sh dir nccl|cublasLt | report | libdirs" >&2; exit 2 ;;
esac
