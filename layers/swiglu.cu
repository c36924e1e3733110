// SwiGLU's activation on the GPU (mlp=swiglu), the twin of layers/swiglu.c: the rows of inp hold
// [gate | up] (hidden each), out = silu(gate) * up, and the backward dgate += dout up s (1 + g (1 - s)),
// dup += dout g s, with s = sigmoid(g) and 1 - s both from exp(-|g|) (sigmoid_pair of
// common/fastmath.h, the device's fast exp). Elementwise, fp32 math, one thread per output element
// (grid-stride).
#include "common/cuda_common.cuh"
#include "common/fastmath.h"
#include "layers/swiglu.h"

#define SWIGLU_THREADS 256

namespace {

// out (N,hidden) = silu(inp[:, :hidden]) * inp[:, hidden:].
__global__ void swiglu_forward_kernel(floatD* out, const floatD* inp, long total, int hidden) {
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        long row = i / hidden, j = i % hidden;
        float g = to_float(inp[row * 2 * hidden + j]), up = to_float(inp[row * 2 * hidden + hidden + j]), s, one_minus_s;
        sigmoid_pair(g, &s, &one_minus_s);
        out[i] = from_float(g * s * up);
    }
}

// dinp (N, 2 hidden) += the gate and up gradients of dout (N,hidden).
__global__ void swiglu_backward_kernel(floatD* dinp, const floatD* inp, const floatD* dout, long total, int hidden) {
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        long row = i / hidden, j = i % hidden, gate_at = row * 2 * hidden + j, up_at = gate_at + hidden;
        float g = to_float(inp[gate_at]), up = to_float(inp[up_at]), dy = to_float(dout[i]), s, one_minus_s;
        sigmoid_pair(g, &s, &one_minus_s);
        dinp[gate_at] = from_float(to_float(dinp[gate_at]) + dy * up * s * (1.0f + g * one_minus_s));
        dinp[up_at] = from_float(to_float(dinp[up_at]) + dy * g * s);
    }
}

}  // namespace

void swiglu_forward_cuda(floatX* out, const floatX* inp, int N, int hidden) {
    long total = (long)N * hidden;
    if (total == 0) return;
    swiglu_forward_kernel<<<grid_blocks(total, SWIGLU_THREADS), SWIGLU_THREADS>>>(as_device(out), as_device(inp), total,
                                                                                  hidden);
    cuda_check_launch();
}

void swiglu_backward_cuda(floatX* dinp, const floatX* inp, const floatX* dout, int N, int hidden) {
    long total = (long)N * hidden;
    if (total == 0) return;
    swiglu_backward_kernel<<<grid_blocks(total, SWIGLU_THREADS), SWIGLU_THREADS>>>(as_device(dinp), as_device(inp),
                                                                                   as_device(dout), total, hidden);
    cuda_check_launch();
}
