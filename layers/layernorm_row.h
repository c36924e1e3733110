// The backward of LayerNorm over one row of C features, shared by layernorm.c, headnorm.c (one
// head of a row) and attention/qknorm.c (one head of q or k). A helper inside those CPU kernels
// (static inline C, no kernel of its own and no CUDA twin), so not a kernel pair's header; the
// GPU's counterpart is layers/layernorm_group.cuh.
#pragma once

// dx (C) += input gradient; dw (C) += weight gradient; db (C) += bias gradient unless db is NULL.
// mean, rstd are the forward's statistics of x.
static inline void layernorm_row_backward(float* restrict dx, float* restrict dw, float* restrict db,
                                          const float* restrict dy, const float* restrict x,
                                          const float* restrict weight, float mean, float rstd, int C) {
    float dnorm_sum = 0.0f, dnorm_norm_sum = 0.0f;
    #pragma omp simd reduction(+:dnorm_sum, dnorm_norm_sum)
    for (int c = 0; c < C; c++) {
        float dnorm = weight[c] * dy[c];
        dnorm_sum += dnorm;
        dnorm_norm_sum += dnorm * (x[c] - mean) * rstd;
    }
    float dnorm_mean = dnorm_sum / C, dnorm_norm_mean = dnorm_norm_sum / C;
    #pragma omp simd
    for (int c = 0; c < C; c++) {
        float norm = (x[c] - mean) * rstd;
        dx[c] += (weight[c] * dy[c] - dnorm_mean - norm * dnorm_norm_mean) * rstd;
        dw[c] += norm * dy[c];
    }
    if (!db) return;
    #pragma omp simd
    for (int c = 0; c < C; c++) db[c] += dy[c];
}
