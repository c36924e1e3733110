// AdamW (Loshchilov & Hutter 2019) on one tensor, as torch.optim.AdamW: decoupled weight decay
// applied to the parameter before this step's update, bias-corrected moments, eps outside the sqrt.
// grad_scale folds global-norm clipping (and 1/accumulation steps) into the step, so the gradient
// buffer is never rewritten.
#include <math.h>

#include "layers/adamw.h"

// params, m, v (N) updated in place from grads (N); t is the step number, starting at 1.
void adamw_update(float* params, float* m, float* v, const float* grads, size_t N,
                  float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale, int t) {
    float inv_bc1 = (float)(1.0 / (1.0 - pow(beta1, t)));   // 1 / bias correction of m
    float inv_bc2 = (float)(1.0 / (1.0 - pow(beta2, t)));   // 1 / bias correction of v
    #pragma omp parallel for simd
    for (size_t i = 0; i < N; i++) {
        float g = grads[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float step = (mi * inv_bc1) / (sqrtf(vi * inv_bc2) + eps) + weight_decay * params[i];
        params[i] -= lr * step;
    }
}
