// Token + position embedding, the GPT-2 input layer: out = wte[token] + wpe[position], the tokens'
// rows alone when wpe is NULL (RoPE and ALiBi models); the backward adds each position's dout into
// the dwte row of its token and the dwpe row of its position (dwpe may be NULL).
// encoder.c holds the CPU kernels (fp32, host memory, OpenMP), encoder.cu their CUDA twins: the same
// arguments with the suffix _cuda, device pointers, floatX tensors (common/floatx.h). A twin is
// declared through its function type (EncoderForwardFn, ...), which also types the kernel table's
// entry (model/kernels.h). Arguments: outputs first, inputs next, sizes last.
// The backward ACCUMULATES (+=). Both are bitwise deterministic, without atomics: each element of
// dwte sums its positions in (b,t) order (the CPU splits the channels over threads; the GPU sorts
// the positions by token, one thread block per token's run).
#pragma once
#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

// out (B,T,C) from inp (B,T) token ids, wte (V,C), wpe (T,C) or NULL
void encoder_forward(float* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C);
typedef void EncoderForwardFn(floatX* out, const int* inp, const floatX* wte, const floatX* wpe, int B, int T, int C);
EncoderForwardFn encoder_forward_cuda;

// dwte (V,C), dwpe (T,C) or NULL += from dout (B,T,C), inp (B,T)
void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp, int B, int T, int C);
typedef void EncoderBackwardFn(floatX* dwte, floatX* dwpe, const floatX* dout, const int* inp, int B, int T, int C);
EncoderBackwardFn encoder_backward_cuda;

#ifdef __cplusplus
}
#endif
