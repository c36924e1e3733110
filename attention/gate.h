// The output gate of gated attention, position G1 (Qiu et al. 2025; docs/MODEL.md section 7): the
// attention output of each head times a sigmoid gate, out = inp * sigmoid(gate_preact), C = NH*hs,
// with gate_preact (N,G) headwise (G = NH: one gate per head, broadcast over its hs channels) or
// elementwise (G = C: one per channel). out may not alias inp.
// gate.c holds the CPU kernels (fp32, host memory, OpenMP), gate.cu their CUDA twins (the sigmoid
// fused into the product): the same arguments with the suffix _cuda, device pointers, floatX tensors
// (common/floatx.h), fp32 math. A twin is declared through its function type (GateForwardFn, ...),
// which also types the kernel table's entry (model/kernels.h). Arguments: outputs first, inputs next,
// sizes last.
// The backward ACCUMULATES (+=): dinp += dout * g, dgate_preact += g (1 - g) dout * inp (headwise:
// summed over the head's channels). Every output element has one owner: deterministic, no atomics.
#pragma once
#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

// out (N,C) from inp (N,C), gate_preact (N,G)
void gate_forward(float* out, const float* inp, const float* gate_preact, int N, int NH, int hs, int headwise);
typedef void GateForwardFn(floatX* out, const floatX* inp, const floatX* gate_preact, int N, int NH, int hs,
                           int headwise);
GateForwardFn gate_forward_cuda;

// dinp (N,C), dgate_preact (N,G) += from dout, inp (N,C), gate_preact (N,G)
void gate_backward(float* dinp, float* dgate_preact, const float* dout, const float* inp, const float* gate_preact,
                   int N, int NH, int hs, int headwise);
typedef void GateBackwardFn(floatX* dinp, floatX* dgate_preact, const floatX* dout, const floatX* inp,
                            const floatX* gate_preact, int N, int NH, int hs, int headwise);
GateBackwardFn gate_backward_cuda;

#ifdef __cplusplus
}
#endif
