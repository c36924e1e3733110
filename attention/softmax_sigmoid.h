// Causal softmax and sigmoid attention (docs/MODEL.md sections 4-6), the score map given by AttnScore
// (attention/score.h): softmax, sigmoid(s + b), or sigmoid divided by its row sum, with or without
// ALiBi. qkv rows hold [q | k | v] (3C values) per position, heads of size hs = C/NH side by side.
// attention_forward computes the last Tq positions against the first Tk positions of qkv (B,Tmax,3C),
// Tq <= Tk <= Tmax: query i (0..Tq-1) is position Tk-Tq+i and sees keys 0..Tk-Tq+i; masked weights
// are exactly 0. Training calls it with Tq = Tk = Tmax = T, decoding with a KV cache of Tmax rows and
// Tq new rows. It saves one statistic per row, stat: the log-sum-exp (softmax), the row sum Z
// (normalized sigmoid), unused (plain sigmoid); the backward recomputes the weights from qkv, out and
// stat (no T x T buffer in either direction). attention_weights gives the weights the forward used,
// for analysis (the sink metric, docs/MODEL.md section 13): at training shapes, row i over keys 0..i
// and 0 after: exp(s - LSE) (softmax; with a sink slot the row sums to 1 minus the slot's weight),
// sigmoid(s + b), or sigmoid(s + b) / (Z + 1e-8).
// softmax_sigmoid.c holds the CPU kernels (fp32, host memory, OpenMP, flash-style), softmax_sigmoid.cu
// their CUDA twins (FlashAttention-2 style tiles, tensor cores in the bf16 build; attention/flash.cuh):
// the same arguments with the suffix _cuda, device pointers, floatX qkv, out, dqkv, dout
// (common/floatx.h), float stat and weights. A twin is declared through its function type
// (AttentionForwardFn, ...), which also types the kernel table's entry (model/kernels.h). Arguments:
// outputs first, inputs next, sizes last.
// The backward ACCUMULATES (+=) into dqkv. Deterministic without atomics: every element of dqkv has
// one owner (a (b, h) task on the CPU, a thread on the GPU) that sums in a fixed order.
#pragma once
#include "attention/score.h"
#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

// out (B,Tq,C), stat (B,NH,Tq) from qkv (B,Tmax,3C)
void attention_forward(float* out, float* stat, const float* qkv, int B, int Tq, int Tk, int Tmax, int C, int NH,
                       AttnScore score);
typedef void AttentionForwardFn(floatX* out, float* stat, const floatX* qkv, int B, int Tq, int Tk, int Tmax, int C,
                                int NH, AttnScore score);
AttentionForwardFn attention_forward_cuda;

// dqkv (B,T,3C) += from dout, out (B,T,C), qkv (B,T,3C), stat (B,NH,T) of the forward
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* stat, int B,
                        int T, int C, int NH, AttnScore score);
typedef void AttentionBackwardFn(floatX* dqkv, const floatX* dout, const floatX* qkv, const floatX* out,
                                 const float* stat, int B, int T, int C, int NH, AttnScore score);
AttentionBackwardFn attention_backward_cuda;

// weights (B,NH,T,T) from qkv (B,T,3C), stat (B,NH,T) of the forward
void attention_weights(float* weights, const float* qkv, const float* stat, int B, int T, int C, int NH,
                       AttnScore score);
typedef void AttentionWeightsFn(float* weights, const floatX* qkv, const float* stat, int B, int T, int C, int NH,
                                AttnScore score);
AttentionWeightsFn attention_weights_cuda;

#ifdef __cplusplus
}
#endif
