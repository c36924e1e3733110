// The loss head: softmax + cross-entropy fused over rows of logits (N,Vp), of which only the first V
// columns are real (Vp pads the vocabulary for fast matmuls): losses = -log softmax(logits)[target],
// and, if dlogits is not NULL, dlogits OVERWRITTEN (not accumulated) with (softmax - onehot(target))
// * dloss in the first V columns and 0 in the padding. dlogits may alias logits (the trainer does
// this to avoid a second (N,Vp) buffer).
// crossentropy.c holds the CPU kernel (fp32, host memory, OpenMP), crossentropy.cu its CUDA twin: the
// same arguments with the suffix _cuda, device pointers, floatX logits and dlogits (common/floatx.h),
// float losses, fp32 math, one pass over each row without a probability buffer. The twin is declared
// through its function type CrossentropyForwardBackwardFn, which also types the kernel table's entry
// (model/kernels.h). Arguments: outputs first, inputs next, sizes last.
// Deterministic: each row is one thread's (CPU) or one block's, merged in a fixed order (GPU).
#pragma once
#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

// losses (N), dlogits (N,Vp) or NULL from logits (N,Vp), targets (N), dloss
void crossentropy_forward_backward(float* losses, float* dlogits, const float* logits, const int* targets,
                                   float dloss, int N, int V, int Vp);
typedef void CrossentropyForwardBackwardFn(float* losses, floatX* dlogits, const floatX* logits, const int* targets,
                                           float dloss, int N, int V, int Vp);
CrossentropyForwardBackwardFn crossentropy_forward_backward_cuda;

#ifdef __cplusplus
}
#endif
