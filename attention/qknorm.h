// Per-head QK-norm (docs/MODEL.md section 9): a LayerNorm (eps 1e-5, biased variance) over the hs
// features of every head of q and of k in qkv rows, which hold [q | k | v] (3C values), heads of size
// hs = C/NH side by side; one affine (weight, bias) of size hs for q (qw, qb) and one for k (kw, kb),
// shared across heads; v copied through. mean and rstd (float) are saved per (row, q/k, head): (N,2,NH),
// [q heads | k heads] per row. out may not alias inp.
// qknorm.c holds the CPU kernels (fp32, host memory, OpenMP), qknorm.cu their CUDA twins: the same
// arguments with the suffix _cuda, device pointers, floatX tensors (common/floatx.h), float
// statistics. A twin is declared through its function type (QknormForwardFn, ...), which also types
// the kernel table's entry (model/kernels.h). Arguments: outputs first, inputs next, sizes last.
// The backward ACCUMULATES (+=) (the v part: dout). No atomics: dqw, dqb, dkw, dkb sum fixed chunks of
// rows in chunk order (CPU) or columns in a fixed order (GPU), whatever the thread count.
#pragma once
#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

// out (N,3C), mean, rstd (N,2,NH) from inp (N,3C), qw, qb, kw, kb (hs)
void qknorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* qw, const float* qb,
                    const float* kw, const float* kb, int N, int C, int NH);
typedef void QknormForwardFn(floatX* out, float* mean, float* rstd, const floatX* inp, const floatX* qw,
                             const floatX* qb, const floatX* kw, const floatX* kb, int N, int C, int NH);
QknormForwardFn qknorm_forward_cuda;

// dinp (N,3C), dqw, dqb, dkw, dkb (hs) += from dout, inp (N,3C), qw, kw (hs), mean, rstd (N,2,NH)
void qknorm_backward(float* dinp, float* dqw, float* dqb, float* dkw, float* dkb, const float* dout, const float* inp,
                     const float* qw, const float* kw, const float* mean, const float* rstd, int N, int C, int NH);
typedef void QknormBackwardFn(floatX* dinp, floatX* dqw, floatX* dqb, floatX* dkw, floatX* dkb, const floatX* dout,
                              const floatX* inp, const floatX* qw, const floatX* kw, const float* mean,
                              const float* rstd, int N, int C, int NH);
QknormBackwardFn qknorm_backward_cuda;

#ifdef __cplusplus
}
#endif
