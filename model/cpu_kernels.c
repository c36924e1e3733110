// The CPU kernel set: the fp32 OpenMP reference kernels of layers/ and attention/.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/check.h"
#include "model/kernels.h"   // and through it every kernel pair's header (layers/*.h, attention/*.h)

static void* cpu_alloc(size_t bytes) { return malloc_check(bytes); }

static size_t cpu_memory_free(void) { return (size_t)sysconf(_SC_AVPHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE); }

// The CPU keeps fp32 parameters, so there are no separate master weights.
static void cpu_adamw(float* params, float* master, float* m, float* v, const float* grads, size_t N, float lr,
                      float beta1, float beta2, float eps, float weight_decay, float grad_scale, int t) {
    if (master) fail("cpu_adamw: the CPU kernel set has no master weights");
    adamw_update(params, m, v, grads, N, lr, beta1, beta2, eps, weight_decay, grad_scale, t);
}
static void cpu_zero(void* ptr, size_t bytes) { memset(ptr, 0, bytes); }
static void cpu_copy(void* dst, const void* src, size_t bytes) { memcpy(dst, src, bytes); }

static const Kernels cpu_kernels = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .release = free,
    .zero = cpu_zero,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .memory_free = cpu_memory_free,
    .encoder_forward = encoder_forward,
    .encoder_backward = encoder_backward,
    .layernorm_forward = layernorm_forward,
    .layernorm_backward = layernorm_backward,
    .matmul_forward = matmul_forward,
    .matmul_backward = matmul_backward,
    .matmul_gelu_forward = matmul_gelu_forward,
    .gelu_forward = gelu_forward,
    .gelu_backward = gelu_backward,
    .swiglu_forward = swiglu_forward,
    .swiglu_backward = swiglu_backward,
    .residual_forward = residual_forward,
    .residual_layernorm_forward = residual_layernorm_forward,
    .rmsnorm_forward = rmsnorm_forward,
    .rmsnorm_backward = rmsnorm_backward,
    .residual_rmsnorm_forward = residual_rmsnorm_forward,
    .crossentropy_forward_backward = crossentropy_forward_backward,
    .adamw_update = cpu_adamw,
    .global_norm_squared = global_norm_squared,
    .layerscale_forward = layerscale_forward,
    .layerscale_backward = layerscale_backward,
    .attention_forward = attention_forward,
    .attention_backward = attention_backward,
    .attention_weights = attention_weights,
    .mlstm_score_matrix = mlstm_score_matrix,
    .attention_sink_forward = attention_sink_forward,
    .attention_sink_backward = attention_sink_backward,
    .gate_forward = gate_forward,
    .gate_backward = gate_backward,
    .rope_forward = rope_forward,
    .rope_backward = rope_backward,
    .qknorm_forward = qknorm_forward,
    .qknorm_backward = qknorm_backward,
    .mlstm_chunkwise_forward = mlstm_chunkwise_forward,
    .mlstm_chunkwise_backward = mlstm_chunkwise_backward,
    .mlstm_recurrent_step = mlstm_recurrent_step,
    .headnorm_forward = headnorm_forward,
    .headnorm_backward = headnorm_backward,
};

const Kernels* cpu_kernel_set(void) { return &cpu_kernels; }
