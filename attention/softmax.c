// Causal softmax attention on the CPU, flash-style (FlashAttention, Dao et al. 2022; METHODS.md
// section 0): the forward keeps only the log-sum-exp LSE_i of each score row, and the backward
// recomputes p_ij = exp(s_ij - LSE_i) from it, so no (T,T) buffer exists in either direction.
// Scores s_ij = q_i.k_j / sqrt(hs).
// Speed: keys and values are copied TRANSPOSED, (hs, ld), into scratch, so every product runs along
// the keys j with contiguous loads, and query rows go in groups of GROUP, so each load of a key or
// value feeds GROUP multiply-adds: scores are a (GROUP x TILE) register tile summed over hs; dK and
// dV are rank-GROUP updates of transposed accumulators, added back into dqkv once per head; the
// products with V (forward) and K (dQ) are GROUP dot products along the keys.
// Parallelism: the forward runs one task per (b, h, block of query rows); the backward one task per
// (b, h), which owns that head's columns of dqkv, so its += into dK and dV needs no atomics.
#include <math.h>
#include <stdlib.h>

#include "attention/attention.h"
#include "common/check.h"

#define GROUP 4          // query rows handled together
#define TILE 32          // keys per register tile of scores; scratch rows are padded to a multiple
#define LANES 16         // partial sums per dot product (one AVX-512 register)
#define QUERY_BLOCK 64   // query rows per forward task; they share one transposed copy of K and V

static inline int min_int(int a, int b) { return a < b ? a : b; }
static inline int round_up(int n, int m) { return (n + m - 1) / m * m; }

// dst (hs, ld) = the first n rows of src (n, hs) transposed, zero in columns n..ld-1;
// src rows are `stride` floats apart.
static void transpose_rows(float* restrict dst, int ld, const float* restrict src, int n, size_t stride, int hs) {
    for (int j = 0; j < n; j++)
        for (int c = 0; c < hs; c++) dst[(size_t)c * ld + j] = src[j * stride + c];
    for (int c = 0; c < hs; c++)
        for (int j = n; j < ld; j++) dst[(size_t)c * ld + j] = 0.0f;
}

// dst rows (n, hs), `stride` floats apart, += src (hs, ld) [:, :n] transposed.
static void add_transposed(float* restrict dst, size_t stride, const float* restrict src, int ld, int n, int hs) {
    for (int j = 0; j < n; j++)
        for (int c = 0; c < hs; c++) dst[j * stride + c] += src[(size_t)c * ld + j];
}

// s (GROUP, ld) [:, :n] = alpha * x (GROUP rows of hs) @ mt (hs, ld) [:, :n]; mt is zero-padded to
// a multiple of TILE columns. One (GROUP x TILE) tile of s stays in registers over the hs loop.
static void rows_times_columns(float* restrict s, float alpha, const float* const x[GROUP],
                               const float* restrict mt, int ld, int n, int hs) {
    for (int j0 = 0; j0 < n; j0 += TILE) {
        float acc[GROUP][TILE] = {{0.0f}};
        for (int c = 0; c < hs; c++) {
            const float* restrict mt_c = mt + (size_t)c * ld + j0;
            for (int r = 0; r < GROUP; r++) {
                float x_rc = x[r][c];
                for (int j = 0; j < TILE; j++) acc[r][j] += x_rc * mt_c[j];
            }
        }
        int nj = min_int(TILE, n - j0);
        for (int r = 0; r < GROUP; r++)
            for (int j = 0; j < nj; j++) s[(size_t)r * ld + j0 + j] = alpha * acc[r][j];
    }
}

// m (hs, ld) [:, :n] += sum_r x_r (hs) outer y_r (n), for the GROUP rows x and the rows of y (GROUP, ld).
static void rank_group_update(float* restrict m, const float* const x[GROUP], const float* restrict y,
                              int ld, int n, int hs) {
    for (int c = 0; c < hs; c++) {
        float x_c[GROUP];
        for (int r = 0; r < GROUP; r++) x_c[r] = x[r][c];
        float* restrict m_c = m + (size_t)c * ld;
        for (int j = 0; j < n; j++) {
            float sum = 0.0f;
            for (int r = 0; r < GROUP; r++) sum += x_c[r] * y[(size_t)r * ld + j];
            m_c[j] += sum;
        }
    }
}

