// Causal softmax and sigmoid attention on the CPU (attention/softmax_sigmoid.c; docs/MODEL.md
// sections 4-5). qkv rows hold [q | k | v] (3C floats) per position, heads of size hs = C/NH side by side.
#pragma once
#include "attention/score.h"

#ifdef __cplusplus
extern "C" {
#endif

// Causal attention of the last Tq positions over the first Tk positions of qkv.
// qkv (B,Tmax,3C) with Tq <= Tk <= Tmax; query i (0..Tq-1) is position Tk-Tq+i and sees keys 0..Tk-Tq+i.
// out (B,Tq,C); stat (B,NH,Tq) saved for the backward: the log-sum-exp of each row (softmax), the
// row sum (normalized sigmoid), unused (plain sigmoid). Masked weights are exactly 0.
// Training calls it with Tq = Tk = Tmax = T; decoding with a KV cache of Tmax rows, Tq new rows.
void attention_forward(float* out, float* stat, const float* qkv, int B, int Tq, int Tk, int Tmax, int C, int NH,
                       AttnScore score);
// dqkv (B,T,3C) += from dout (B,T,C); recomputes the scores from qkv, out and stat (no T x T buffer).
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* stat,
                        int B, int T, int C, int NH, AttnScore score);

// The weights the forward used, for analysis (the sink metric, docs/MODEL.md section 13), training
// shapes (Tq = Tk = T): weights (B,NH,T,T), row i over keys 0..i and 0 after, from qkv (B,T,3C)
// and the forward's stat (B,NH,T): exp(s - LSE) (softmax; with a sink slot the row sums to 1 minus
// the slot's weight), sigmoid(s + b), or sigmoid(s + b) / (Z + 1e-8).
void attention_weights(float* weights, const float* qkv, const float* stat, int B, int T, int C, int NH,
                       AttnScore score);

#ifdef __cplusplus
}
#endif
