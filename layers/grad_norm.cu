// Sum of squares of a gradient tensor for global-norm clipping on the GPU, the twin of
// layers/grad_norm.c. Deterministic in two passes: NORM_BLOCKS blocks (a constant, not the GPU's SM
// count) each sum a fixed grid-stride share of the values in double, reduced within the block in a
// fixed order into one partial per block (a scratch buffer, cudaMallocAsync per call); one block
// then adds the partials in a fixed order and OVERWRITES out[0] (float). The split depends only on
// N, so every run on every GPU gives the same bits. Values are read as 128-bit packs when aligned.
#include <cstdint>

#include "common/cuda_common.cuh"
#include "layers/grad_norm.h"

#define NORM_BLOCKS 512
#define NORM_THREADS 512

namespace {

// A pack of W floatD moved by one load; W = X128 makes it 128 bits.

// Sum over the block, in every thread: butterfly within warps, then the warp sums in warp order.
// One call per kernel (its shared buffer is not reused).
__device__ double block_sum(double v) {
    __shared__ double warp_sums[NORM_THREADS / 32];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = v;
    __syncthreads();
    double sum = 0.0;
    for (int w = 0; w < (int)blockDim.x / 32; w++) sum += warp_sums[w];
    return sum;
}

// partial[block] = sum of squares of the block's share of values (N): thread i takes elements
// i*W .. i*W+W-1 of each grid-wide stride (the tail one by one).
template <int W>
__global__ void __launch_bounds__(NORM_THREADS) norm_partial_kernel(double* partial, const floatD* values, size_t N) {
    double acc = 0.0;
    size_t stride = (size_t)gridDim.x * blockDim.x * W;
    for (size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * W; i < N; i += stride) {
        if (i + W > N) {
            for (size_t j = i; j < N; j++) acc += (double)to_float(values[j]) * to_float(values[j]);
            continue;
        }
        Pack<W> x = load_pack<W>(values + i);
#pragma unroll
        for (int k = 0; k < W; k++) acc += (double)to_float(x.v[k]) * to_float(x.v[k]);
    }
    double sum = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

// out[0] = the sum of the partials (count); one block.
__global__ void __launch_bounds__(NORM_THREADS) norm_final_kernel(float* out, const double* partial, int count) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
    double sum = block_sum(acc);
    if (threadIdx.x == 0) out[0] = (float)sum;
}

}  // namespace

void global_norm_squared_cuda(float* out, const floatX* values, size_t N) {
    double* partial = nullptr;
    cuda_check(cudaMallocAsync(&partial, NORM_BLOCKS * sizeof(double), 0));
    if (aligned16(values))
        norm_partial_kernel<X128><<<NORM_BLOCKS, NORM_THREADS>>>(partial, as_device(values), N);
    else
        norm_partial_kernel<1><<<NORM_BLOCKS, NORM_THREADS>>>(partial, as_device(values), N);
    cuda_check_launch();
    norm_final_kernel<<<1, NORM_THREADS>>>(out, partial, NORM_BLOCKS);
    cuda_check_launch();
    cuda_check(cudaFreeAsync(partial, 0));
}
