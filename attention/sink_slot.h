// The sink slot of softmax attention (docs/MODEL.md section 14): an extra key that every query sees,
// of the kind SinkKind (attention/score.h): a learnable key k* (value 0), learnable k* and v*, a
// learnable logit per head, or the fixed logit 0 (softmax off by one). It folds into the attention of
// the keys: the forward rescales the normalized output and log-sum-exp of attention_forward
// (attention/softmax_sigmoid.h), and the backward of attention_backward, given the final output and
// log-sum-exp, is then exactly the keys' part, so these kernels add only the slot's own terms.
// Forward: on entry out and lse are attention_forward's on the same qkv (B,Tmax,3C), Tq, Tk, Tmax;
// on exit, over the keys and the slot:
//   z = q.k*_h / sqrt(hs) (key, key_value), z_h (logit) or 0 (one); lse' = log(e^lse + e^z);
//   out = e^(lse - lse') out + e^(z - lse') v*_h (key_value); lse = lse'.
// Backward, from dout and the final out and lse: with p* = e^(z - lse) and dz = p* (dout.v* - dout.out):
//   dq += dz k*/sqrt(hs), dsink_key += sum dz q/sqrt(hs), dsink_value += sum p* dout, dsink_logit +=
//   sum dz (sums over batch and positions).
// sink_key, sink_value (NH,hs) and sink_logit (NH) are the layer's slot parameters (NULL when unused).
// sink_slot.c holds the CPU kernels (fp32, host memory, OpenMP), sink_slot.cu their CUDA twins (a
// plain row-wise kernel, not a flash one): the same arguments with the suffix _cuda, device pointers,
// floatX tensors (common/floatx.h), float lse, fp32 math. A twin is declared through its function
// type (AttentionSinkForwardFn, ...), which also types the kernel table's entry (model/kernels.h).
// Arguments: outputs first, inputs next, sizes last.
// The backward ACCUMULATES (+=). Deterministic without atomics: the parameters' gradients are summed
// in a fixed order (per head by one thread on the CPU, fixed-order column sums on the GPU).
#pragma once
#include "attention/score.h"
#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

// out (B,Tq,C), lse (B,NH,Tq) updated from qkv (B,Tmax,3C), sink_key, sink_value (NH,hs), sink_logit (NH)
void attention_sink_forward(float* out, float* lse, const float* qkv, const float* sink_key, const float* sink_value,
                            const float* sink_logit, int B, int Tq, int Tk, int Tmax, int C, int NH, SinkKind kind);
typedef void AttentionSinkForwardFn(floatX* out, float* lse, const floatX* qkv, const floatX* sink_key,
                                    const floatX* sink_value, const floatX* sink_logit, int B, int Tq, int Tk,
                                    int Tmax, int C, int NH, SinkKind kind);
AttentionSinkForwardFn attention_sink_forward_cuda;

// dqkv (B,T,3C; q part), dsink_* += from dout, out (B,T,C), qkv (B,T,3C), lse (B,NH,T), the slot's parameters
void attention_sink_backward(float* dqkv, float* dsink_key, float* dsink_value, float* dsink_logit, const float* dout,
                             const float* qkv, const float* out, const float* lse, const float* sink_key,
                             const float* sink_value, const float* sink_logit, int B, int T, int C, int NH,
                             SinkKind kind);
typedef void AttentionSinkBackwardFn(floatX* dqkv, floatX* dsink_key, floatX* dsink_value, floatX* dsink_logit,
                                     const floatX* dout, const floatX* qkv, const floatX* out, const float* lse,
                                     const floatX* sink_key, const floatX* sink_value, const floatX* sink_logit,
                                     int B, int T, int C, int NH, SinkKind kind);
AttentionSinkBackwardFn attention_sink_backward_cuda;

#ifdef __cplusplus
}
#endif
