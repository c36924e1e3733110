// Causal softmax attention on the CPU, flash-style (FlashAttention, Dao et al. 2022; METHODS.md
// section 0): the forward keeps only the log-sum-exp LSE_i of each score row, and the backward
// recomputes p_ij = exp(s_ij - LSE_i) from it, so no (T,T) buffer exists in either direction.
// Scores s_ij = q_i.k_j / sqrt(hs).
// Speed: a task copies its head's keys and values TRANSPOSED, (hs, n), into scratch, so every
// product runs along the keys j with contiguous loads: a score row is s[j] += q[c] kt[c][j], the
// output out[c] = p . vt[c], and the backward's dK, dV are rank-1 updates of transposed scratch
// accumulators, added back into dqkv once per head. No inner loop carries a dependence through
// memory, and there is one horizontal sum per (row, channel) rather than per (row, key).
// Parallelism: the forward runs one task per (b, h, block of query rows); the backward one task per
// (b, h), which owns that head's columns of dqkv, so its += into dK and dV needs no atomics.
#include <math.h>
#include <stdlib.h>

#include "attention/attention.h"
#include "common/check.h"

#define QUERY_BLOCK 32   // query rows per forward task; they share one transposed copy of K and V
#define LANES 16         // partial sums in dot(): one AVX-512 register, two AVX2 ones

// a (n) . b (n), with LANES partial sums so that it vectorizes without -ffast-math.
static inline float dot(const float* restrict a, const float* restrict b, int n) {
    float partial[LANES] = {0.0f};
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int l = 0; l < LANES; l++) partial[l] += a[j + l] * b[j + l];
    float sum = 0.0f;
    for (; j < n; j++) sum += a[j] * b[j];
    for (int l = 0; l < LANES; l++) sum += partial[l];
    return sum;
}

// dst (hs, ld) [:, :n] = the first n rows of src (n, hs) transposed; src rows are `stride` floats apart.
static void transpose_rows(float* restrict dst, int ld, const float* restrict src, int n, size_t stride, int hs) {
    for (int j = 0; j < n; j++)
        for (int c = 0; c < hs; c++) dst[(size_t)c * ld + j] = src[j * stride + c];
}

// dst rows (n, hs), `stride` floats apart, += src (hs, ld) [:, :n] transposed.
static void add_transposed(float* restrict dst, size_t stride, const float* restrict src, int ld, int n, int hs) {
    for (int j = 0; j < n; j++)
        for (int c = 0; c < hs; c++) dst[j * stride + c] += src[(size_t)c * ld + j];
}

// out (n) = alpha * x (hs) @ mt (hs, ld) [:, :n]: x dotted with each of the first n columns.
static void row_times_columns(float* restrict out, float alpha, const float* restrict x,
                              const float* restrict mt, int ld, int n, int hs) {
    for (int j = 0; j < n; j++) out[j] = 0.0f;
    for (int c = 0; c < hs; c++) {
        float xc = alpha * x[c];
        const float* restrict mt_c = mt + (size_t)c * ld;
        for (int j = 0; j < n; j++) out[j] += xc * mt_c[j];
    }
}

// m (hs, ld) [:, :n] += x (hs) outer y (n).
static void rank1_update(float* restrict m, int ld, const float* restrict x, const float* restrict y, int n, int hs) {
    for (int c = 0; c < hs; c++) {
        float xc = x[c];
        float* restrict m_c = m + (size_t)c * ld;
        for (int j = 0; j < n; j++) m_c[j] += xc * y[j];
    }
}

// One query row over its first n keys: out (hs) = softmax(scale q.K^T) V; returns the LSE.
// kt, vt (hs, ld) hold keys and values transposed; p (n) is scratch.
static float attention_row(float* restrict out, float* restrict p, const float* restrict q,
                           const float* kt, const float* vt, int ld, int n, int hs, float scale) {
    row_times_columns(p, scale, q, kt, ld, n, hs);
    float maxs = -INFINITY;
    for (int j = 0; j < n; j++) maxs = p[j] > maxs ? p[j] : maxs;
    float sum = 0.0f;
    for (int j = 0; j < n; j++) {
        p[j] = expf(p[j] - maxs);
        sum += p[j];
    }
    float inv_sum = 1.0f / sum;
    for (int c = 0; c < hs; c++) out[c] = dot(p, vt + (size_t)c * ld, n) * inv_sum;
    return maxs + logf(sum);
}

