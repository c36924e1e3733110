// LayerScale (Touvron et al. 2021, "Going deeper with image transformers"; docs/MODEL.md 10): a
// learned per-channel scale gamma on a residual branch, x + gamma * branch(x), gamma initialised
// small (1e-4 in the sigmoid-attention reference). This file is the scale; the residual add is
// residual_forward. The backward reduces dscale over rows through partial sums over a fixed split
// of the rows into at most LAYERSCALE_CHUNKS chunks, added in chunk order: no atomics, and the
// result does not depend on the thread count.
#include <stdlib.h>

#include "common/check.h"
#include "layers/layerscale.h"

#define LAYERSCALE_CHUNKS 64

// out (N,C) = inp (N,C) * scale (C).
void layerscale_forward(float* out, const float* inp, const float* scale, int N, int C) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float* x = inp + (size_t)n * C;
        float* y = out + (size_t)n * C;
        #pragma omp simd
        for (int c = 0; c < C; c++) y[c] = x[c] * scale[c];
    }
}

// dinp (N,C) += dout * scale; dscale (C) += sum_n dout * inp.
void layerscale_backward(float* dinp, float* dscale, const float* dout, const float* inp, const float* scale,
                         int N, int C) {
    int chunks = N < LAYERSCALE_CHUNKS ? N : LAYERSCALE_CHUNKS;
    if (chunks == 0) return;
    int rows_per_chunk = (N + chunks - 1) / chunks;
    float* partial = calloc_check((size_t)chunks * C, sizeof(float));   // per chunk: dscale (C)
    #pragma omp parallel
    {
        #pragma omp for schedule(static)
        for (int k = 0; k < chunks; k++) {
            float* ds = partial + (size_t)k * C;
            int lo = k * rows_per_chunk, hi = lo + rows_per_chunk < N ? lo + rows_per_chunk : N;
            for (int n = lo; n < hi; n++) {
                const float* x = inp + (size_t)n * C;
                const float* dy = dout + (size_t)n * C;
                float* dx = dinp + (size_t)n * C;
                #pragma omp simd
                for (int c = 0; c < C; c++) {
                    dx[c] += dy[c] * scale[c];
                    ds[c] += dy[c] * x[c];
                }
            }
        }
        #pragma omp for schedule(static)
        for (int c = 0; c < C; c++) {
            float sum = 0.0f;
            for (int k = 0; k < chunks; k++) sum += partial[(size_t)k * C + c];
            dscale[c] += sum;
        }
    }
    free(partial);
}
