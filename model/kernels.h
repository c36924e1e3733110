// The kernel table: the one model graph (gpt.c) calls its kernels and memory functions through
// it, so the CPU set (layers/*.c, attention/*.c) and the CUDA set (*.cu) plug in without a second
// copy of the model. Tensors are floatX (common/floatx.h: float on the CPU, bf16 in the CUDA bf16
// build); statistics, losses and optimizer state are float. Signatures and shapes are documented in
// layers/layers.h, layers/headnorm.h, layers/layerscale.h and attention/*.h (softmax_sigmoid.h, gate.h,
// rope.h, qknorm.h, mlstm.h, sink_slot.h). A kernel set may leave a mixer's entries NULL: gpt_build then refuses models that need them.
#pragma once
#include <stddef.h>

#include "attention/score.h"
#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char* name;
    // memory the kernels can read ("device" memory; host memory on the CPU)
    void* (*alloc)(size_t bytes);
    void (*release)(void* ptr);
    void (*zero)(void* ptr, size_t bytes);
    void (*upload)(void* dst, const void* host_src, size_t bytes);
    void (*download)(void* host_dst, const void* src, size_t bytes);
    // kernel memory to kernel memory, in order with the kernels; the two ranges may not overlap
    void (*copy)(void* dst, const void* src, size_t bytes);
    size_t (*memory_free)(void);   // bytes the kernels' memory has free now

    void (*encoder_forward)(floatX* out, const int* inp, const floatX* wte, const floatX* wpe, int B, int T, int C);
    void (*encoder_backward)(floatX* dwte, floatX* dwpe, const floatX* dout, const int* inp, int B, int T, int C);
    void (*layernorm_forward)(floatX* out, float* mean, float* rstd, const floatX* inp, const floatX* weight,
                              const floatX* bias, int N, int C);
    void (*layernorm_backward)(floatX* dinp, floatX* dweight, floatX* dbias, const floatX* dout, const floatX* inp,
                               const floatX* weight, const float* mean, const float* rstd, int N, int C);
    void (*matmul_forward)(floatX* out, const floatX* inp, const floatX* weight, const floatX* bias, int N, int C,
                           int OC);
    // out_gelu = gelu(pre_gelu), pre_gelu = inp @ weight^T + bias (the matmul's GELU epilogue); exact: 1 for
    // the erf GELU, 0 for the tanh approximation (likewise in gelu_forward, gelu_backward)
    void (*matmul_gelu_forward)(floatX* out_gelu, floatX* pre_gelu, const floatX* inp, const floatX* weight,
                                const floatX* bias, int N, int C, int OC, int exact);
    void (*matmul_backward)(floatX* dinp, floatX* dweight, floatX* dbias, const floatX* dout, const floatX* inp,
                            const floatX* weight, int N, int C, int OC);
    void (*gelu_forward)(floatX* out, const floatX* inp, int N, int exact);
    void (*gelu_backward)(floatX* dinp, const floatX* inp, const floatX* dout, int N, int exact);
    // the SwiGLU MLP's activation: out (N,hidden) = silu(inp[:, :hidden]) * inp[:, hidden:]
    void (*swiglu_forward)(floatX* out, const floatX* inp, int N, int hidden);
    void (*swiglu_backward)(floatX* dinp, const floatX* inp, const floatX* dout, int N, int hidden);
    void (*residual_forward)(floatX* out, const floatX* inp1, const floatX* inp2, int N);
    // residual = inp1 + inp2 (may alias inp2), then out = LayerNorm(residual): the fused residual add
    void (*residual_layernorm_forward)(floatX* residual, floatX* out, float* mean, float* rstd, const floatX* inp1,
                                       const floatX* inp2, const floatX* weight, const floatX* bias, int N, int C);
    // RMSNorm (ln=rms): out = inp * rstd * weight, rstd = 1/sqrt(mean(inp^2) + eps); and its fused residual add
    void (*rmsnorm_forward)(floatX* out, float* rstd, const floatX* inp, const floatX* weight, int N, int C);
    void (*rmsnorm_backward)(floatX* dinp, floatX* dweight, const floatX* dout, const floatX* inp,
                             const floatX* weight, const float* rstd, int N, int C);
    void (*residual_rmsnorm_forward)(floatX* residual, floatX* out, float* rstd, const floatX* inp1,
                                     const floatX* inp2, const floatX* weight, int N, int C);
    void (*crossentropy_forward_backward)(float* losses, floatX* dlogits, const floatX* logits, const int* targets,
                                          float dloss, int N, int V, int Vp);
    // master: fp32 master weights when floatX is not float (else NULL); m, v: AdamW moments
    void (*adamw_update)(floatX* params, float* master, float* m, float* v, const floatX* grads, size_t N, float lr,
                         float beta1, float beta2, float eps, float weight_decay, float grad_scale, int t);
    void (*global_norm_squared)(float* out, const floatX* values, size_t N);
    void (*layerscale_forward)(floatX* out, const floatX* inp, const floatX* scale, int N, int C);
    void (*layerscale_backward)(floatX* dinp, floatX* dscale, const floatX* dout, const floatX* inp,
                                const floatX* scale, int N, int C);
    // the token mixers and their options
    void (*attention_forward)(floatX* out, float* stat, const floatX* qkv, int B, int Tq, int Tk, int Tmax, int C,
                              int NH, AttnScore score);
    void (*attention_backward)(floatX* dqkv, const floatX* dout, const floatX* qkv, const floatX* out,
                               const float* stat, int B, int T, int C, int NH, AttnScore score);
    // analysis: the weights each query gave each key (float), as the forward computed them
    void (*attention_weights)(float* weights, const floatX* qkv, const float* stat, int B, int T, int C, int NH,
                              AttnScore score);
    void (*mlstm_score_matrix)(float* weights, const floatX* qkv, const floatX* gates, int B, int T, int C, int NH,
                               int sig_igate);
    // the sink slot folded into softmax attention (attention/sink_slot.h)
    void (*attention_sink_forward)(floatX* out, float* lse, const floatX* qkv, const floatX* sink_key,
                                   const floatX* sink_value, const floatX* sink_logit, int B, int Tq, int Tk, int Tmax,
                                   int C, int NH, SinkKind kind);
    void (*attention_sink_backward)(floatX* dqkv, floatX* dsink_key, floatX* dsink_value, floatX* dsink_logit,
                                    const floatX* dout, const floatX* qkv, const floatX* out, const float* lse,
                                    const floatX* sink_key, const floatX* sink_value, const floatX* sink_logit, int B,
                                    int T, int C, int NH, SinkKind kind);
    void (*gate_forward)(floatX* out, const floatX* inp, const floatX* gate_preact, int N, int NH, int hs,
                         int headwise);
    void (*gate_backward)(floatX* dinp, floatX* dgate_preact, const floatX* dout, const floatX* inp,
                          const floatX* gate_preact, int N, int NH, int hs, int headwise);
    void (*rope_forward)(floatX* out, const floatX* inp, int B, int T, int C, int NH, int pos0);
    void (*rope_backward)(floatX* dinp, const floatX* dout, int B, int T, int C, int NH, int pos0);
    void (*qknorm_forward)(floatX* out, float* mean, float* rstd, const floatX* inp, const floatX* qw,
                           const floatX* qb, const floatX* kw, const floatX* kb, int N, int C, int NH);
    void (*qknorm_backward)(floatX* dinp, floatX* dqw, floatX* dqb, floatX* dkw, floatX* dkb, const floatX* dout,
                            const floatX* inp, const floatX* qw, const floatX* kw, const float* mean,
                            const float* rstd, int N, int C, int NH);
    void (*mlstm_chunkwise_forward)(floatX* h, float* n_out, float* m_out, const floatX* qkv, const floatX* gates,
                                    int B, int T, int C, int NH, int chunk, int sig_igate);
    void (*mlstm_chunkwise_backward)(floatX* dqkv, floatX* dgates, const floatX* dh, const floatX* qkv,
                                     const floatX* gates, const float* n_out, const float* m_out, int B, int T, int C,
                                     int NH, int chunk, int sig_igate);
    void (*mlstm_recurrent_step)(floatX* h, float* c_state, float* n_state, float* m_state, const floatX* qkv,
                                 const floatX* gates, int B, int C, int NH, int sig_igate);
    void (*headnorm_forward)(floatX* out, float* mean, float* rstd, const floatX* inp, const floatX* weight, int N,
                             int NH, int hs, float eps);
    void (*headnorm_backward)(floatX* dinp, floatX* dweight, const floatX* dout, const floatX* inp,
                              const floatX* weight, const float* mean, const float* rstd, int N, int NH, int hs);
} Kernels;

// The kernel sets: the CPU one (model/cpu_kernels.c) and the CUDA one (model/cuda_kernels.cu).
const Kernels* cpu_kernel_set(void);
const Kernels* cuda_kernel_set(void);
// The set this program was linked with: the CPU set in train_gpt2 and infer (model/default_cpu.c),
// the CUDA set in train_gpt2cu and infercu (model/default_cuda.c).
const Kernels* default_kernels(void);

#ifdef __cplusplus
}
#endif
