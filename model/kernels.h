// The kernel table: the one model graph (gpt.c) calls its kernels and memory functions through
// it, so the CPU set (layers/*.c, attention/*.c) and a CUDA set plug in without a second copy of
// the model. Signatures and shapes are documented in layers/layers.h and attention/attention.h.
#pragma once
#include <stddef.h>

#include "attention/attention.h"

typedef struct {
    const char* name;
    // memory the kernels can read ("device" memory; host memory on the CPU)
    void* (*alloc)(size_t bytes);
    void (*release)(void* ptr);
    void (*zero)(void* ptr, size_t bytes);
    void (*upload)(void* dst, const void* host_src, size_t bytes);
    void (*download)(void* host_dst, const void* src, size_t bytes);

    void (*encoder_forward)(float* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C);
    void (*encoder_backward)(float* dwte, float* dwpe, const float* dout, const int* inp, int B, int T, int C);
    void (*layernorm_forward)(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                              const float* bias, int N, int C);
    void (*layernorm_backward)(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                               const float* weight, const float* mean, const float* rstd, int N, int C);
    void (*matmul_forward)(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC);
    void (*matmul_backward)(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                            const float* weight, int N, int C, int OC);
    void (*gelu_forward)(float* out, const float* inp, int N);
    void (*gelu_backward)(float* dinp, const float* inp, const float* dout, int N);
    void (*residual_forward)(float* out, const float* inp1, const float* inp2, int N);
    void (*crossentropy_forward_backward)(float* losses, float* dlogits, const float* logits, const int* targets,
                                          float dloss, int N, int V, int Vp);
    void (*adamw_update)(float* params, float* m, float* v, const float* grads, size_t N, float lr, float beta1,
                         float beta2, float eps, float weight_decay, float grad_scale, int t);
    void (*global_norm_squared)(float* out, const float* values, size_t N);
    void (*layerscale_forward)(float* out, const float* inp, const float* scale, int N, int C);
    void (*layerscale_backward)(float* dinp, float* dscale, const float* dout, const float* inp, const float* scale,
                                int N, int C);
    // the token mixers and their options (attention/attention.h, options.h, mlstm.h; layers/headnorm.h)
    void (*attention_forward)(float* out, float* stat, const float* qkv, int B, int Tq, int Tk, int Tmax, int C,
                              int NH, AttnScore score);
    void (*attention_backward)(float* dqkv, const float* dout, const float* qkv, const float* out, const float* stat,
                               int B, int T, int C, int NH, AttnScore score);
    void (*gate_forward)(float* out, const float* inp, const float* gate_preact, int N, int NH, int hs, int headwise);
    void (*gate_backward)(float* dinp, float* dgate_preact, const float* dout, const float* inp,
                          const float* gate_preact, int N, int NH, int hs, int headwise);
    void (*rope_forward)(float* out, const float* inp, int B, int T, int C, int NH, int pos0);
    void (*rope_backward)(float* dinp, const float* dout, int B, int T, int C, int NH, int pos0);
    void (*qknorm_forward)(float* out, float* mean, float* rstd, const float* inp, const float* qw, const float* qb,
                           const float* kw, const float* kb, int N, int C, int NH);
    void (*qknorm_backward)(float* dinp, float* dqw, float* dqb, float* dkw, float* dkb, const float* dout,
                            const float* inp, const float* qw, const float* kw, const float* mean, const float* rstd,
                            int N, int C, int NH);
    void (*mlstm_chunkwise_forward)(float* h, float* n_out, float* m_out, const float* qkv, const float* gates,
                                    int B, int T, int C, int NH, int chunk, int sig_igate);
    void (*mlstm_chunkwise_backward)(float* dqkv, float* dgates, const float* dh, const float* qkv,
                                     const float* gates, const float* n_out, const float* m_out, int B, int T, int C,
                                     int NH, int chunk, int sig_igate);
    void (*mlstm_recurrent_step)(float* h, float* c_state, float* n_state, float* m_state, const float* qkv,
                                 const float* gates, int B, int C, int NH, int sig_igate);
    void (*headnorm_forward)(float* out, float* mean, float* rstd, const float* inp, const float* weight, int N,
                             int NH, int hs, float eps);
    void (*headnorm_backward)(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                              const float* mean, const float* rstd, int N, int NH, int hs);
} Kernels;

extern const Kernels cpu_kernels;
