// RMSNorm over the last dim on the GPU (ln=rms), the twin of layers/rmsnorm.c: y = x r w, r =
// 1/sqrt(mean(x^2) + eps), eps 1e-5, weight only, r saved as float. Forward: one warp per row, the
// sum of squares in fp32 by warp shuffles; with the fused residual add, residual = inp1 + inp2 is
// written first, pack by pack by the lane that reads it (so it may alias inp2), rounded to floatX as
// the unfused kernels would, then normalized. Backward: one warp per row adds
// dx = r (g - n mean(g n)), g = w dy, n = x r; dweight is a deterministic column sum over the rows
// (common/reduce.cuh), where the CPU sums per-thread partials. No atomics: the same bits every run.
#include "common/reduce.cuh"
#include "layers/rmsnorm.h"

#define RMS_EPS 1e-5f
#define RMS_THREADS 256                 // one row per warp: 8 rows per block
#define RMS_ROWS_PER_BLOCK (RMS_THREADS / 32)

namespace {

// out (N,C) = inp * rstd * weight, rstd (N). Lane l takes packs l, l+32, ... With residual:
// residual = add + inp first, then its norm.
template <int W>
__global__ void __launch_bounds__(RMS_THREADS)
    rmsnorm_forward_kernel(floatD* out, float* rstd, const floatD* inp, const floatD* weight, int N, int C,
                           floatD* residual = nullptr, const floatD* add = nullptr) {
    int row = blockIdx.x * RMS_ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    size_t at = (size_t)row * C;
    float sum = 0.0f;
    for (int c = lane * W; c < C; c += 32 * W) {
        Pack<W> xp = load_pack<W>(inp + at + c);
        if (residual) {
            Pack<W> ap = load_pack<W>(add + at + c);
#pragma unroll
            for (int k = 0; k < W; k++) xp.v[k] = from_float(to_float(ap.v[k]) + to_float(xp.v[k]));
            store_pack<W>(residual + at + c, xp);
        }
#pragma unroll
        for (int k = 0; k < W; k++) sum += to_float(xp.v[k]) * to_float(xp.v[k]);
    }
    float r = 1.0f / sqrtf(warp_reduce_sum(sum) / C + RMS_EPS);
    const floatD* x = (residual ? residual : inp) + at;   // the lane reads back only the packs it wrote
    for (int c = lane * W; c < C; c += 32 * W) {
        Pack<W> xp = load_pack<W>(x + c), w = load_pack<W>(weight + c), o;
#pragma unroll
        for (int k = 0; k < W; k++) o.v[k] = from_float(to_float(xp.v[k]) * r * to_float(w.v[k]));
        store_pack<W>(out + at + c, o);
    }
    if (lane == 0) rstd[row] = r;
}

// dinp (N,C) += r (w dy - n mean(w dy n)), n = x r; one warp per row.
template <int W>
__global__ void __launch_bounds__(RMS_THREADS)
    rmsnorm_backward_dinp_kernel(floatD* dinp, const floatD* dout, const floatD* inp, const floatD* weight,
                                 const float* rstd, int N, int C) {
    int row = blockIdx.x * RMS_ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    size_t at = (size_t)row * C;
    float r = rstd[row], gn_sum = 0.0f;
    for (int c = lane * W; c < C; c += 32 * W) {
        Pack<W> dy = load_pack<W>(dout + at + c), x = load_pack<W>(inp + at + c), w = load_pack<W>(weight + c);
#pragma unroll
        for (int k = 0; k < W; k++) gn_sum += to_float(w.v[k]) * to_float(dy.v[k]) * to_float(x.v[k]) * r;
    }
    float gn_mean = warp_reduce_sum(gn_sum) / C;
    for (int c = lane * W; c < C; c += 32 * W) {
        Pack<W> dy = load_pack<W>(dout + at + c), x = load_pack<W>(inp + at + c), w = load_pack<W>(weight + c);
        Pack<W> dx = load_pack<W>(dinp + at + c);
#pragma unroll
        for (int k = 0; k < W; k++) {
            float grad = (to_float(w.v[k]) * to_float(dy.v[k]) - to_float(x.v[k]) * r * gn_mean) * r;
            dx.v[k] = from_float(to_float(dx.v[k]) + grad);
        }
        store_pack<W>(dinp + at + c, dx);
    }
}

// dweight (C) += sum over rows of x r dy.
struct RmsnormWeightGrad {
    floatD* dweight;
    const floatD *dout, *inp;
    const float* rstd;
    int C;
    __device__ float value(long row, int col) const {
        return to_float(inp[row * C + col]) * rstd[row] * to_float(dout[row * C + col]);
    }
    __device__ void add(int col, float sum) const { dweight[col] = from_float(to_float(dweight[col]) + sum); }
};

}  // namespace

void rmsnorm_forward_cuda(floatX* out, float* rstd, const floatX* inp, const floatX* weight, int N, int C) {
    if (N == 0) return;
    bool packed = C % X128 == 0 && aligned16(out) && aligned16(inp) && aligned16(weight);
    int blocks = ceil_div(N, RMS_ROWS_PER_BLOCK);
    if (packed)
        rmsnorm_forward_kernel<X128><<<blocks, RMS_THREADS>>>(as_device(out), rstd, as_device(inp), as_device(weight),
                                                              N, C);
    else
        rmsnorm_forward_kernel<1><<<blocks, RMS_THREADS>>>(as_device(out), rstd, as_device(inp), as_device(weight), N,
                                                           C);
    cuda_check_launch();
}

// residual (N,C) = inp1 + inp2 (may alias inp2), out = RMSNorm(residual): one kernel, one warp per row.
void residual_rmsnorm_forward_cuda(floatX* residual, floatX* out, float* rstd, const floatX* inp1, const floatX* inp2,
                                   const floatX* weight, int N, int C) {
    if (N == 0) return;
    bool packed = C % X128 == 0 && aligned16(residual) && aligned16(out) && aligned16(inp1) && aligned16(inp2) &&
                  aligned16(weight);
    int blocks = ceil_div(N, RMS_ROWS_PER_BLOCK);
    if (packed)
        rmsnorm_forward_kernel<X128><<<blocks, RMS_THREADS>>>(as_device(out), rstd, as_device(inp2), as_device(weight),
                                                              N, C, as_device(residual), as_device(inp1));
    else
        rmsnorm_forward_kernel<1><<<blocks, RMS_THREADS>>>(as_device(out), rstd, as_device(inp2), as_device(weight), N,
                                                           C, as_device(residual), as_device(inp1));
    cuda_check_launch();
}

void rmsnorm_backward_cuda(floatX* dinp, floatX* dweight, const floatX* dout, const floatX* inp, const floatX* weight,
                           const float* rstd, int N, int C) {
    if (N == 0) return;
    bool packed = C % X128 == 0 && aligned16(dinp) && aligned16(dout) && aligned16(inp) && aligned16(weight);
    int blocks = ceil_div(N, RMS_ROWS_PER_BLOCK);
    if (packed)
        rmsnorm_backward_dinp_kernel<X128><<<blocks, RMS_THREADS>>>(as_device(dinp), as_device(dout), as_device(inp),
                                                                    as_device(weight), rstd, N, C);
    else
        rmsnorm_backward_dinp_kernel<1><<<blocks, RMS_THREADS>>>(as_device(dinp), as_device(dout), as_device(inp),
                                                                 as_device(weight), rstd, N, C);
    cuda_check_launch();
    column_sum_add(RmsnormWeightGrad{as_device(dweight), as_device(dout), as_device(inp), rstd, C}, N, C);
}
