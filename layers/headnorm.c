// Per-head LayerNorm, xLSTM's MultiHeadLayerNorm (docs/MODEL.md 11): each row of C = NH*hs channels is
// normalised per head over its hs features (mean, biased variance, eps), then scaled by a per-channel
// weight; no bias. It follows the mLSTM cell and divides out any per-(row, head) scale of the cell
// output, which is why the cell's backward may ignore its normaliser (docs/MODEL.md 11.2). The forward saves
// mean and rstd per (row, head); the backward reduces dweight over rows through per-thread partial
// sums added in thread order (no atomics; deterministic for a given thread count).
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "common/check.h"
#include "layers/headnorm.h"
#include "layers/layernorm_row.h"

// One head of one row: out (hs) = (x - mean) * rstd * weight; writes mean[0], rstd[0].
static void headnorm_group(float* restrict out, float* mean, float* rstd, const float* restrict x,
                           const float* restrict weight, int hs, float eps) {
    float sum = 0.0f;
    #pragma omp simd reduction(+:sum)
    for (int c = 0; c < hs; c++) sum += x[c];
    float m = sum / hs, var = 0.0f;
    #pragma omp simd reduction(+:var)
    for (int c = 0; c < hs; c++) var += (x[c] - m) * (x[c] - m);
    float s = 1.0f / sqrtf(var / hs + eps);
    #pragma omp simd
    for (int c = 0; c < hs; c++) out[c] = (x[c] - m) * s * weight[c];
    *mean = m;
    *rstd = s;
}

// inp (N,C) -> out (N,C); saves mean, rstd (N,NH).
void headnorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                      int N, int NH, int hs, float eps) {
    #pragma omp parallel for
    for (long g = 0; g < (long)N * NH; g++) {
        size_t at = (size_t)g * hs;   // row n = g / NH, head g % NH: channels (g % NH) * hs of row n
        headnorm_group(out + at, mean + g, rstd + g, inp + at, weight + (g % NH) * hs, hs, eps);
    }
}

// dinp (N,C), dweight (C) += from dout (N,C).
void headnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                       const float* mean, const float* rstd, int N, int NH, int hs) {
    int nthreads = omp_get_max_threads();
    size_t C = (size_t)NH * hs;
    float* partial = calloc_check((size_t)nthreads * C, sizeof(float));   // per thread: dweight (C)
    #pragma omp parallel num_threads(nthreads)
    {
        float* dw = partial + (size_t)omp_get_thread_num() * C;
        #pragma omp for schedule(static)
        for (long g = 0; g < (long)N * NH; g++) {
            size_t at = (size_t)g * hs, c0 = (size_t)(g % NH) * hs;
            layernorm_row_backward(dinp + at, dw + c0, NULL, dout + at, inp + at, weight + c0, mean[g], rstd[g], hs);
        }
        #pragma omp for schedule(static)
        for (long c = 0; c < (long)C; c++) {
            float sum = 0.0f;
            for (int t = 0; t < nthreads; t++) sum += partial[(size_t)t * C + c];
            dweight[c] += sum;
        }
    }
    free(partial);
}
