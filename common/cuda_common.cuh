// Shared by the CUDA kernels: the device element type, checked CUDA calls, launch helpers.
// Kernels run on the default stream (built with --default-stream per-thread, so each host thread
// that drives a GPU gets its own stream).
#pragma once
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

extern "C" {
#include "common/floatx.h"
}

#ifdef ATTNLAB_BF16
typedef __nv_bfloat16 floatD;   // the device view of floatX
#else
typedef float floatD;
#endif

// The device view of a floatX pointer.
static inline floatD* as_device(floatX* p) { return reinterpret_cast<floatD*>(p); }
static inline const floatD* as_device(const floatX* p) { return reinterpret_cast<const floatD*>(p); }

static __device__ __forceinline__ float to_float(floatD x) { return (float)x; }
static __device__ __forceinline__ floatD from_float(float x) { return (floatD)x; }

// Fails with one line naming the call site, e.g. "error: CUDA out of memory (layers/matmul.cu:41)".
#define cuda_check(call) cuda_check_at((call), __FILE__, __LINE__)
void cuda_check_at(cudaError_t err, const char* file, int line);
// After a kernel launch: reports launch errors at the launch site.
#define cuda_check_launch() cuda_check_at(cudaGetLastError(), __FILE__, __LINE__)

static inline int ceil_div(long a, long b) { return (int)((a + b - 1) / b); }

// Blocks of `threads` for a grid-stride loop over `items`: at least 1, at most 16384 (the loop covers the rest).
static inline int grid_blocks(long items, int threads) {
    int blocks = ceil_div(items, threads);
    return blocks < 1 ? 1 : blocks > 16384 ? 16384 : blocks;
}

// A pack of W floatD moved by one load or store; W = X128 makes it 128 bits.
constexpr int X128 = 16 / sizeof(floatD);
template <int W> struct alignas(W * sizeof(floatD)) Pack { floatD v[W]; };
template <int W> __device__ __forceinline__ Pack<W> load_pack(const floatD* p) {
    return *reinterpret_cast<const Pack<W>*>(p);
}
template <int W> __device__ __forceinline__ void store_pack(floatD* p, const Pack<W>& x) {
    *reinterpret_cast<Pack<W>*>(p) = x;
}
static inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
