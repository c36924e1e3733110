// LayerNorm over the last dim (Ba et al. 2016), as torch.nn.functional.layer_norm: eps 1e-5, biased
// variance, out = (inp - mean) * rstd * weight + bias, mean and rstd (float) saved per row for the
// backward; and the residual add fused with it (residual = inp1 + inp2, then its LayerNorm).
// layernorm.c holds the CPU kernels (fp32, host memory, OpenMP), layernorm.cu their CUDA twins: the
// same arguments with the suffix _cuda, device pointers, floatX tensors (common/floatx.h), float
// statistics. A twin is declared through its function type (LayernormForwardFn, ...), which also
// types the kernel table's entry (model/kernels.h). Arguments: outputs first, inputs next, sizes last.
// The backward ACCUMULATES (+=). No atomics: the CPU adds per-thread partial sums of dweight, dbias in
// thread order (deterministic for a given thread count), the GPU sums fixed chunks of rows in chunk
// order (the same bits on every GPU).
#pragma once
#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

// out (N,C), mean, rstd (N) from inp (N,C), weight, bias (C)
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int N, int C);
typedef void LayernormForwardFn(floatX* out, float* mean, float* rstd, const floatX* inp, const floatX* weight,
                                const floatX* bias, int N, int C);
LayernormForwardFn layernorm_forward_cuda;

// dinp (N,C), dweight, dbias (C) += from dout, inp (N,C), weight (C), mean, rstd (N)
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int N, int C);
typedef void LayernormBackwardFn(floatX* dinp, floatX* dweight, floatX* dbias, const floatX* dout, const floatX* inp,
                                 const floatX* weight, const float* mean, const float* rstd, int N, int C);
LayernormBackwardFn layernorm_backward_cuda;

// residual (N,C) = inp1 + inp2 (residual may alias inp2), out (N,C), mean, rstd (N) its LayerNorm with weight, bias (C)
void residual_layernorm_forward(float* residual, float* out, float* mean, float* rstd, const float* inp1,
                                const float* inp2, const float* weight, const float* bias, int N, int C);
typedef void ResidualLayernormForwardFn(floatX* residual, floatX* out, float* mean, float* rstd, const floatX* inp1,
                                        const floatX* inp2, const floatX* weight, const floatX* bias, int N, int C);
ResidualLayernormForwardFn residual_layernorm_forward_cuda;

#ifdef __cplusplus
}
#endif
