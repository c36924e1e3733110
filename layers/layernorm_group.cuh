// LayerNorm over groups of hs features (one head of a row) on the GPU, shared by layers/headnorm.cu
// (the mLSTM head norm: per-channel weights, no bias) and attention/qknorm.cu (the heads of q or of
// k inside qkv rows: weights and biases shared by the heads), as layers/layernorm_row.h is on the
// CPU. One warp per group, fp32 statistics by two passes (mean, then the sum of squared deviations)
// and warp sums; the weight and bias gradients are column sums (common/reduce.cuh) in the callers.
// A helper inside those CUDA kernels (device code, a copy in each includer), not a kernel of its
// own, so not a kernel pair's header.
#pragma once
#include "common/reduce.cuh"

#define GROUP_NORM_THREADS 128   // one group per warp: 4 groups per block

// Where the groups are: group (n, h), n < N rows, h < heads, holds hs features at
// n * row_stride + h * hs; its mean and rstd at n * stat_stride + h; its weight (and bias) at
// h * weight_stride (0: one set shared by the heads).
struct NormGroups {
    int N, heads, hs;
    long row_stride;
    int stat_stride, weight_stride;
};

static inline int group_norm_blocks(const NormGroups& g) {
    return ceil_div((long)g.N * g.heads, GROUP_NORM_THREADS / 32);
}

namespace {   // a copy in each file that includes it

// out = (x - mean) * rstd * weight (+ bias unless NULL) per group; saves mean, rstd.
__global__ void __launch_bounds__(GROUP_NORM_THREADS)
    group_norm_forward_kernel(floatD* out, float* mean, float* rstd, const floatD* inp, const floatD* weight,
                              const floatD* bias, NormGroups g, float eps) {
    long group = (long)blockIdx.x * (GROUP_NORM_THREADS / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (group >= (long)g.N * g.heads) return;   // whole warps only: no block-wide barrier below
    int n = (int)(group / g.heads), h = (int)(group % g.heads), hs = g.hs;
    size_t at = (size_t)n * g.row_stride + (size_t)h * hs;
    const floatD* x = inp + at;
    const floatD* w = weight + (size_t)h * g.weight_stride;
    const floatD* b = bias ? bias + (size_t)h * g.weight_stride : nullptr;
    float sum = 0.0f;
    for (int c = lane; c < hs; c += 32) sum += to_float(x[c]);
    float m = warp_reduce_sum(sum) / hs, var = 0.0f;
    for (int c = lane; c < hs; c += 32) var += (to_float(x[c]) - m) * (to_float(x[c]) - m);
    float s = 1.0f / sqrtf(warp_reduce_sum(var) / hs + eps);
    for (int c = lane; c < hs; c += 32)
        out[at + c] = from_float((to_float(x[c]) - m) * s * to_float(w[c]) + (b ? to_float(b[c]) : 0.0f));
    if (lane == 0) {
        mean[(size_t)n * g.stat_stride + h] = m;
        rstd[(size_t)n * g.stat_stride + h] = s;
    }
}

// dinp += (weight * dout - mean(weight * dout) - norm * mean(weight * dout * norm)) * rstd per group,
// norm = (x - mean) * rstd (layernorm_row_backward's dx).
__global__ void __launch_bounds__(GROUP_NORM_THREADS)
    group_norm_backward_dinp_kernel(floatD* dinp, const floatD* dout, const floatD* inp, const floatD* weight,
                                    const float* mean, const float* rstd, NormGroups g) {
    long group = (long)blockIdx.x * (GROUP_NORM_THREADS / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (group >= (long)g.N * g.heads) return;
    int n = (int)(group / g.heads), h = (int)(group % g.heads), hs = g.hs;
    size_t at = (size_t)n * g.row_stride + (size_t)h * hs;
    const floatD* w = weight + (size_t)h * g.weight_stride;
    float m = mean[(size_t)n * g.stat_stride + h], s = rstd[(size_t)n * g.stat_stride + h];
    float dnorm_sum = 0.0f, dnorm_norm_sum = 0.0f;
    for (int c = lane; c < hs; c += 32) {
        float dnorm = to_float(w[c]) * to_float(dout[at + c]);
        dnorm_sum += dnorm;
        dnorm_norm_sum += dnorm * (to_float(inp[at + c]) - m) * s;
    }
    float dnorm_mean = warp_reduce_sum(dnorm_sum) / hs, dnorm_norm_mean = warp_reduce_sum(dnorm_norm_sum) / hs;
    for (int c = lane; c < hs; c += 32) {
        float norm = (to_float(inp[at + c]) - m) * s;
        float grad = (to_float(w[c]) * to_float(dout[at + c]) - dnorm_mean - norm * dnorm_norm_mean) * s;
        dinp[at + c] = from_float(to_float(dinp[at + c]) + grad);
    }
}

// The contribution of group (n, h) to the weight gradient of its feature j, norm * dout, and to the
// bias gradient, dout.
struct GroupNormGrads {
    float dweight, dbias;
};
static __device__ __forceinline__ GroupNormGrads group_norm_grads(const floatD* dout, const floatD* inp,
                                                                  const float* mean, const float* rstd,
                                                                  const NormGroups& g, long n, int h, int j) {
    size_t at = (size_t)n * g.row_stride + (size_t)h * g.hs + j, stat = (size_t)n * g.stat_stride + h;
    float dy = to_float(dout[at]);
    return {(to_float(inp[at]) - mean[stat]) * rstd[stat] * dy, dy};
}

}  // namespace
