// RMSNorm over the last dim (Zhang & Sennrich 2019; ln=rms), eps 1e-5, weight only: out = inp * rstd
// * weight with rstd = 1/sqrt(mean(inp^2) + eps) (float) saved per row; and the residual add fused
// with it (residual = inp1 + inp2, then its RMSNorm).
// rmsnorm.c holds the CPU kernels (fp32, host memory, OpenMP), rmsnorm.cu their CUDA twins: the same
// arguments with the suffix _cuda, device pointers, floatX tensors (common/floatx.h), float
// statistics. A twin is declared through its function type (RmsnormForwardFn, ...), which also types
// the kernel table's entry (model/kernels.h). Arguments: outputs first, inputs next, sizes last.
// The backward ACCUMULATES (+=). No atomics: the CPU adds per-thread partial sums of dweight in
// thread order (deterministic for a given thread count), the GPU sums columns in a fixed order.
#pragma once
#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

// out (N,C), rstd (N) from inp (N,C), weight (C)
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C);
typedef void RmsnormForwardFn(floatX* out, float* rstd, const floatX* inp, const floatX* weight, int N, int C);
RmsnormForwardFn rmsnorm_forward_cuda;

// dinp (N,C), dweight (C) += from dout, inp (N,C), weight (C), rstd (N)
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C);
typedef void RmsnormBackwardFn(floatX* dinp, floatX* dweight, const floatX* dout, const floatX* inp,
                               const floatX* weight, const float* rstd, int N, int C);
RmsnormBackwardFn rmsnorm_backward_cuda;

// residual (N,C) = inp1 + inp2 (residual may alias inp2), out (N,C), rstd (N) its RMSNorm with weight (C)
void residual_rmsnorm_forward(float* residual, float* out, float* rstd, const float* inp1, const float* inp2,
                              const float* weight, int N, int C);
typedef void ResidualRmsnormForwardFn(floatX* residual, floatX* out, float* rstd, const floatX* inp1,
                                      const floatX* inp2, const floatX* weight, int N, int C);
ResidualRmsnormForwardFn residual_rmsnorm_forward_cuda;

#ifdef __cplusplus
}
#endif
