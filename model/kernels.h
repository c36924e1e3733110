// The kernel table: the one model graph (gpt.c) calls its kernels and memory functions through
// it, so the CPU set (layers/*.c, attention/*.c) and a CUDA set plug in without a second copy of
// the model. Signatures and shapes are documented in layers/layers.h and attention/attention.h.
#pragma once
#include <stddef.h>

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
    // the token mixer (attention/attention.h)
    void (*attention_forward)(float* out, float* lse, const float* qkv, int B, int Tq, int Tk, int Tmax, int C, int NH);
    void (*attention_backward)(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                               int B, int T, int C, int NH);
} Kernels;

extern const Kernels cpu_kernels;
