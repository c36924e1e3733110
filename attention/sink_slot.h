// The sink slot of softmax attention (attention/sink_slot.c; docs/MODEL.md section 14): an extra key
// that every query sees, with a learnable key k* (value 0), learnable k* and v*, a learnable logit
// per head, or the fixed logit 0 (softmax off by one). It folds into the attention of the keys: the
// forward rescales the normalized output and log-sum-exp of attention_forward, and the backward of
// attention_backward, given the final output and log-sum-exp, is then exactly the keys' part, so
// these kernels add only the slot's own terms. CPU fp32, OpenMP; the backward ACCUMULATES (+=).
#pragma once
#include "attention/score.h"

#ifdef __cplusplus
extern "C" {
#endif

// On entry out (B,Tq,C) and lse (B,NH,Tq) are softmax attention over the keys (attention_forward on
// the same qkv (B,Tmax,3C), Tq, Tk, Tmax); on exit, over the keys and the slot:
//   z = q.k*_h / sqrt(hs) (key, key_value), z_h (logit) or 0 (one); lse' = log(e^lse + e^z);
//   out = e^(lse - lse') out + e^(z - lse') v*_h (key_value); lse = lse'.
// sink_key, sink_value (NH,hs), sink_logit (NH): the layer's slot parameters (NULL when unused).
void attention_sink_forward(float* out, float* lse, const float* qkv, const float* sink_key, const float* sink_value,
                            const float* sink_logit, int B, int Tq, int Tk, int Tmax, int C, int NH, SinkKind kind);
// The slot's terms of the backward, from dout, the final out and lse: with p* = e^(z - lse) and
// dz = p* (dout.v* - dout.out): dq += dz k*/sqrt(hs), dsink_key += sum dz q/sqrt(hs),
// dsink_value += sum p* dout, dsink_logit += sum dz (sums over batch and positions).
void attention_sink_backward(float* dqkv, float* dsink_key, float* dsink_value, float* dsink_logit, const float* dout,
                             const float* qkv, const float* out, const float* lse, const float* sink_key,
                             const float* sink_value, const float* sink_logit, int B, int T, int C, int NH,
                             SinkKind kind);

#ifdef __cplusplus
}
#endif
