// SwiGLU's activation (Shazeer 2020; mlp=swiglu), the MLP of LLaMA: each row of inp holds [gate | up]
// (hidden each, from one matmul), out = silu(gate) * up with silu(g) = g * sigmoid(g).
// swiglu.c holds the CPU kernels (fp32, host memory, OpenMP), swiglu.cu their CUDA twins: the same
// arguments with the suffix _cuda, device pointers, floatX tensors (common/floatx.h), fp32 math. A
// twin is declared through its function type (SwigluForwardFn, ...), which also types the kernel
// table's entry (model/kernels.h). Arguments: outputs first, inputs next, sizes last.
// The backward ACCUMULATES (+=) the gradients of gate and up. Elementwise: deterministic.
#pragma once
#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

// out (N,hidden) from inp (N, 2*hidden)
void swiglu_forward(float* out, const float* inp, int N, int hidden);
typedef void SwigluForwardFn(floatX* out, const floatX* inp, int N, int hidden);
SwigluForwardFn swiglu_forward_cuda;

// dinp (N, 2*hidden) += from inp (N, 2*hidden), dout (N,hidden)
void swiglu_backward(float* dinp, const float* inp, const float* dout, int N, int hidden);
typedef void SwigluBackwardFn(floatX* dinp, const floatX* inp, const floatX* dout, int N, int hidden);
SwigluBackwardFn swiglu_backward_cuda;

#ifdef __cplusplus
}
#endif
