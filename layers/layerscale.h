// LayerScale (Touvron et al. 2021; docs/MODEL.md 10): a learned per-channel scale on a residual
// branch, x + scale * branch(x); these kernels are the scale, out = inp * scale (out may alias inp),
// and the residual add is residual_forward (layers/residual.h).
// layerscale.c holds the CPU kernels (fp32, host memory, OpenMP), layerscale.cu their CUDA twins: the
// same arguments with the suffix _cuda, device pointers, floatX tensors (common/floatx.h), fp32 math.
// A twin is declared through its function type (LayerscaleForwardFn, ...), which also types the
// kernel table's entry (model/kernels.h). Arguments: outputs first, inputs next, sizes last.
// The backward ACCUMULATES (+=): dinp += dout * scale, dscale += the sum over rows of dout * inp
// (dinp may not alias dout). No atomics: dscale sums fixed chunks of rows in chunk order (CPU) or
// columns in a fixed order (GPU), whatever the thread count.
#pragma once
#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

// out (N,C) from inp (N,C), scale (C)
void layerscale_forward(float* out, const float* inp, const float* scale, int N, int C);
typedef void LayerscaleForwardFn(floatX* out, const floatX* inp, const floatX* scale, int N, int C);
LayerscaleForwardFn layerscale_forward_cuda;

// dinp (N,C), dscale (C) += from dout, inp (N,C), scale (C)
void layerscale_backward(float* dinp, float* dscale, const float* dout, const float* inp, const float* scale, int N,
                         int C);
typedef void LayerscaleBackwardFn(floatX* dinp, floatX* dscale, const floatX* dout, const floatX* inp,
                                  const floatX* scale, int N, int C);
LayerscaleBackwardFn layerscale_backward_cuda;

#ifdef __cplusplus
}
#endif
