// GELU, the GPT-2 MLP nonlinearity, elementwise: exact 0 the tanh approximation (GPT-2's,
// torch.nn.functional.gelu(x, approximate='tanh')): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)));
// exact 1 the erf form x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (gelu=erf). The matmul with a GELU
// after it is matmul_gelu_forward (layers/matmul.h).
// gelu.c holds the CPU kernels (fp32, host memory, OpenMP), gelu.cu their CUDA twins: the same
// arguments with the suffix _cuda, device pointers, floatX tensors (common/floatx.h), fp32 math. A
// twin is declared through its function type (GeluForwardFn, ...), which also types the kernel
// table's entry (model/kernels.h). Arguments: outputs first, inputs next, sizes last.
// The backward ACCUMULATES (+=). Elementwise: deterministic.
#pragma once
#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

// out (N) from inp (N)
void gelu_forward(float* out, const float* inp, int N, int exact);
typedef void GeluForwardFn(floatX* out, const floatX* inp, int N, int exact);
GeluForwardFn gelu_forward_cuda;

// dinp (N) += gelu'(inp) * dout, from inp, dout (N)
void gelu_backward(float* dinp, const float* inp, const float* dout, int N, int exact);
typedef void GeluBackwardFn(floatX* dinp, const floatX* inp, const floatX* dout, int N, int exact);
GeluBackwardFn gelu_backward_cuda;

#ifdef __cplusplus
}
#endif
