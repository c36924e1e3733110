// The token mixer interface (METHODS.md section 0) and the CPU softmax kernel.
// qkv rows hold [q | k | v] (3C floats) per position, heads of size hs = C/NH side by side.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// How a score s = q.k/sqrt(hs) becomes a weight (METHODS.md sections 0, 1, 2.3).
typedef struct {
    int sigmoid;    // 0: softmax over the row; 1: sigmoid(s + bias), no row coupling
    float bias;     // the sigmoid bias b (sigmoid only)
    int normalize;  // sigmoid only: divide the row by its sum + 1e-8 (the sink paper's normalized variant)
} AttnScore;

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

#ifdef __cplusplus
}
#endif
