// Per-head LayerNorm (xLSTM's MultiHeadLayerNorm; docs/MODEL.md 11), the norm after the mLSTM cell:
// each row of C = NH*hs channels is normalised per head over its hs features (biased variance, eps
// from the caller: xLSTM-7B uses 1e-6), then scaled by a per-channel weight; no bias. mean and rstd
// (float) are saved per (row, head).
// headnorm.c holds the CPU kernels (fp32, host memory, OpenMP), headnorm.cu their CUDA twins: the same
// arguments with the suffix _cuda, device pointers, floatX tensors (common/floatx.h), float
// statistics. A twin is declared through its function type (HeadnormForwardFn, ...), which also types
// the kernel table's entry (model/kernels.h). Arguments: outputs first, inputs next, sizes last.
// The backward ACCUMULATES (+=). No atomics: the CPU adds per-thread partial sums of dweight in
// thread order (deterministic for a given thread count), the GPU sums columns in a fixed order.
#pragma once
#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

// out (N,C), mean, rstd (N,NH) from inp (N,C), weight (C); C = NH*hs
void headnorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, int N, int NH,
                      int hs, float eps);
typedef void HeadnormForwardFn(floatX* out, float* mean, float* rstd, const floatX* inp, const floatX* weight, int N,
                               int NH, int hs, float eps);
HeadnormForwardFn headnorm_forward_cuda;

// dinp (N,C), dweight (C) += from dout, inp (N,C), weight (C), mean, rstd (N,NH)
void headnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                       const float* mean, const float* rstd, int N, int NH, int hs);
typedef void HeadnormBackwardFn(floatX* dinp, floatX* dweight, const floatX* dout, const floatX* inp,
                                const floatX* weight, const float* mean, const float* rstd, int N, int NH, int hs);
HeadnormBackwardFn headnorm_backward_cuda;

#ifdef __cplusplus
}
#endif
