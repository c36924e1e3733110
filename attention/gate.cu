// The output gate of gated attention G1 (Qiu et al. 2025; docs/MODEL.md section 7) on the GPU, the
// twin of attention/gate.c: out = O * sigmoid(z), one gate per head (headwise) or per channel
// (elementwise), the sigmoid fused into the product (z is read once, g never stored). g and 1 - g
// come from sigmoid_pair (common/fastmath.h), as on the CPU. Forward and elementwise backward: one
// thread per element (grid-stride). Headwise backward: one warp per (row, head), whose dz is the
// warp sum of dO' * O over the head's channels; every output element has one owner, no atomics.
#include "attention/gate.h"
#include "common/fastmath.h"
#include "common/reduce.cuh"

#define GATE_THREADS 256

namespace {

// out (N,C) = inp * sigmoid(gate_preact); the gate of element i is i / hs (headwise) or i.
__global__ void gate_forward_kernel(floatD* out, const floatD* inp, const floatD* gate_preact, long total, int hs,
                                    int headwise) {
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        float g, omg;
        sigmoid_pair(to_float(gate_preact[headwise ? i / hs : i]), &g, &omg);
        out[i] = from_float(to_float(inp[i]) * g);
    }
}

// Elementwise: dinp += dout * g, dgate_preact += g (1 - g) dout inp, per element.
__global__ void gate_backward_elementwise_kernel(floatD* dinp, floatD* dgate_preact, const floatD* dout,
                                                 const floatD* inp, const floatD* gate_preact, long total) {
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        float g, omg, dy = to_float(dout[i]);
        sigmoid_pair(to_float(gate_preact[i]), &g, &omg);
        dinp[i] = from_float(to_float(dinp[i]) + dy * g);
        dgate_preact[i] = from_float(to_float(dgate_preact[i]) + g * omg * dy * to_float(inp[i]));
    }
}

// Headwise: one warp per (row, head) = gate index: dinp += dout * g over the head's hs channels,
// dgate_preact += g (1 - g) sum(dout * inp).
__global__ void __launch_bounds__(GATE_THREADS)
    gate_backward_headwise_kernel(floatD* dinp, floatD* dgate_preact, const floatD* dout, const floatD* inp,
                                  const floatD* gate_preact, long gates, int hs) {
    long gate = (long)blockIdx.x * (GATE_THREADS / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (gate >= gates) return;   // whole warps only
    float g, omg;
    sigmoid_pair(to_float(gate_preact[gate]), &g, &omg);
    size_t at = (size_t)gate * hs;   // row n, head h: channels n C + h hs = (n NH + h) hs
    float dot = 0.0f;
    for (int c = lane; c < hs; c += 32) {
        float dy = to_float(dout[at + c]);
        dot += dy * to_float(inp[at + c]);
        dinp[at + c] = from_float(to_float(dinp[at + c]) + dy * g);
    }
    dot = warp_reduce_sum(dot);
    if (lane == 0) dgate_preact[gate] = from_float(to_float(dgate_preact[gate]) + g * omg * dot);
}

}  // namespace

void gate_forward_cuda(floatX* out, const floatX* inp, const floatX* gate_preact, int N, int NH, int hs,
                       int headwise) {
    long total = (long)N * NH * hs;
    if (total == 0) return;
    gate_forward_kernel<<<grid_blocks(total, GATE_THREADS), GATE_THREADS>>>(as_device(out), as_device(inp),
                                                                            as_device(gate_preact), total, hs,
                                                                            headwise);
    cuda_check_launch();
}

void gate_backward_cuda(floatX* dinp, floatX* dgate_preact, const floatX* dout, const floatX* inp,
                        const floatX* gate_preact, int N, int NH, int hs, int headwise) {
    long total = (long)N * NH * hs;
    if (total == 0) return;
    if (headwise)
        gate_backward_headwise_kernel<<<ceil_div((long)N * NH, GATE_THREADS / 32), GATE_THREADS>>>(
            as_device(dinp), as_device(dgate_preact), as_device(dout), as_device(inp), as_device(gate_preact),
            (long)N * NH, hs);
    else
        gate_backward_elementwise_kernel<<<grid_blocks(total, GATE_THREADS), GATE_THREADS>>>(
            as_device(dinp), as_device(dgate_preact), as_device(dout), as_device(inp), as_device(gate_preact), total);
    cuda_check_launch();
}