// dots[r] = y_r (n) . column (n) for the rows of y (GROUP, ld), with LANES partial sums each so
// that it vectorizes without -ffast-math.
static void group_dots(float dots[GROUP], const float* restrict y, int ld, const float* restrict column, int n) {
    float partial[GROUP][LANES] = {{0.0f}};
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int r = 0; r < GROUP; r++)
            for (int l = 0; l < LANES; l++) partial[r][l] += y[(size_t)r * ld + j + l] * column[j + l];
    for (int r = 0; r < GROUP; r++) {
        float sum = 0.0f;
        for (int jt = j; jt < n; jt++) sum += y[(size_t)r * ld + jt] * column[jt];
        for (int l = 0; l < LANES; l++) sum += partial[r][l];
        dots[r] = sum;
    }
}

// p (n) = softmax of the first n_seen scores of s, 0 for the masked rest; returns the LSE.
static float softmax_row(float* restrict p, const float* restrict s, int n_seen, int n) {
    float maxs = -INFINITY;
    for (int j = 0; j < n_seen; j++) maxs = s[j] > maxs ? s[j] : maxs;
    float sum = 0.0f;
    for (int j = 0; j < n_seen; j++) {
        p[j] = expf(s[j] - maxs);
        sum += p[j];
    }
    float inv_sum = 1.0f / sum;
    for (int j = 0; j < n_seen; j++) p[j] *= inv_sum;
    for (int j = n_seen; j < n; j++) p[j] = 0.0f;
    return maxs + logf(sum);
}

// The forward for query rows i0..i0+g-1 (g <= GROUP) of one (b, h); n = keys seen by the last row.
// head: qkv at (b, row 0, column h*hs); kt, vt (hs, ld) keys and values transposed; s (GROUP, ld) scratch.
static void attention_group(float* out, float* lse, const float* head, const float* kt, const float* vt,
                            float* s, int ld, int i0, int g, int first_pos, int C, int hs, float scale) {
    size_t stride = 3 * (size_t)C;
    const float* q[GROUP];
    for (int r = 0; r < GROUP; r++) q[r] = head + (size_t)(first_pos + i0 + min_int(r, g - 1)) * stride;
    int n = first_pos + i0 + g;
    rows_times_columns(s, scale, q, kt, ld, n, hs);
    for (int r = 0; r < GROUP; r++)   // rows past g are padding: all-zero probabilities
        lse[i0 + min_int(r, g - 1)] = softmax_row(s + (size_t)r * ld, s + (size_t)r * ld,
                                                  r < g ? first_pos + i0 + r + 1 : 0, n);
    for (int c = 0; c < hs; c++) {
        float o[GROUP];
        group_dots(o, s, ld, vt + (size_t)c * ld, n);
        for (int r = 0; r < g; r++) out[(size_t)(i0 + r) * C + c] = o[r];
    }
}

// qkv (B,Tmax,3C) -> out (B,Tq,C), lse (B,NH,Tq); query i is position Tk-Tq+i (see attention.h).
void attention_forward(float* out, float* lse, const float* qkv, int B, int Tq, int Tk, int Tmax, int C, int NH) {
    int hs = C / NH, n_blocks = (Tq + QUERY_BLOCK - 1) / QUERY_BLOCK, first_pos = Tk - Tq;
    float scale = 1.0f / sqrtf((float)hs);
    size_t stride = 3 * (size_t)C, max_ld = round_up(Tk, TILE);
    #pragma omp parallel
    {
        float* kt = malloc_check(max_ld * hs * sizeof(float));
        float* vt = malloc_check(max_ld * hs * sizeof(float));
        float* s = malloc_check(max_ld * GROUP * sizeof(float));
        #pragma omp for collapse(3) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                for (int blk = 0; blk < n_blocks; blk++) {
                    int i0 = blk * QUERY_BLOCK, i1 = min_int(i0 + QUERY_BLOCK, Tq);
                    int n_keys = first_pos + i1, ld = round_up(n_keys, TILE);
                    const float* head = qkv + (size_t)b * Tmax * stride + (size_t)h * hs;
                    transpose_rows(kt, ld, head + C, n_keys, stride, hs);
                    transpose_rows(vt, ld, head + 2 * C, n_keys, stride, hs);
                    float* out_bh = out + (size_t)b * Tq * C + (size_t)h * hs;
                    float* lse_bh = lse + ((size_t)b * NH + h) * Tq;
                    for (int i = i0; i < i1; i += GROUP)
                        attention_group(out_bh, lse_bh, head, kt, vt, s, ld, i, min_int(GROUP, i1 - i),
                                        first_pos, C, hs, scale);
                }
            }
        }
        free(s);
        free(vt);
        free(kt);
    }
}

