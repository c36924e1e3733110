// Residual connection on the GPU, the twin of layers/residual.c: out = inp1 + inp2, and the
// backward that adds dout to both input gradients. Elementwise, fp32 math; one thread per 128-bit
// pack of the tensor when the pointers allow it, else per element. The backward updates dinp1 and
// then dinp2 from the same thread, so dinp1 == dinp2 adds dout twice, as on the CPU.
#include <cstdint>

#include "common/cuda_common.cuh"
#include "layers/residual.h"

#define RESIDUAL_THREADS 256

namespace {


// out (N) = inp1 + inp2; thread i takes elements i*W .. i*W+W-1 (the tail one by one).
template <int W>
__global__ void residual_forward_kernel(floatD* out, const floatD* inp1, const floatD* inp2, int N) {
    for (long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * W; i < N; i += (long)gridDim.x * blockDim.x * W) {
        if (i + W > N) {
            for (long j = i; j < N; j++) out[j] = from_float(to_float(inp1[j]) + to_float(inp2[j]));
            continue;
        }
        Pack<W> a = load_pack<W>(inp1 + i), b = load_pack<W>(inp2 + i), o;
#pragma unroll
        for (int k = 0; k < W; k++) o.v[k] = from_float(to_float(a.v[k]) + to_float(b.v[k]));
        store_pack<W>(out + i, o);
    }
}

// dinp (N) += dout, for one input gradient.
template <int W>
__device__ void add_pack(floatD* dinp, const Pack<W>& dy) {
    Pack<W> dx = load_pack<W>(dinp);
#pragma unroll
    for (int k = 0; k < W; k++) dx.v[k] = from_float(to_float(dx.v[k]) + to_float(dy.v[k]));
    store_pack<W>(dinp, dx);
}

// dinp1, dinp2 (N) += dout.
template <int W>
__global__ void residual_backward_kernel(floatD* dinp1, floatD* dinp2, const floatD* dout, int N) {
    for (long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * W; i < N; i += (long)gridDim.x * blockDim.x * W) {
        if (i + W > N) {
            for (long j = i; j < N; j++) {
                dinp1[j] = from_float(to_float(dinp1[j]) + to_float(dout[j]));
                dinp2[j] = from_float(to_float(dinp2[j]) + to_float(dout[j]));
            }
            continue;
        }
        Pack<W> dy = load_pack<W>(dout + i);
        add_pack<W>(dinp1 + i, dy);
        add_pack<W>(dinp2 + i, dy);
    }
}

}  // namespace

void residual_forward_cuda(floatX* out, const floatX* inp1, const floatX* inp2, int N) {
    if (aligned16(out) && aligned16(inp1) && aligned16(inp2))
        residual_forward_kernel<X128><<<grid_blocks(ceil_div(N, X128), RESIDUAL_THREADS), RESIDUAL_THREADS>>>(
            as_device(out), as_device(inp1), as_device(inp2), N);
    else
        residual_forward_kernel<1><<<grid_blocks(N, RESIDUAL_THREADS), RESIDUAL_THREADS>>>(
            as_device(out), as_device(inp1), as_device(inp2), N);
    cuda_check_launch();
}

void residual_backward_cuda(floatX* dinp1, floatX* dinp2, const floatX* dout, int N) {
    if (aligned16(dinp1) && aligned16(dinp2) && aligned16(dout))
        residual_backward_kernel<X128><<<grid_blocks(ceil_div(N, X128), RESIDUAL_THREADS), RESIDUAL_THREADS>>>(
            as_device(dinp1), as_device(dinp2), as_device(dout), N);
    else
        residual_backward_kernel<1><<<grid_blocks(N, RESIDUAL_THREADS), RESIDUAL_THREADS>>>(
            as_device(dinp1), as_device(dinp2), as_device(dout), N);
    cuda_check_launch();
}
