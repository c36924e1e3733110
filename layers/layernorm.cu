// LayerNorm over the last dim on the GPU, the twin of layers/layernorm.c (eps 1e-5, biased
// variance, mean and rstd saved as float). Forward: one warp per row, fp32 statistics by two passes
// (mean, then the sum of squared deviations) and warp shuffles, as the CPU's layernorm_row.
// Backward, bitwise deterministic and without atomics: one warp per row adds the input gradient
// (layernorm_row_backward's dx); the dweight/dbias column sums, which the CPU reduces through
// per-thread partial sums, are partial sums over fixed chunks of LN_CHUNK_ROWS rows (each column
// summed by 8 row groups, added in group order) written to a scratch buffer (cudaMallocAsync per
// call), then added over the chunks in chunk order. The split depends only on N, so every GPU
// gives the same bits.
#include <cstdint>

#include "common/cuda_common.cuh"
#include "layers/layernorm.h"

#define LN_EPS 1e-5f
#define LN_THREADS 256                // one row per warp: 8 rows per block
#define LN_ROWS_PER_BLOCK (LN_THREADS / 32)
#define LN_GROUPS 8                   // backward column sums: row groups per block
#define LN_CHUNK_ROWS 512             // backward column sums: rows per partial sum

namespace {


// Sum over the warp; every lane gets the same bits.
__device__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// out (N,C) = (inp - mean) * rstd * weight + bias; mean, rstd (N). Lane l takes packs l, l+32, ...
// With residual (the fused residual add): residual = add + inp is written first, pack by pack by
// the lane that reads it (so residual may alias inp), then normalized like inp would be.
template <int W>
__global__ void layernorm_forward_kernel(floatD* out, float* mean, float* rstd, const floatD* inp,
                                         const floatD* weight, const floatD* bias, int N, int C,
                                         floatD* residual = nullptr, const floatD* add = nullptr) {
    int row = blockIdx.x * LN_ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const floatD* x = (residual ? residual : inp) + (size_t)row * C;
    float sum = 0.0f;
    for (int c = lane * W; c < C; c += 32 * W) {
        Pack<W> xp = load_pack<W>(inp + (size_t)row * C + c);
        if (residual) {   // residual = add + inp, rounded to floatD as the unfused kernels would
            Pack<W> ap = load_pack<W>(add + (size_t)row * C + c);
#pragma unroll
            for (int k = 0; k < W; k++) xp.v[k] = from_float(to_float(ap.v[k]) + to_float(xp.v[k]));
            store_pack<W>(residual + (size_t)row * C + c, xp);
        }
#pragma unroll
        for (int k = 0; k < W; k++) sum += to_float(xp.v[k]);
    }
    float m = warp_sum(sum) / C;
    float var = 0.0f;
    for (int c = lane * W; c < C; c += 32 * W) {
        Pack<W> xp = load_pack<W>(x + c);
#pragma unroll
        for (int k = 0; k < W; k++) var += (to_float(xp.v[k]) - m) * (to_float(xp.v[k]) - m);
    }
    float s = 1.0f / sqrtf(warp_sum(var) / C + LN_EPS);
    for (int c = lane * W; c < C; c += 32 * W) {
        Pack<W> xp = load_pack<W>(x + c), w = load_pack<W>(weight + c), b = load_pack<W>(bias + c), o;
#pragma unroll
        for (int k = 0; k < W; k++)
            o.v[k] = from_float((to_float(xp.v[k]) - m) * s * to_float(w.v[k]) + to_float(b.v[k]));
        store_pack<W>(out + (size_t)row * C + c, o);
    }
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = s;
    }
}

