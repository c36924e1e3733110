// QK-norm (docs/MODEL.md section 9): a LayerNorm over the hs features of every head of q and
// of k, before RoPE, as the sigmoid-attention reference's nn.LayerNorm(head_dim): eps 1e-5, biased
// variance, one affine (weight, bias) of size hs for q and one for k, shared across heads. v is
// copied through. The forward saves mean and rstd per (row, q/k, head) for the backward.
// The backward reduces dqw, dqb, dkw, dkb over rows and heads through partial sums over a fixed
// split of the rows into at most QKNORM_CHUNKS chunks, added in chunk order: no atomics, and the
// result does not depend on the thread count.
#include <math.h>
#include <stdlib.h>

#include "attention/qknorm.h"
#include "common/check.h"
#include "layers/layernorm_row.h"

#define QKNORM_EPS 1e-5f
#define QKNORM_CHUNKS 64

// inp/out (N,3C), v copied; mean, rstd (N,2,NH).
void qknorm_forward(float* out, float* mean, float* rstd, const float* inp,
                    const float* qw, const float* qb, const float* kw, const float* kb, int N, int C, int NH) {
    int hs = C / NH;
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float* x_row = inp + (size_t)n * 3 * C;
        float* y_row = out + (size_t)n * 3 * C;
        for (int head = 0; head < 2 * NH; head++) {            // q heads then k heads
            const float* x = x_row + (size_t)head * hs;
            float* y = y_row + (size_t)head * hs;
            const float* w = head < NH ? qw : kw;
            const float* b = head < NH ? qb : kb;
            float sum = 0.0f;
            #pragma omp simd reduction(+:sum)
            for (int c = 0; c < hs; c++) sum += x[c];
            float m = sum / hs;
            float var = 0.0f;
            #pragma omp simd reduction(+:var)
            for (int c = 0; c < hs; c++) var += (x[c] - m) * (x[c] - m);
            float s = 1.0f / sqrtf(var / hs + QKNORM_EPS);
            #pragma omp simd
            for (int c = 0; c < hs; c++) y[c] = (x[c] - m) * s * w[c] + b[c];
            mean[(size_t)n * 2 * NH + head] = m;
            rstd[(size_t)n * 2 * NH + head] = s;
        }
        #pragma omp simd
        for (int c = 2 * C; c < 3 * C; c++) y_row[c] = x_row[c];
    }
}

// dinp (N,3C) (v: += dout), dqw, dqb, dkw, dkb (hs) += from dout (N,3C).
void qknorm_backward(float* dinp, float* dqw, float* dqb, float* dkw, float* dkb, const float* dout,
                     const float* inp, const float* qw, const float* kw, const float* mean, const float* rstd,
                     int N, int C, int NH) {
    int hs = C / NH;
    int chunks = N < QKNORM_CHUNKS ? N : QKNORM_CHUNKS;
    if (chunks == 0) return;
    int rows_per_chunk = (N + chunks - 1) / chunks;
    float* partial = calloc_check((size_t)chunks * 4 * hs, sizeof(float));   // per chunk: dqw, dqb, dkw, dkb
    #pragma omp parallel
    {
        #pragma omp for schedule(static)
        for (int k = 0; k < chunks; k++) {
            float* part = partial + (size_t)k * 4 * hs;
            int lo = k * rows_per_chunk, hi = lo + rows_per_chunk < N ? lo + rows_per_chunk : N;
            for (int n = lo; n < hi; n++) {
                const float* x_row = inp + (size_t)n * 3 * C;
                const float* dy_row = dout + (size_t)n * 3 * C;
                float* dx_row = dinp + (size_t)n * 3 * C;
                for (int head = 0; head < 2 * NH; head++) {
                    const float* x = x_row + (size_t)head * hs;
                    const float* dy = dy_row + (size_t)head * hs;
                    float* dx = dx_row + (size_t)head * hs;
                    const float* w = head < NH ? qw : kw;
                    float* dw = part + (head < NH ? 0 : 2 * hs);
                    float* db = dw + hs;
                    float m = mean[(size_t)n * 2 * NH + head], s = rstd[(size_t)n * 2 * NH + head];
                    layernorm_row_backward(dx, dw, db, dy, x, w, m, s, hs);
                }
                #pragma omp simd
                for (int c = 2 * C; c < 3 * C; c++) dx_row[c] += dy_row[c];
            }
        }
        // implicit barrier: all partials are complete
        #pragma omp for schedule(static)
        for (int i = 0; i < 4 * hs; i++) {
            float sum = 0.0f;
            for (int k = 0; k < chunks; k++) sum += partial[(size_t)k * 4 * hs + i];
            float* dst = i < hs ? dqw : i < 2 * hs ? dqb : i < 3 * hs ? dkw : dkb;
            dst[i % hs] += sum;
        }
    }
    free(partial);
}
