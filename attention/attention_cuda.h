// The CUDA attention kernels, twins of attention/softmax_sigmoid.h: FlashAttention-2 style tiles, no
// T x T matrix in memory, tensor cores (mma.sync bf16 on sm_80+), a family parameterized by the
// score function (AttnScore: softmax, sigmoid, normalized sigmoid), causal.
#pragma once
#include "attention/score.h"
#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

// Same contract as attention_forward: qkv (B,Tmax,3C), queries are the last Tq of Tk positions;
// out (B,Tq,C) floatX, stat (B,NH,Tq) float (LSE / row sum / unused).
void attention_forward_cuda(floatX* out, float* stat, const floatX* qkv, int B, int Tq, int Tk, int Tmax, int C,
                            int NH, AttnScore score);
// dqkv (B,T,3C) += from dout (B,T,C), recomputing the scores tile by tile.
void attention_backward_cuda(floatX* dqkv, const floatX* dout, const floatX* qkv, const floatX* out,
                             const float* stat, int B, int T, int C, int NH, AttnScore score);
// For analysis: weights (B,NH,T,T) float from qkv (B,T,3C) and the forward's stat, as attention_weights.
void attention_weights_cuda(float* weights, const floatX* qkv, const float* stat, int B, int T, int C, int NH,
                            AttnScore score);

#ifdef __cplusplus
}
#endif
