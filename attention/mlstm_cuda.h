// The CUDA mLSTM kernels (attention/mlstm.cu), twins of attention/mlstm.h with the same arguments as
// device pointers: qkv, gates, h, dqkv, dgates, dh are floatX; n_out, m_out and the decoding state
// (c_state, n_state, m_state) are float. Same contracts as the CPU kernels: gates are RAW
// pre-activations (soft-capped inside), sig_igate picks mLSTMexp (0) or mLSTMsig (1), the backward
// ACCUMULATES (+=) and treats the normaliser and the stabiliser as constants (docs/MODEL.md 11.5).
// Deterministic: no atomics, every output element written by one thread in a fixed order.
#pragma once
#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

// qkv (B,T,3C), gates (B,T,2NH) -> h (B,T,C), n_out, m_out (B,NH,T); any T, chunk >= 1.
void mlstm_chunkwise_forward_cuda(floatX* h, float* n_out, float* m_out, const floatX* qkv, const floatX* gates,
                                  int B, int T, int C, int NH, int chunk, int sig_igate);
// dqkv (B,T,3C), dgates (B,T,2NH) += from dh (B,T,C), with n_out, m_out (B,NH,T) of the forward.
void mlstm_chunkwise_backward_cuda(floatX* dqkv, floatX* dgates, const floatX* dh, const floatX* qkv,
                                   const floatX* gates, const float* n_out, const float* m_out, int B, int T, int C,
                                   int NH, int chunk, int sig_igate);
// One decoding step for B sequences: h (B,C) from qkv (B,3C), gates (B,2NH); the state c_state
// (B,NH,hs,hs) [key dim, value dim], n_state (B,NH,hs), m_state (B,NH) is updated in place.
void mlstm_recurrent_step_cuda(floatX* h, float* c_state, float* n_state, float* m_state, const floatX* qkv,
                               const floatX* gates, int B, int C, int NH, int sig_igate);
// For analysis: |C~| of the parallel form, weights (B,NH,T,T) float, as mlstm_score_matrix.
void mlstm_score_matrix_cuda(float* weights, const floatX* qkv, const floatX* gates, int B, int T, int C, int NH,
                             int sig_igate);

#ifdef __cplusplus
}
#endif
