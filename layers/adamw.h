// AdamW on one tensor (llm.c / torch.optim.AdamW semantics, decoupled weight decay):
//   g = grad * grad_scale; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
//   param -= lr * (m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + weight_decay * param), t from 1.
// grad_scale folds global-norm clipping (layers/grad_norm.h) and 1/accumulation steps into the step.
// adamw.c holds the CPU kernel (fp32, host memory, OpenMP), adamw.cu its CUDA twin (suffix _cuda,
// device pointers): it takes floatX params and grads (common/floatx.h) and fp32 master weights
// `master`, which it updates before writing params rounded from them, or NULL (the fp32 build:
// params updated in place); m, v are float. Its function type AdamwUpdateFn also types the kernel
// table's entry (model/kernels.h), which model/cpu_kernels.c fills with the CPU kernel behind a
// wrapper (the CPU has no master weights). Arguments: outputs first, inputs next, sizes last.
// Elementwise, in place: deterministic.
#pragma once
#include <stddef.h>

#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

// params, m, v (N) updated in place from grads (N); the CUDA twin also master (N) or NULL
void adamw_update(float* params, float* m, float* v, const float* grads, size_t N, float lr, float beta1, float beta2,
                  float eps, float weight_decay, float grad_scale, int t);
typedef void AdamwUpdateFn(floatX* params, float* master, float* m, float* v, const floatX* grads, size_t N, float lr,
                           float beta1, float beta2, float eps, float weight_decay, float grad_scale, int t);
AdamwUpdateFn adamw_update_cuda;

#ifdef __cplusplus
}
#endif