// dinp (N,C) += (weight * dout - mean(weight * dout) - norm * mean(weight * dout * norm)) * rstd,
// norm = (inp - mean) * rstd; one warp per row.
template <int W>
__global__ void layernorm_backward_dinp_kernel(floatD* dinp, const floatD* dout, const floatD* inp,
                                               const floatD* weight, const float* mean, const float* rstd, int N,
                                               int C) {
    int row = blockIdx.x * LN_ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    size_t at = (size_t)row * C;
    float m = mean[row], s = rstd[row];
    float dnorm_sum = 0.0f, dnorm_norm_sum = 0.0f;
    for (int c = lane * W; c < C; c += 32 * W) {
        Pack<W> dy = load_pack<W>(dout + at + c), x = load_pack<W>(inp + at + c), w = load_pack<W>(weight + c);
#pragma unroll
        for (int k = 0; k < W; k++) {
            float dnorm = to_float(w.v[k]) * to_float(dy.v[k]);
            dnorm_sum += dnorm;
            dnorm_norm_sum += dnorm * (to_float(x.v[k]) - m) * s;
        }
    }
    float dnorm_mean = warp_sum(dnorm_sum) / C, dnorm_norm_mean = warp_sum(dnorm_norm_sum) / C;
    for (int c = lane * W; c < C; c += 32 * W) {
        Pack<W> dy = load_pack<W>(dout + at + c), x = load_pack<W>(inp + at + c), w = load_pack<W>(weight + c);
        Pack<W> dx = load_pack<W>(dinp + at + c);
#pragma unroll
        for (int k = 0; k < W; k++) {
            float norm = (to_float(x.v[k]) - m) * s;
            float grad = (to_float(w.v[k]) * to_float(dy.v[k]) - dnorm_mean - norm * dnorm_norm_mean) * s;
            dx.v[k] = from_float(to_float(dx.v[k]) + grad);
        }
        store_pack<W>(dinp + at + c, dx);
    }
}

// partial (chunks, 2, C): for chunk blockIdx.y, the sums over its rows of norm * dout (dweight) and
// of dout (dbias). A block covers 32 packs of W channels; row group g takes rows g, g+8, ... of the
// chunk, and the group sums are added in group order.
template <int W>
__global__ void layernorm_backward_partial_kernel(float* partial, const floatD* dout, const floatD* inp,
                                                  const float* mean, const float* rstd, int N, int C) {
    __shared__ float group_sums[2][LN_GROUPS][W][32];
    int lane = threadIdx.x % 32, group = threadIdx.x / 32;
    int c = (blockIdx.x * 32 + lane) * W;
    int row0 = blockIdx.y * LN_CHUNK_ROWS, row1 = min(N, row0 + LN_CHUNK_ROWS);
    float dw[W] = {}, db[W] = {};
    for (int row = row0 + group; c < C && row < row1; row += LN_GROUPS) {
        size_t at = (size_t)row * C + c;
        Pack<W> dy = load_pack<W>(dout + at), x = load_pack<W>(inp + at);
        float m = mean[row], s = rstd[row];
#pragma unroll
        for (int k = 0; k < W; k++) {
            dw[k] += (to_float(x.v[k]) - m) * s * to_float(dy.v[k]);
            db[k] += to_float(dy.v[k]);
        }
    }
#pragma unroll
    for (int k = 0; k < W; k++) {
        group_sums[0][group][k][lane] = dw[k];
        group_sums[1][group][k][lane] = db[k];
    }
    __syncthreads();
    if (group != 0 || c >= C) return;
    float* out = partial + (size_t)blockIdx.y * 2 * C + c;
#pragma unroll
    for (int k = 0; k < W; k++) {
        float dw_sum = 0.0f, db_sum = 0.0f;
        for (int g = 0; g < LN_GROUPS; g++) {
            dw_sum += group_sums[0][g][k][lane];
            db_sum += group_sums[1][g][k][lane];
        }
        out[k] = dw_sum;
        out[C + k] = db_sum;
    }
}

// dweight, dbias (C) += the chunk partial sums, added in chunk order; one thread per channel.
__global__ void layernorm_backward_params_kernel(floatD* dweight, floatD* dbias, const float* partial, int chunks,
                                                 int C) {
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += gridDim.x * blockDim.x) {
        float dw = 0.0f, db = 0.0f;
        for (int chunk = 0; chunk < chunks; chunk++) {
            dw += partial[(size_t)chunk * 2 * C + c];
            db += partial[(size_t)chunk * 2 * C + C + c];
        }
        dweight[c] = from_float(to_float(dweight[c]) + dw);
        dbias[c] = from_float(to_float(dbias[c]) + db);
    }
}

