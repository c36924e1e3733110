// LayerNorm over the last dim (Ba et al. 2016), as torch.nn.functional.layer_norm: eps 1e-5,
// biased variance. The forward saves mean and rstd per row so the backward needs no recompute of
// the statistics. The backward reduces dweight/dbias over rows through per-thread partial sums
// added in thread order (no atomics; deterministic for a given thread count).
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "common/check.h"
#include "layers/layernorm.h"
#include "layers/layernorm_row.h"
#include "layers/residual.h"

#define LAYERNORM_EPS 1e-5f

// out (C) = (x - mean) * rstd * weight + bias for one row; writes mean[0], rstd[0].
static void layernorm_row(float* restrict out, float* mean, float* rstd, const float* restrict x,
                          const float* restrict weight, const float* restrict bias, int C) {
    float sum = 0.0f;
    #pragma omp simd reduction(+:sum)
    for (int c = 0; c < C; c++) sum += x[c];
    float m = sum / C;
    float var = 0.0f;
    #pragma omp simd reduction(+:var)
    for (int c = 0; c < C; c++) var += (x[c] - m) * (x[c] - m);
    float s = 1.0f / sqrtf(var / C + LAYERNORM_EPS);
    #pragma omp simd
    for (int c = 0; c < C; c++) out[c] = (x[c] - m) * s * weight[c] + bias[c];
    *mean = m;
    *rstd = s;
}

// inp (N,C) -> out (N,C); saves mean, rstd (N).
void layernorm_forward(float* out, float* mean, float* rstd,
                       const float* inp, const float* weight, const float* bias, int N, int C) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++)
        layernorm_row(out + (size_t)n * C, mean + n, rstd + n, inp + (size_t)n * C, weight, bias, C);
}

// dinp (N,C), dweight (C), dbias (C) += from dout (N,C).
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean, const float* rstd,
                        int N, int C) {
    int nthreads = omp_get_max_threads();
    float* partial = calloc_check((size_t)nthreads * 2 * C, sizeof(float));   // per thread: dw (C), db (C)
    #pragma omp parallel num_threads(nthreads)
    {
        float* dw = partial + (size_t)omp_get_thread_num() * 2 * C;
        #pragma omp for schedule(static)
        for (int n = 0; n < N; n++)
            layernorm_row_backward(dinp + (size_t)n * C, dw, dw + C, dout + (size_t)n * C,
                                   inp + (size_t)n * C, weight, mean[n], rstd[n], C);
        #pragma omp for schedule(static)
        for (int c = 0; c < C; c++) {
            float dw_sum = 0.0f, db_sum = 0.0f;
            for (int t = 0; t < nthreads; t++) {
                dw_sum += partial[(size_t)t * 2 * C + c];
                db_sum += partial[(size_t)t * 2 * C + C + c];
            }
            dweight[c] += dw_sum;
            dbias[c] += db_sum;
        }
    }
    free(partial);
}

// The CPU runs the residual add and the LayerNorm one after the other (the CUDA twin fuses them).
void residual_layernorm_forward(float* residual, float* out, float* mean, float* rstd, const float* inp1,
                                const float* inp2, const float* weight, const float* bias, int N, int C) {
    residual_forward(residual, inp1, inp2, N * C);
    layernorm_forward(out, mean, rstd, residual, weight, bias, N, C);
}