// qkv (B,Tmax,3C) -> out (B,Tq,C), lse (B,NH,Tq); query i is position Tk-Tq+i (see attention.h).
void attention_forward(float* out, float* lse, const float* qkv, int B, int Tq, int Tk, int Tmax, int C, int NH) {
    int hs = C / NH, n_blocks = (Tq + QUERY_BLOCK - 1) / QUERY_BLOCK;
    float scale = 1.0f / sqrtf((float)hs);
    size_t stride = 3 * (size_t)C;
    #pragma omp parallel
    {
        float* kt = malloc_check((size_t)hs * Tk * sizeof(float));
        float* vt = malloc_check((size_t)hs * Tk * sizeof(float));
        float* p = malloc_check((size_t)Tk * sizeof(float));
        #pragma omp for collapse(3) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                for (int blk = 0; blk < n_blocks; blk++) {
                    int i0 = blk * QUERY_BLOCK, i1 = i0 + QUERY_BLOCK < Tq ? i0 + QUERY_BLOCK : Tq;
                    int n_keys = Tk - Tq + i1;   // keys seen by the block's last row
                    const float* head = qkv + (size_t)b * Tmax * stride + (size_t)h * hs;
                    transpose_rows(kt, n_keys, head + C, n_keys, stride, hs);
                    transpose_rows(vt, n_keys, head + 2 * C, n_keys, stride, hs);
                    for (int i = i0; i < i1; i++) {
                        int pos = Tk - Tq + i;
                        float* out_row = out + ((size_t)b * Tq + i) * C + (size_t)h * hs;
                        lse[((size_t)b * NH + h) * Tq + i] =
                            attention_row(out_row, p, head + pos * stride, kt, vt, n_keys, pos + 1, hs, scale);
                    }
                }
            }
        }
        free(p);
        free(vt);
        free(kt);
    }
}

// Per-thread scratch of the backward: K, V transposed, dK, dV accumulators transposed (hs, T); p, ds (T).
typedef struct {
    float *kt, *vt, *dkt, *dvt, *p, *ds;
} BackwardScratch;

// One (b, h): dqkv (T,3C) += for this head's columns, from dout, qkv, out (T rows) and lse (T).
// Pointers are at row 0, column h*hs; rows are 3C (qkv, dqkv) or C (out, dout) floats apart.
static void attention_backward_head(float* dqkv, const float* dout, const float* qkv, const float* out,
                                    const float* lse, int T, int C, int hs, float scale, BackwardScratch* s) {
    size_t stride = 3 * (size_t)C;
    transpose_rows(s->kt, T, qkv + C, T, stride, hs);
    transpose_rows(s->vt, T, qkv + 2 * C, T, stride, hs);
    for (size_t k = 0; k < (size_t)hs * T; k++) s->dkt[k] = s->dvt[k] = 0.0f;
    for (int i = 0; i < T; i++) {
        const float* q_i = qkv + i * stride;
        const float* dout_i = dout + (size_t)i * C;
        float D_i = dot(dout_i, out + (size_t)i * C, hs);           // sum_c dO_ic O_ic = rowsum(dP * P)
        row_times_columns(s->p, scale, q_i, s->kt, T, i + 1, hs);   // scores s_ij
        row_times_columns(s->ds, 1.0f, dout_i, s->vt, T, i + 1, hs);  // dP_ij = dO_i . v_j
        for (int j = 0; j <= i; j++) {
            s->p[j] = expf(s->p[j] - lse[i]);
            s->ds[j] = scale * s->p[j] * (s->ds[j] - D_i);          // scale * dS_ij
        }
        rank1_update(s->dvt, T, dout_i, s->p, i + 1, hs);          // dV_j += p_ij dO_i
        rank1_update(s->dkt, T, q_i, s->ds, i + 1, hs);            // dK_j += scale dS_ij Q_i
        float* dq_i = dqkv + i * stride;
        for (int c = 0; c < hs; c++) dq_i[c] += dot(s->ds, s->kt + (size_t)c * T, i + 1);  // dQ_i += scale dS K
    }
    add_transposed(dqkv + C, stride, s->dkt, T, T, hs);
    add_transposed(dqkv + 2 * C, stride, s->dvt, T, T, hs);
}

// dqkv (B,T,3C) += from dout (B,T,C), qkv (B,T,3C), out (B,T,C), lse (B,NH,T).
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                        int B, int T, int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel
    {
        size_t n = (size_t)hs * T;
        float* buf = malloc_check((4 * n + 2 * (size_t)T) * sizeof(float));
        BackwardScratch s = {buf, buf + n, buf + 2 * n, buf + 3 * n, buf + 4 * n, buf + 4 * n + T};
        #pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                size_t at3 = (size_t)b * T * 3 * C + (size_t)h * hs, at1 = (size_t)b * T * C + (size_t)h * hs;
                attention_backward_head(dqkv + at3, dout + at1, qkv + at3, out + at1,
                                        lse + ((size_t)b * NH + h) * T, T, C, hs, scale, &s);
            }
        }
        free(buf);
    }
}