template <int W>
void layernorm_backward_packs(floatD* dinp, floatD* dweight, floatD* dbias, const floatD* dout, const floatD* inp,
                              const floatD* weight, const float* mean, const float* rstd, int N, int C) {
    layernorm_backward_dinp_kernel<W><<<ceil_div(N, LN_ROWS_PER_BLOCK), LN_THREADS>>>(dinp, dout, inp, weight, mean,
                                                                                      rstd, N, C);
    cuda_check_launch();
    int chunks = ceil_div(N, LN_CHUNK_ROWS);
    float* partial = nullptr;
    cuda_check(cudaMallocAsync(&partial, (size_t)chunks * 2 * C * sizeof(float), 0));
    dim3 grid(ceil_div(C, 32 * W), chunks);
    layernorm_backward_partial_kernel<W><<<grid, 32 * LN_GROUPS>>>(partial, dout, inp, mean, rstd, N, C);
    cuda_check_launch();
    layernorm_backward_params_kernel<<<ceil_div(C, LN_THREADS), LN_THREADS>>>(dweight, dbias, partial, chunks, C);
    cuda_check_launch();
    cuda_check(cudaFreeAsync(partial, 0));
}

}  // namespace

void layernorm_forward_cuda(floatX* out, float* mean, float* rstd, const floatX* inp, const floatX* weight,
                            const floatX* bias, int N, int C) {
    bool packed = C % X128 == 0 && aligned16(out) && aligned16(inp) && aligned16(weight) && aligned16(bias);
    int blocks = ceil_div(N, LN_ROWS_PER_BLOCK);
    if (packed)
        layernorm_forward_kernel<X128><<<blocks, LN_THREADS>>>(as_device(out), mean, rstd, as_device(inp),
                                                               as_device(weight), as_device(bias), N, C);
    else
        layernorm_forward_kernel<1><<<blocks, LN_THREADS>>>(as_device(out), mean, rstd, as_device(inp),
                                                            as_device(weight), as_device(bias), N, C);
    cuda_check_launch();
}

// residual (N,C) = inp1 + inp2 (may alias inp2), out = LayerNorm(residual): one kernel, one warp per row.
void residual_layernorm_forward_cuda(floatX* residual, floatX* out, float* mean, float* rstd, const floatX* inp1,
                                     const floatX* inp2, const floatX* weight, const floatX* bias, int N, int C) {
    bool packed = C % X128 == 0 && aligned16(residual) && aligned16(out) && aligned16(inp1) && aligned16(inp2) &&
                  aligned16(weight) && aligned16(bias);
    int blocks = ceil_div(N, LN_ROWS_PER_BLOCK);
    if (packed)
        layernorm_forward_kernel<X128><<<blocks, LN_THREADS>>>(as_device(out), mean, rstd, as_device(inp2),
                                                               as_device(weight), as_device(bias), N, C,
                                                               as_device(residual), as_device(inp1));
    else
        layernorm_forward_kernel<1><<<blocks, LN_THREADS>>>(as_device(out), mean, rstd, as_device(inp2),
                                                            as_device(weight), as_device(bias), N, C,
                                                            as_device(residual), as_device(inp1));
    cuda_check_launch();
}

void layernorm_backward_cuda(floatX* dinp, floatX* dweight, floatX* dbias, const floatX* dout, const floatX* inp,
                             const floatX* weight, const float* mean, const float* rstd, int N, int C) {
    bool packed = C % X128 == 0 && aligned16(dinp) && aligned16(dout) && aligned16(inp) && aligned16(weight);
    if (packed)
        layernorm_backward_packs<X128>(as_device(dinp), as_device(dweight), as_device(dbias), as_device(dout),
                                       as_device(inp), as_device(weight), mean, rstd, N, C);
    else
        layernorm_backward_packs<1>(as_device(dinp), as_device(dweight), as_device(dbias), as_device(dout),
                                    as_device(inp), as_device(weight), mean, rstd, N, C);
}
