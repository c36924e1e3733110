// The mLSTM cell (xLSTM matrix memory; docs/MODEL.md section 11). qkv rows hold [q | k | v] (3C
// values) per position, heads of size hs = C/NH side by side, as in attention/softmax_sigmoid.h; q.k
// is scaled by 1/sqrt(hs). gates rows hold [i~ of the NH heads | f~ of the NH heads] (2NH values): RAW
// pre-activations, the kernels apply the soft-cap 15*tanh(z/15) themselves. sig_igate: 0 = mLSTMexp
// (exponential input gate, stabiliser m with m_0 = 0, normaliser max(|n.q|, exp(-m)) + 1e-6), 1 =
// mLSTMsig (input gate sigmoid(i~), m = 0, normaliser max(|n.q|, 1) + 1e-6). h is the cell output
// BEFORE the per-head norm (layers/headnorm.h). The forward saves n_out (the normaliser, without eps)
// and m_out (the stabiliser) for the backward, which treats them as constants (docs/MODEL.md 11.2,
// as the NX-AI *_custbw references and Triton kernels).
// Three forms: the quadratic (parallel) form (11.2, 11.4), the oracle, CPU only; the chunkwise form
// (11.3), the training path: the same outputs, with states materialised every `chunk` positions; any
// T (the last chunk may be shorter), chunk >= 1; the recurrent step (11.1), one decoding step of B
// sequences, which updates the state c_state [key dim, value dim], n_state, m_state in place (all
// zeros before the first step). And for analysis (the sink metric, docs/MODEL.md section 13) the
// magnitude of the gated score matrix of the parallel form, |C~_ts| = |q_t.k_s/sqrt(hs)|
// exp(log D_ts - m_t) with m_t = max_s log D_ts (any per-row scale, as the metric normalizes each
// row), s <= t, 0 after.
// mlstm.c holds the CPU kernels (fp32, host memory, OpenMP over (batch, head)), mlstm.cu the CUDA
// twins of all but the parallel form: the same arguments with the suffix _cuda, device pointers;
// qkv, gates, h, dqkv, dgates, dh floatX (common/floatx.h), n_out, m_out and the decoding state float.
// A twin is declared through its function type (MlstmChunkwiseForwardFn, ...), which also types the
// kernel table's entry (model/kernels.h). Arguments: outputs first, inputs next, sizes last.
// Every backward ACCUMULATES (+=). Deterministic without atomics: each output element is written by
// one owner (a (b, h) task on the CPU, one thread on the GPU) in a fixed order.
#pragma once
#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MLSTM_GATE_SOFT_CAP 15.0f   // xLSTM-7B gate_soft_cap (docs/MODEL.md 11)
#define MLSTM_EPS 1e-6f             // added to the normaliser (docs/MODEL.md 11.1)

// h (B,T,C), n_out, m_out (B,NH,T) from qkv (B,T,3C), gates (B,T,2NH); the quadratic form, CPU only
void mlstm_parallel_forward(float* h, float* n_out, float* m_out, const float* qkv, const float* gates, int B, int T,
                            int C, int NH, int sig_igate);
// dqkv (B,T,3C), dgates (B,T,2NH) += from dh (B,T,C), qkv, gates, n_out, m_out; the quadratic form, CPU only
void mlstm_parallel_backward(float* dqkv, float* dgates, const float* dh, const float* qkv, const float* gates,
                             const float* n_out, const float* m_out, int B, int T, int C, int NH, int sig_igate);

// h (B,T,C), n_out, m_out (B,NH,T) from qkv (B,T,3C), gates (B,T,2NH); the chunkwise form
void mlstm_chunkwise_forward(float* h, float* n_out, float* m_out, const float* qkv, const float* gates, int B, int T,
                             int C, int NH, int chunk, int sig_igate);
typedef void MlstmChunkwiseForwardFn(floatX* h, float* n_out, float* m_out, const floatX* qkv, const floatX* gates,
                                     int B, int T, int C, int NH, int chunk, int sig_igate);
MlstmChunkwiseForwardFn mlstm_chunkwise_forward_cuda;

// dqkv (B,T,3C), dgates (B,T,2NH) += from dh (B,T,C), qkv, gates, n_out, m_out; recomputes the chunk states
void mlstm_chunkwise_backward(float* dqkv, float* dgates, const float* dh, const float* qkv, const float* gates,
                              const float* n_out, const float* m_out, int B, int T, int C, int NH, int chunk,
                              int sig_igate);
typedef void MlstmChunkwiseBackwardFn(floatX* dqkv, floatX* dgates, const floatX* dh, const floatX* qkv,
                                      const floatX* gates, const float* n_out, const float* m_out, int B, int T,
                                      int C, int NH, int chunk, int sig_igate);
MlstmChunkwiseBackwardFn mlstm_chunkwise_backward_cuda;

// h (B,C), c_state (B,NH,hs,hs), n_state (B,NH,hs), m_state (B,NH) updated from qkv (B,3C), gates (B,2NH)
void mlstm_recurrent_step(float* h, float* c_state, float* n_state, float* m_state, const float* qkv,
                          const float* gates, int B, int C, int NH, int sig_igate);
typedef void MlstmRecurrentStepFn(floatX* h, float* c_state, float* n_state, float* m_state, const floatX* qkv,
                                  const floatX* gates, int B, int C, int NH, int sig_igate);
MlstmRecurrentStepFn mlstm_recurrent_step_cuda;

// weights (B,NH,T,T) from qkv (B,T,3C), gates (B,T,2NH): |C~| for analysis
void mlstm_score_matrix(float* weights, const float* qkv, const float* gates, int B, int T, int C, int NH,
                        int sig_igate);
typedef void MlstmScoreMatrixFn(float* weights, const floatX* qkv, const floatX* gates, int B, int T, int C, int NH,
                                int sig_igate);
MlstmScoreMatrixFn mlstm_score_matrix_cuda;

#ifdef __cplusplus
}
#endif
