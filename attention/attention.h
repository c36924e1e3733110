// The token mixer interface (METHODS.md section 0) and the CPU softmax kernel.
// qkv rows hold [q | k | v] (3C floats) per position, heads of size hs = C/NH side by side.
#pragma once

// Causal softmax attention of the last Tq positions over the first Tk positions of qkv.
// qkv (B,Tmax,3C) with Tq <= Tk <= Tmax; query i (0..Tq-1) is position Tk-Tq+i and sees keys 0..Tk-Tq+i.
// out (B,Tq,C); lse (B,NH,Tq) the log-sum-exp of each score row, saved for the backward.
// Training calls it with Tq = Tk = Tmax = T; decoding with a KV cache of Tmax rows, Tq new rows.
void attention_forward(float* out, float* lse, const float* qkv, int B, int Tq, int Tk, int Tmax, int C, int NH);
// dqkv (B,T,3C) += from dout (B,T,C); recomputes the scores from qkv, out and lse (no T x T buffer).
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                        int B, int T, int C, int NH);
