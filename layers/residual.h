// The residual connection: out = inp1 + inp2, and its backward, which adds dout to both input
// gradients (dinp1 == dinp2 adds it twice). The residual add fused with the norm after it is in
// layers/layernorm.h and layers/rmsnorm.h.
// residual.c holds the CPU kernels (fp32, host memory, OpenMP), residual.cu their CUDA twins: the
// same arguments with the suffix _cuda, device pointers, floatX tensors (common/floatx.h), fp32 math.
// A twin is declared through its function type (ResidualForwardFn, ...), which also types the kernel
// table's entry (model/kernels.h; the graph has no use for residual_backward: in the model the
// gradient of a residual stream flows through unchanged). Arguments: outputs first, inputs next,
// sizes last.
// The backward ACCUMULATES (+=). Elementwise: deterministic.
#pragma once
#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

// out (N) from inp1, inp2 (N)
void residual_forward(float* out, const float* inp1, const float* inp2, int N);
typedef void ResidualForwardFn(floatX* out, const floatX* inp1, const floatX* inp2, int N);
ResidualForwardFn residual_forward_cuda;

// dinp1, dinp2 (N) += dout (N)
void residual_backward(float* dinp1, float* dinp2, const float* dout, int N);
typedef void ResidualBackwardFn(floatX* dinp1, floatX* dinp2, const floatX* dout, int N);
ResidualBackwardFn residual_backward_cuda;

#ifdef __cplusplus
}
#endif
