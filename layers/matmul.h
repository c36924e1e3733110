// The linear layer: out = inp @ weight^T + bias (weight (OC,C) as torch.nn.Linear stores it, bias
// optional), its backward, and the forward with a GELU after it (the MLP's first layer).
// matmul.c holds the CPU kernels (fp32, host memory: one hand-written SGEMM, OpenMP), matmul.cu their
// CUDA twins (cuBLASLt, the project's one library call, with its bias and GELU epilogues): the same
// arguments with the suffix _cuda, device pointers, floatX tensors (common/floatx.h). A twin is
// declared through its function type (MatmulForwardFn, ...), which also types the kernel table's
// entry (model/kernels.h). Arguments: outputs first, inputs next, sizes last.
// The backward ACCUMULATES (+=) into dinp, dweight, dbias. No atomics; the bias gradient is summed in
// a fixed order that depends only on the sizes, so the results are bitwise reproducible.
#pragma once
#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

// out (N,OC) from inp (N,C), weight (OC,C), bias (OC) or NULL
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC);
typedef void MatmulForwardFn(floatX* out, const floatX* inp, const floatX* weight, const floatX* bias, int N, int C,
                             int OC);
MatmulForwardFn matmul_forward_cuda;

// dinp (N,C) or NULL, dweight (OC,C), dbias (OC) or NULL += from dout (N,OC), inp (N,C), weight (OC,C)
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC);
typedef void MatmulBackwardFn(floatX* dinp, floatX* dweight, floatX* dbias, const floatX* dout, const floatX* inp,
                              const floatX* weight, int N, int C, int OC);
MatmulBackwardFn matmul_backward_cuda;

// out_gelu = gelu(pre_gelu), pre_gelu (N,OC) = the matmul of inp (N,C), weight (OC,C), bias (OC) or NULL;
// exact as in gelu_forward (layers/gelu.h): 0 the tanh GELU (cuBLASLt's epilogue), 1 the erf GELU
void matmul_gelu_forward(float* out_gelu, float* pre_gelu, const float* inp, const float* weight, const float* bias,
                         int N, int C, int OC, int exact);
typedef void MatmulGeluForwardFn(floatX* out_gelu, floatX* pre_gelu, const floatX* inp, const floatX* weight,
                                 const floatX* bias, int N, int C, int OC, int exact);
MatmulGeluForwardFn matmul_gelu_forward_cuda;

#ifdef __cplusplus
}
#endif
