// GELU with the tanh approximation on the GPU, the twin of layers/gelu.c: gelu(x) = x * sigmoid(2u),
// u = sqrt(2/pi) (x + 0.044715 x^3), and the same derivative s + 2 x s (1 - s) u'(x) with
// 1 - s = s exp(-2u). The exponent is clamped at 88 as fast_exp clamps it on the CPU, so a very
// negative x gives 0 and its gradient stays finite (no inf * 0). With exact = 1 the erf form x Phi(x)
// and its derivative Phi(x) + x phi(x), from common/fastmath.h's normal_cdf_gauss (normcdff and
// exp_minus_half_square on the device), as the CPU. Elementwise, fp32 math; one thread per 128-bit
// pack of the tensor when the pointers allow it, else per element.
#include <cstdint>

#include "common/cuda_common.cuh"
#include "common/fastmath.h"
#include "layers/gelu.h"

#define GELU_SCALE 0.7978845608028654f   // sqrt(2/pi)
#define GELU_CUBE 0.044715f
#define GELU_THREADS 256
#define INV_SQRT_2PI 0.3989422804014327f   // 1/sqrt(2 pi)

namespace {


// exp(-2u), clamped as fast_exp is.
__device__ float exp_minus_2u(float x) {
    return expf(fminf(-2.0f * GELU_SCALE * (x + GELU_CUBE * x * x * x), 88.0f));
}
__device__ float gelu(float x, bool exact) {
    if (exact) return x * normal_cdf(x);
    return x / (1.0f + exp_minus_2u(x));
}
__device__ float gelu_grad(float x, bool exact) {
    if (exact) {
        float gauss, cdf = normal_cdf_gauss(x, &gauss);
        return cdf + x * INV_SQRT_2PI * gauss;
    }
    float e = exp_minus_2u(x), s = 1.0f / (1.0f + e);
    float du = GELU_SCALE * (1.0f + 3.0f * GELU_CUBE * x * x);
    return s + 2.0f * x * s * s * e * du;
}

// out (N) = gelu(inp); thread i takes elements i*W .. i*W+W-1 (the tail one by one).
template <int W>
__global__ void gelu_forward_kernel(floatD* out, const floatD* inp, int N, bool exact) {
    for (long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * W; i < N; i += (long)gridDim.x * blockDim.x * W) {
        if (i + W > N) {
            for (long j = i; j < N; j++) out[j] = from_float(gelu(to_float(inp[j]), exact));
            continue;
        }
        Pack<W> x = load_pack<W>(inp + i), y;
#pragma unroll
        for (int k = 0; k < W; k++) y.v[k] = from_float(gelu(to_float(x.v[k]), exact));
        store_pack<W>(out + i, y);
    }
}

// dinp (N) += gelu'(inp) * dout.
template <int W>
__global__ void gelu_backward_kernel(floatD* dinp, const floatD* inp, const floatD* dout, int N, bool exact) {
    for (long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * W; i < N; i += (long)gridDim.x * blockDim.x * W) {
        if (i + W > N) {
            for (long j = i; j < N; j++)
                dinp[j] = from_float(to_float(dinp[j]) + gelu_grad(to_float(inp[j]), exact) * to_float(dout[j]));
            continue;
        }
        Pack<W> x = load_pack<W>(inp + i), dy = load_pack<W>(dout + i), dx = load_pack<W>(dinp + i);
#pragma unroll
        for (int k = 0; k < W; k++)
            dx.v[k] = from_float(to_float(dx.v[k]) + gelu_grad(to_float(x.v[k]), exact) * to_float(dy.v[k]));
        store_pack<W>(dinp + i, dx);
    }
}

}  // namespace

void gelu_forward_cuda(floatX* out, const floatX* inp, int N, int exact) {
    if (aligned16(out) && aligned16(inp))
        gelu_forward_kernel<X128><<<grid_blocks(ceil_div(N, X128), GELU_THREADS), GELU_THREADS>>>(
            as_device(out), as_device(inp), N, exact);
    else
        gelu_forward_kernel<1><<<grid_blocks(N, GELU_THREADS), GELU_THREADS>>>(as_device(out), as_device(inp), N,
                                                                               exact);
    cuda_check_launch();
}

void gelu_backward_cuda(floatX* dinp, const floatX* inp, const floatX* dout, int N, int exact) {
    if (aligned16(dinp) && aligned16(inp) && aligned16(dout))
        gelu_backward_kernel<X128><<<grid_blocks(ceil_div(N, X128), GELU_THREADS), GELU_THREADS>>>(
            as_device(dinp), as_device(inp), as_device(dout), N, exact);
    else
        gelu_backward_kernel<1><<<grid_blocks(N, GELU_THREADS), GELU_THREADS>>>(
            as_device(dinp), as_device(inp), as_device(dout), N, exact);
    cuda_check_launch();
}
