// Rotary position embedding (RoPE, Su et al. 2021; docs/MODEL.md section 8) on the q and k parts of
// qkv rows, which hold [q | k | v] (3C values), heads of size hs = C/NH side by side: base 10000,
// rotate-half / GPT-NeoX pairs (j, j + hs/2), row t at position pos0 + t; v is copied through. hs must
// be even (an odd one fails with one line); out may alias inp. The backward applies the transposed
// rotation; dinp may not alias dout.
// rope.c holds the CPU kernels (fp32, host memory, OpenMP), rope.cu their CUDA twins: the same
// arguments with the suffix _cuda, device pointers, floatX tensors (common/floatx.h); both compute
// the cos/sin table in double once per call, so large positions keep full float accuracy. A twin is
// declared through its function type (RopeForwardFn, ...), which also types the kernel table's entry
// (model/kernels.h). Arguments: outputs first, inputs next, sizes last.
// The backward ACCUMULATES (+=): R^T dout on q and k, dout on v. Elementwise: deterministic.
#pragma once
#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

// out (B,T,3C) from inp (B,T,3C)
void rope_forward(float* out, const float* inp, int B, int T, int C, int NH, int pos0);
typedef void RopeForwardFn(floatX* out, const floatX* inp, int B, int T, int C, int NH, int pos0);
RopeForwardFn rope_forward_cuda;

// dinp (B,T,3C) += from dout (B,T,3C)
void rope_backward(float* dinp, const float* dout, int B, int T, int C, int NH, int pos0);
typedef void RopeBackwardFn(floatX* dinp, const floatX* dout, int B, int T, int C, int NH, int pos0);
RopeBackwardFn rope_backward_cuda;

// The head size C / NH; fails with one line naming fn unless it is whole and even (rope.c, used by both).
int rope_head_size(const char* fn, int C, int NH);

#ifdef __cplusplus
}
#endif
