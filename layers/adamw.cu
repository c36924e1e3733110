// AdamW on the GPU, the twin of layers/adamw.c (torch.optim.AdamW: decoupled weight decay,
// bias-corrected moments, eps outside the sqrt; the bias corrections are computed on the host in
// double, as on the CPU). Mixed precision: with master weights (bf16 build) the fp32 master copy is
// read and updated and the floatX parameter is rewritten from it rounded to nearest (even), which is
// deterministic and, with an fp32 master carrying the small updates, needs no stochastic rounding;
// with master NULL (fp32 build) the parameters are updated in place. Moments m, v are fp32.
// Elementwise, one thread per element (grid-stride): coalesced, memory bound.
#include <cmath>

#include "common/cuda_common.cuh"
#include "layers/adamw.h"

#define ADAMW_THREADS 256

namespace {

__global__ void adamw_kernel(floatD* params, float* master, float* m, float* v, const floatD* grads, size_t N,
                             float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                             float inv_bc1, float inv_bc2) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < N; i += (size_t)gridDim.x * blockDim.x) {
        float g = to_float(grads[i]) * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float p = master ? master[i] : to_float(params[i]);
        p -= lr * ((mi * inv_bc1) / (sqrtf(vi * inv_bc2) + eps) + weight_decay * p);
        if (master) master[i] = p;
        params[i] = from_float(p);   // round to nearest even
    }
}

}  // namespace

void adamw_update_cuda(floatX* params, float* master, float* m, float* v, const floatX* grads, size_t N, float lr,
                       float beta1, float beta2, float eps, float weight_decay, float grad_scale, int t) {
    float inv_bc1 = (float)(1.0 / (1.0 - pow(beta1, t)));   // 1 / bias correction of m
    float inv_bc2 = (float)(1.0 / (1.0 - pow(beta2, t)));   // 1 / bias correction of v
    adamw_kernel<<<grid_blocks((long)N, ADAMW_THREADS), ADAMW_THREADS>>>(
        as_device(params), master, m, v, as_device(grads), N, lr, beta1, beta2, eps, weight_decay, grad_scale, inv_bc1,
        inv_bc2);
    cuda_check_launch();
}
