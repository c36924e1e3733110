// Internal to the CUDA mLSTM (attention/mlstm.h): what its three files share, in namespace
// mlstm. attention/mlstm.cu holds the entry points (the dispatch between the kernel families), the
// recurrent step and the analysis matrix; attention/mlstm_fp32.cu the fp32 kernels of the chunkwise
// form; attention/mlstm_tc.cu its tensor-core kernels (bf16 build). Here: the launch constants, the
// CPU's scalar helpers and the warp reductions and scans (device, inline), the stream-ordered scratch
// and the shape of a call (host), and the launchers each kernel file offers the others.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/cuda_common.cuh"
#include "common/fastmath.h"
#include "attention/flash.cuh"
#include "common/ptx.cuh"

extern "C" {
#include "attention/mlstm.h"
#include "common/check.h"
}

namespace mlstm {

constexpr int THREADS = 128;   // every kernel but the recurrent step: 4 warps
constexpr int WARPS = THREADS / 32;
constexpr unsigned FULL = 0xffffffffu;

// ---------------------------------------------------------------------------------------------------
// Scalar helpers (the CPU's, attention/mlstm.c), accurate versions: expf, tanhf, log1pf.
static __device__ __forceinline__ float soft_cap(float z) { return MLSTM_GATE_SOFT_CAP * tanhf(z / MLSTM_GATE_SOFT_CAP); }
static __device__ __forceinline__ float soft_cap_grad(float z) {
    const float th = tanhf(z / MLSTM_GATE_SOFT_CAP);
    return 1.0f - th * th;
}
static __device__ __forceinline__ float log_sigmoid(float x) {
    return x < 0.0f ? x - log1pf(expf(x)) : -log1pf(expf(-x));
}
static __device__ __forceinline__ float sigmoid_accurate(float x) { return 1.0f / (1.0f + expf(-x)); }

static __device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(FULL, x, o);
    return x;
}
static __device__ __forceinline__ float warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(FULL, x, o));
    return x;
}
// Inclusive prefix sum over the lanes, lane 0 first (Hillis-Steele: a fixed tree). Whole warp.
static __device__ __forceinline__ float warp_inclusive_sum(float x) {
    const int lane = threadIdx.x & 31;
    #pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
        const float y = __shfl_sync(FULL, x, lane >= d ? lane - d : lane);
        if (lane >= d) x += y;
    }
    return x;
}
// The exclusive one from the inclusive one (lane 0: 0).
static __device__ __forceinline__ float warp_exclusive_from(float incl) {
    const int lane = threadIdx.x & 31;
    const float y = __shfl_sync(FULL, incl, lane > 0 ? lane - 1 : 0);
    return lane > 0 ? y : 0.0f;
}

// ---------------------------------------------------------------------------------------------------
// Host side.

// One stream-ordered scratch allocation carved into float arrays, each 16-byte aligned.
struct Scratch {
    float* base = nullptr;
    size_t used = 0, total = 0;
    explicit Scratch(size_t floats) : total(floats) {
        cuda_check(cudaMallocAsync(reinterpret_cast<void**>(&base), (floats > 0 ? floats : 1) * sizeof(float), 0));
    }
    ~Scratch() { cuda_check(cudaFreeAsync(base, 0)); }
    static size_t round(size_t n) { return (n + 3) / 4 * 4; }
    float* take(size_t n) {
        float* p = base + used;
        used += round(n);
        return p;
    }
};

struct Shape {
    int B, T, C, NH, hs, chunk, NC, sig_igate;
    float scale;
    size_t bhT() const { return (size_t)B * NH * T; }
    size_t states() const { return (size_t)B * NH * (NC - 1); }   // the chunk states (entering chunks 1..NC-1)
};

static inline Shape make_shape(int B, int T, int C, int NH, int chunk, int sig_igate) {
    Shape s;
    s.B = B, s.T = T, s.C = C, s.NH = NH, s.hs = C / NH, s.chunk = chunk < T ? chunk : T;
    s.NC = (T + s.chunk - 1) / s.chunk, s.sig_igate = sig_igate, s.scale = 1.0f / sqrtf((float)s.hs);
    return s;
}

// ---------------------------------------------------------------------------------------------------
// The fp32 kernels' launchers (attention/mlstm_fp32.cu). fp32_forward and fp32_backward take the
// arguments of the entry points as device views, after the entry points' checks (chunk >= 1; B, T
// >= 1), as do tc_forward and tc_backward below.

// li, lf (B,NH,T) from the raw gates (also the analysis matrix's).
void log_gates(float* li, float* lf, const floatD* gates, const Shape& s);
// dgates += the gate gradients from P = q.dq and K = k.dk (B,NH,T) (also the tensor-core backward's).
void gate_grads(floatD* dgates, const floatD* gates, const float* P, const float* K, int B, int T, int NH,
                int sig_igate);
void fp32_forward(floatD* h, float* n_out, float* m_out, const floatD* qkv, const floatD* gates, int B, int T, int C,
                  int NH, int chunk, int sig_igate);
void fp32_backward(floatD* dqkv, floatD* dgates, const floatD* dh, const floatD* qkv, const floatD* gates,
                   const float* n_out, const float* m_out, int B, int T, int C, int NH, int chunk, int sig_igate);

#ifdef ATTNLAB_BF16
// ---------------------------------------------------------------------------------------------------
// The tensor-core kernels' launchers (attention/mlstm_tc.cu, bf16 build).
typedef __nv_bfloat16 bf16;

// Whether the tensor-core kernels take a head size and chunk size (the callers check the alignment).
bool tc_applies(int hs, int chunk);
void tc_forward(bf16* h, float* n_out, float* m_out, const bf16* qkv, const bf16* gates, int B, int T, int C, int NH,
                int L, int sig_igate);
void tc_backward(bf16* dqkv, bf16* dgates, const bf16* dh, const bf16* qkv, const bf16* gates, const float* n_out,
                 int B, int T, int C, int NH, int L, int sig_igate);
#endif   // ATTNLAB_BF16

}   // namespace mlstm
