// The mLSTM cell (xLSTM matrix memory; docs/MODEL.md section 11): CPU fp32 kernels, OpenMP over
// (batch, head). qkv rows hold [q | k | v] (3C floats) per position, heads of size hs = C/NH side by
// side, as in attention.h; q.k is scaled by 1/sqrt(hs). gates rows hold [i~ of the NH heads |
// f~ of the NH heads] (2NH floats): RAW pre-activations, the kernels apply the soft-cap
// 15*tanh(z/15) themselves. sig_igate: 0 = mLSTMexp (exponential input gate, stabiliser m with
// m_0 = 0, normaliser max(|n.q|, exp(-m)) + 1e-6), 1 = mLSTMsig (input gate sigmoid(i~), m = 0,
// normaliser max(|n.q|, 1) + 1e-6). h is the cell output BEFORE the per-head norm (headnorm.h).
// Every backward ACCUMULATES (+=), and treats the normaliser n and stabiliser m as constants
// (docs/MODEL.md 11.2, as the NX-AI *_custbw references and Triton kernels).
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

#define MLSTM_GATE_SOFT_CAP 15.0f   // xLSTM-7B gate_soft_cap (docs/MODEL.md 11)
#define MLSTM_EPS 1e-6f             // added to the normaliser (docs/MODEL.md 11.1)

// The quadratic form (docs/MODEL.md 11.2, 11.4), any T: the oracle. qkv (B,T,3C), gates (B,T,2NH) -> h (B,T,C);
// saves n_out (the normaliser, without eps) and m_out (the stabiliser), both (B,NH,T), for the backward.
void mlstm_parallel_forward(float* h, float* n_out, float* m_out, const float* qkv, const float* gates,
                            int B, int T, int C, int NH, int sig_igate);
// dqkv (B,T,3C), dgates (B,T,2NH) += from dh (B,T,C), with n_out, m_out (B,NH,T) of the forward.
void mlstm_parallel_backward(float* dqkv, float* dgates, const float* dh, const float* qkv, const float* gates,
                             const float* n_out, const float* m_out, int B, int T, int C, int NH, int sig_igate);

// The chunkwise form (docs/MODEL.md 11.3), the training path: the same outputs as the parallel form, with
// states materialised every `chunk` positions; any T (the last chunk may be shorter), chunk >= 1.
void mlstm_chunkwise_forward(float* h, float* n_out, float* m_out, const float* qkv, const float* gates,
                             int B, int T, int C, int NH, int chunk, int sig_igate);
// dqkv (B,T,3C), dgates (B,T,2NH) += from dh (B,T,C); recomputes the chunk states from qkv and gates.
void mlstm_chunkwise_backward(float* dqkv, float* dgates, const float* dh, const float* qkv, const float* gates,
                              const float* n_out, const float* m_out, int B, int T, int C, int NH, int chunk,
                              int sig_igate);

// One decoding step (docs/MODEL.md 11.1) for B sequences: h (B,C) from qkv (B,3C) and gates (B,2NH);
// the state c_state (B,NH,hs,hs) [key dim, value dim], n_state (B,NH,hs), m_state (B,NH) is
// updated in place (all zeros before the first step).
void mlstm_recurrent_step(float* h, float* c_state, float* n_state, float* m_state, const float* qkv,
                          const float* gates, int B, int C, int NH, int sig_igate);

// For analysis (the sink metric, docs/MODEL.md section 13): the magnitude of the gated score matrix
// of the parallel form, |C~_ts| = |q_t.k_s/sqrt(hs)| exp(log D_ts - m_t) with m_t = max_s log D_ts
// (any per-row scale, as the metric normalizes each row), s <= t, 0 after. weights (B,NH,T,T).
void mlstm_score_matrix(float* weights, const float* qkv, const float* gates, int B, int T, int C, int NH,
                        int sig_igate);

#ifdef __cplusplus
}
#endif
