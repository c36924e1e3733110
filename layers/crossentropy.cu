// The fused classifier on the GPU, the twin of layers/crossentropy.c: per row of logits (N,Vp),
// of which the first V columns are real, the loss -log softmax[target] and, if dlogits is not NULL,
// dlogits = (softmax - onehot(target)) * dloss in the first V columns and 0 in the padding. One
// block per row, two passes over the row and no probability buffer: (1) each thread keeps an online
// (max, sum of exp(x - max)) over its columns, merged across the block in a fixed order (fp32);
// (2) each thread recomputes exp(x - max) / sum for its columns and writes the gradient in place.
// dlogits may alias logits: every thread reads the target logit and finishes pass 1 before the
// block barrier in the merge, and in pass 2 each element is read and written by the same thread.
// The padding is never read into the math, only written (zeros).
#include <cmath>
#include <cstdint>

#include "common/cuda_common.cuh"
#include "layers/crossentropy.h"

#define CE_THREADS 512

namespace {


// A softmax normaliser over some columns: their max and the sum of exp(x - max). Empty: {-inf, 0}.
struct MaxSum {
    float max, sum;
};

__device__ void add_logit(MaxSum& a, float x) {
    if (x > a.max) {
        a.sum = a.sum * expf(a.max - x) + 1.0f;
        a.max = x;
    } else {
        a.sum += expf(x - a.max);
    }
}

__device__ MaxSum merge(MaxSum a, MaxSum b) {
    float m = fmaxf(a.max, b.max);
    if (m == -INFINITY) return a;   // both empty
    return {m, a.sum * expf(a.max - m) + b.sum * expf(b.max - m)};
}

// The normaliser of the whole block, in every thread: a butterfly within each warp (lane 0's result
// stands for the warp), then the warp results merged in warp order. One call per block (its shared
// buffer is not reused).
__device__ MaxSum block_merge(MaxSum v) {
    __shared__ MaxSum warp_results[CE_THREADS / 32];
    for (int offset = 16; offset > 0; offset /= 2)
        v = merge(v, {__shfl_xor_sync(0xffffffffu, v.max, offset), __shfl_xor_sync(0xffffffffu, v.sum, offset)});
    if (threadIdx.x % 32 == 0) warp_results[threadIdx.x / 32] = v;
    __syncthreads();
    MaxSum all = warp_results[0];
    for (int w = 1; w < (int)blockDim.x / 32; w++) all = merge(all, warp_results[w]);
    return all;
}

// Row blockIdx.x: losses[row]; dlogits (row, Vp) unless NULL. Thread t takes packs t, t+blockDim, ...
template <int W>
__global__ void __launch_bounds__(CE_THREADS)
    crossentropy_kernel(float* losses, floatD* dlogits, const floatD* logits, const int* targets, float dloss, int V,
                        int Vp) {
    size_t row = blockIdx.x;
    const floatD* x = logits + row * Vp;
    int target = targets[row];
    float target_logit = to_float(x[target]);   // before dlogits, which may be logits, is written
    MaxSum local = {-INFINITY, 0.0f};
    for (int c = threadIdx.x * W; c < V; c += blockDim.x * W) {
        Pack<W> p = load_pack<W>(x + c);
#pragma unroll
        for (int k = 0; k < W; k++)
            if (c + k < V) add_logit(local, to_float(p.v[k]));
    }
    MaxSum all = block_merge(local);   // a block barrier: all reads of pass 1 are done
    if (threadIdx.x == 0) losses[row] = logf(all.sum) - (target_logit - all.max);
    if (!dlogits) return;
    float scale = dloss / all.sum;
    floatD* dx = dlogits + row * Vp;
    for (int c = threadIdx.x * W; c < Vp; c += blockDim.x * W) {
        Pack<W> p = c < V ? load_pack<W>(x + c) : Pack<W>{}, g;
#pragma unroll
        for (int k = 0; k < W; k++) {
            int col = c + k;
            float grad = col < V ? expf(to_float(p.v[k]) - all.max) * scale - (col == target ? dloss : 0.0f) : 0.0f;
            g.v[k] = from_float(grad);
        }
        store_pack<W>(dx + c, g);
    }
}

}  // namespace

void crossentropy_forward_backward_cuda(float* losses, floatX* dlogits, const floatX* logits, const int* targets,
                                        float dloss, int N, int V, int Vp) {
    if (Vp % X128 == 0 && aligned16(logits) && aligned16(dlogits))   // aligned16(NULL) holds
        crossentropy_kernel<X128><<<N, CE_THREADS>>>(losses, as_device(dlogits), as_device(logits), targets, dloss, V,
                                                     Vp);
    else
        crossentropy_kernel<1><<<N, CE_THREADS>>>(losses, as_device(dlogits), as_device(logits), targets, dloss, V, Vp);
    cuda_check_launch();
}
