// The CUDA attention kernels, twins of attention/softmax_sigmoid.h: FlashAttention-2 style tiles, no
// T x T matrix in memory, tensor cores (mma.sync bf16 on sm_80+), a family parameterized by the
// score function (AttnScore: softmax, sigmoid, normalized sigmoid), causal. Then the twins of the
// mixer options (gate.h, rope.h, qknorm.h, sink_slot.h): same arguments as the CPU kernels (device
// pointers, floatX tensors, float statistics), fp32 math, deterministic (no atomics on floats), and
// like them the backward kernels ACCUMULATE (+=) into their gradient outputs.
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

// The G1 output gate (attention/gate.h): out (N,C) = inp * sigmoid(gate_preact), gate_preact (N,NH)
// headwise or (N,C) elementwise, C = NH*hs; out may not alias inp.
void gate_forward_cuda(floatX* out, const floatX* inp, const floatX* gate_preact, int N, int NH, int hs,
                       int headwise);
// dinp (N,C), dgate_preact (N,G) += from dout (N,C).
void gate_backward_cuda(floatX* dinp, floatX* dgate_preact, const floatX* dout, const floatX* inp,
                        const floatX* gate_preact, int N, int NH, int hs, int headwise);
// RoPE (attention/rope.h) on the q and k parts of qkv rows (B,T,3C), row t at position pos0 + t, v
// copied; out may alias inp; an odd head size fails with one line.
void rope_forward_cuda(floatX* out, const floatX* inp, int B, int T, int C, int NH, int pos0);
// dinp (B,T,3C) += R^T dout on q and k, += dout on v; dinp may not alias dout.
void rope_backward_cuda(floatX* dinp, const floatX* dout, int B, int T, int C, int NH, int pos0);
// QK-norm (attention/qknorm.h): inp/out (N,3C), q and k heads LayerNormed (eps 1e-5) with qw, qb, kw,
// kb (hs), v copied; mean, rstd (N,2,NH). out may not alias inp.
void qknorm_forward_cuda(floatX* out, float* mean, float* rstd, const floatX* inp, const floatX* qw, const floatX* qb,
                         const floatX* kw, const floatX* kb, int N, int C, int NH);
// dinp (N,3C) (v part: += dout), dqw, dqb, dkw, dkb (hs) += from dout (N,3C).
void qknorm_backward_cuda(floatX* dinp, floatX* dqw, floatX* dqb, floatX* dkw, floatX* dkb, const floatX* dout,
                          const floatX* inp, const floatX* qw, const floatX* kw, const float* mean, const float* rstd,
                          int N, int C, int NH);
// The sink slot (attention/sink_slot.h), after attention_forward_cuda on the same qkv (B,Tmax,3C):
// out (B,Tq,C) and lse (B,NH,Tq) rescaled to include the slot. A plain row-wise kernel, not a flash one.
void attention_sink_forward_cuda(floatX* out, float* lse, const floatX* qkv, const floatX* sink_key,
                                 const floatX* sink_value, const floatX* sink_logit, int B, int Tq, int Tk, int Tmax,
                                 int C, int NH, SinkKind kind);
// The slot's terms of the backward: dqkv (q part), dsink_key, dsink_value (NH,hs), dsink_logit (NH) +=.
void attention_sink_backward_cuda(floatX* dqkv, floatX* dsink_key, floatX* dsink_value, floatX* dsink_logit,
                                  const floatX* dout, const floatX* qkv, const floatX* out, const float* lse,
                                  const floatX* sink_key, const floatX* sink_value, const floatX* sink_logit, int B,
                                  int T, int C, int NH, SinkKind kind);

#ifdef __cplusplus
}
#endif