// Per-thread scratch of the backward: K, V and the dK, dV accumulators transposed (hs, ld);
// probabilities p and scaled score gradients ds of a group of rows (GROUP, ld).
typedef struct {
    float *kt, *vt, *dkt, *dvt, *p, *ds;
} BackwardScratch;

// The backward for rows i0..i0+g-1 (g <= GROUP) of one head (see attention_backward_head).
static void attention_backward_group(float* dqkv, const float* dout, const float* qkv, const float* out,
                                     const float* lse, int i0, int g, int ld, int C, int hs, float scale,
                                     BackwardScratch* w) {
    size_t stride = 3 * (size_t)C;
    const float *q[GROUP], *dO[GROUP];
    for (int r = 0; r < GROUP; r++) {
        int i = i0 + min_int(r, g - 1);
        q[r] = qkv + (size_t)i * stride;
        dO[r] = dout + (size_t)i * C;
    }
    int n = i0 + g;
    rows_times_columns(w->p, scale, q, w->kt, ld, n, hs);    // scores s_ij
    rows_times_columns(w->ds, 1.0f, dO, w->vt, ld, n, hs);   // dP_ij = dO_i . v_j
    for (int r = 0; r < GROUP; r++) {
        float* p = w->p + (size_t)r * ld;
        float* ds = w->ds + (size_t)r * ld;
        int i = i0 + r, n_seen = r < g ? i + 1 : 0;           // rows past g are padding
        float D_i = 0.0f;                                      // sum_c dO_ic O_ic = rowsum(dP * P)
        if (r < g)
            for (int c = 0; c < hs; c++) D_i += dO[r][c] * out[(size_t)i * C + c];
        for (int j = 0; j < n_seen; j++) {
            p[j] = expf(p[j] - lse[i]);
            ds[j] = scale * p[j] * (ds[j] - D_i);              // scale * dS_ij
        }
        for (int j = n_seen; j < n; j++) p[j] = ds[j] = 0.0f;
    }
    rank_group_update(w->dvt, dO, w->p, ld, n, hs);          // dV_j += p_ij dO_i
    rank_group_update(w->dkt, q, w->ds, ld, n, hs);          // dK_j += scale dS_ij Q_i
    for (int c = 0; c < hs; c++) {                            // dQ_i += scale dS_ij K_j
        float dq[GROUP];
        group_dots(dq, w->ds, ld, w->kt + (size_t)c * ld, n);
        for (int r = 0; r < g; r++) dqkv[(size_t)(i0 + r) * stride + c] += dq[r];
    }
}

// One (b, h): dqkv (T,3C) += for this head's columns, from dout, qkv, out (T rows) and lse (T).
// Pointers are at row 0, column h*hs; rows are 3C (qkv, dqkv) or C (out, dout) floats apart.
static void attention_backward_head(float* dqkv, const float* dout, const float* qkv, const float* out,
                                    const float* lse, int T, int C, int hs, float scale, BackwardScratch* w) {
    size_t stride = 3 * (size_t)C;
    int ld = round_up(T, TILE);
    transpose_rows(w->kt, ld, qkv + C, T, stride, hs);
    transpose_rows(w->vt, ld, qkv + 2 * C, T, stride, hs);
    for (size_t k = 0; k < (size_t)hs * ld; k++) w->dkt[k] = w->dvt[k] = 0.0f;
    for (int i0 = 0; i0 < T; i0 += GROUP)
        attention_backward_group(dqkv, dout, qkv, out, lse, i0, min_int(GROUP, T - i0), ld, C, hs, scale, w);
    add_transposed(dqkv + C, stride, w->dkt, ld, T, hs);
    add_transposed(dqkv + 2 * C, stride, w->dvt, ld, T, hs);
}

// dqkv (B,T,3C) += from dout (B,T,C), qkv (B,T,3C), out (B,T,C), lse (B,NH,T).
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                        int B, int T, int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel
    {
        size_t ld = round_up(T, TILE), n = (size_t)hs * ld;
        float* buf = malloc_check((4 * n + 2 * GROUP * ld) * sizeof(float));
        BackwardScratch w = {buf, buf + n, buf + 2 * n, buf + 3 * n, buf + 4 * n, buf + 4 * n + GROUP * ld};
        #pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                size_t at3 = (size_t)b * T * 3 * C + (size_t)h * hs, at1 = (size_t)b * T * C + (size_t)h * hs;
                attention_backward_head(dqkv + at3, dout + at1, qkv + at3, out + at1,
                                        lse + ((size_t)b * NH + h) * T, T, C, hs, scale, &w);
            }
        }
        free(buf);
    }
}
