// RMSNorm over the last dim (Zhang & Sennrich 2019), the sink paper's and LLaMA's norm: y = x r w,
// r = 1/sqrt(mean(x^2) + eps), eps 1e-5, weight only (no centering, no bias). The forward saves r per
// row. Backward, with g = w dy and n = x r: dx = r (g - n mean(g n)), dw += n dy; dweight is reduced
// over rows through per-thread partial sums added in thread order (no atomics; deterministic for a
// given thread count), as layernorm.c.
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "common/check.h"
#include "layers/rmsnorm.h"

#define RMSNORM_EPS 1e-5f

// out (C) = x r w for one row; writes rstd[0] = r.
static void rmsnorm_row(float* restrict out, float* rstd, const float* restrict x, const float* restrict weight,
                        int C) {
    float sum = 0.0f;
    #pragma omp simd reduction(+:sum)
    for (int c = 0; c < C; c++) sum += x[c] * x[c];
    float r = 1.0f / sqrtf(sum / C + RMSNORM_EPS);
    #pragma omp simd
    for (int c = 0; c < C; c++) out[c] = x[c] * r * weight[c];
    *rstd = r;
}

// inp (N,C) -> out (N,C); saves rstd (N).
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++) rmsnorm_row(out + (size_t)n * C, rstd + n, inp + (size_t)n * C, weight, C);
}

// The residual add and the RMSNorm of its sum, row by row (the sum still in cache for the norm).
void residual_rmsnorm_forward(float* residual, float* out, float* rstd, const float* inp1, const float* inp2,
                              const float* weight, int N, int C) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        size_t at = (size_t)n * C;
        float* restrict sum = residual + at;   // may alias inp2: each element is read before it is written
        #pragma omp simd
        for (int c = 0; c < C; c++) sum[c] = inp1[at + c] + inp2[at + c];
        rmsnorm_row(out + at, rstd + n, sum, weight, C);
    }
}

// dx (C) += r (g - n mean(g n)), dw (C) += n dy for one row; g = w dy, n = x r.
static void rmsnorm_row_backward(float* restrict dx, float* restrict dw, const float* restrict dy,
                                 const float* restrict x, const float* restrict weight, float r, int C) {
    float gn_sum = 0.0f;
    #pragma omp simd reduction(+:gn_sum)
    for (int c = 0; c < C; c++) gn_sum += weight[c] * dy[c] * x[c] * r;
    float gn_mean = gn_sum / C;
    #pragma omp simd
    for (int c = 0; c < C; c++) {
        float n = x[c] * r;
        dx[c] += (weight[c] * dy[c] - n * gn_mean) * r;
        dw[c] += n * dy[c];
    }
}

// dinp (N,C), dweight (C) += from dout (N,C).
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C) {
    int nthreads = omp_get_max_threads();
    float* partial = calloc_check((size_t)nthreads * C, sizeof(float));   // per thread: dweight (C)
    #pragma omp parallel num_threads(nthreads)
    {
        float* dw = partial + (size_t)omp_get_thread_num() * C;
        #pragma omp for schedule(static)
        for (int n = 0; n < N; n++)
            rmsnorm_row_backward(dinp + (size_t)n * C, dw, dout + (size_t)n * C, inp + (size_t)n * C, weight,
                                 rstd[n], C);
        #pragma omp for schedule(static)
        for (int c = 0; c < C; c++) {
            float sum = 0.0f;
            for (int t = 0; t < nthreads; t++) sum += partial[(size_t)t * C + c];
            dweight[c] += sum;
        }
    }
    free(partial);
}
