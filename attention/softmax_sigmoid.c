// Causal attention on the CPU, flash-style (FlashAttention, Dao et al. 2022; docs/MODEL.md section 4),
// with the score-to-weight map of AttnScore: softmax, sigmoid(s + b) (docs/MODEL.md 5.1-5.2, FlashSigmoid)
// or sigmoid divided by its row sum (the sink paper's normalized variant, docs/MODEL.md 5.3), with or
// without ALiBi's offset -slope_h (i - j) added to the scores (docs/MODEL.md section 6).
// No (T,T) buffer exists in either direction: the forward keeps one statistic per row (softmax: the
// log-sum-exp; normalized sigmoid: the row sum Z) and the backward recomputes the weights from it:
//   softmax:      p = exp(s - LSE),        dS = p (dP - D),                          D = dO . O
//   sigmoid:      p = sigmoid(s + b),      dS = dP p (1 - p)
//   sigmoid/norm: a = sigmoid(s + b) / Z', dS = (dP - D) / Z' p (1 - p), Z' = Z + 1e-8
// then dV += A^T dO, dQ += scale dS K, dK += scale dS^T Q, with s = scale q.k, scale = 1/sqrt(hs).
// Speed: query rows go in groups of GROUP, and every product is one of two register-tiled loops
// over zero-padded scratch copies of the head: group_times_matrix (GROUP rows times a matrix, a
// GROUP x TILE tile of the result held in registers: S = Q K^T with K^T copied as (hs, keys),
// O = A V, dP = dO V^T, dQ = dS K) and add_outer_group (dK += dS^T Q, dV += A^T dO into (keys, hs)
// accumulators added back into dqkv once per head). Inner loops run along contiguous memory with a
// fixed trip count, so they vectorize; fast_exp is a vectorizable exp.
// Parallelism: the forward runs one task per (b, h, block of query rows); the backward one task per
// (b, h), which owns that head's columns of dqkv, so its += into dK and dV needs no atomics.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attention/softmax_sigmoid.h"
#include "common/fastmath.h"
#include "common/check.h"

// GROUP x TILE accumulators are 16 AVX-512 registers (of 32); measured best on Zen 4 (T=1024, hs=64).
#define GROUP 8           // query rows handled together
#define TILE 32           // result columns per register tile; scratch rows are zero-padded to a multiple
#define QUERY_BLOCK 128   // query rows per forward task; they share one scratch copy of K and V
#define SIGMOID_NORM_EPS 1e-8f   // Z' = Z + eps in the normalized sigmoid (docs/MODEL.md 5.3)

static inline int min_int(int a, int b) { return a < b ? a : b; }
static inline int round_up(int n, int m) { return (n + m - 1) / m * m; }


// dst (n, ld) = src (n, hs) rows, `stride` floats apart, zero-padded to ld >= hs columns.
static void copy_rows(float* restrict dst, int ld, const float* restrict src, int n, size_t stride, int hs) {
    for (int j = 0; j < n; j++) {
        memcpy(dst + (size_t)j * ld, src + j * stride, (size_t)hs * sizeof(float));
        memset(dst + (size_t)j * ld + hs, 0, (size_t)(ld - hs) * sizeof(float));
    }
}

// dst (hs, ld) = src (n, hs) rows, `stride` floats apart, transposed, zero in columns n..ld-1.
// Blocks of 16 rows keep the reads in L1 and write whole cache lines.
static void transpose_rows(float* restrict dst, int ld, const float* restrict src, int n, size_t stride, int hs) {
    for (int j0 = 0; j0 < n; j0 += 16) {
        int j1 = min_int(j0 + 16, n);
        for (int c = 0; c < hs; c++)
            for (int j = j0; j < j1; j++) dst[(size_t)c * ld + j] = src[j * stride + c];
    }
    for (int c = 0; c < hs; c++)
        for (int j = n; j < ld; j++) dst[(size_t)c * ld + j] = 0.0f;
}

// dst rows (n, hs), `stride` floats apart, += src (n, ld) [:, :hs].
static void add_rows(float* restrict dst, size_t stride, const float* restrict src, int ld, int n, int hs) {
    for (int j = 0; j < n; j++)
        for (int c = 0; c < hs; c++) dst[j * stride + c] += src[(size_t)j * ld + c];
}

// out_r (ncols) (= or +=) alpha * a_r (k) @ b (k, ldb) [:, :ncols] for the first g of the GROUP rows
// (a_r of rows past g must be readable; their results are dropped). b is zero-padded to a multiple
// of TILE columns; one GROUP x TILE tile of the result stays in registers over the k loop.
static void group_times_matrix(float* const out[GROUP], int accumulate, float alpha, const float* const a[GROUP],
                               const float* restrict b, int ldb, int k, int ncols, int g) {
    for (int j0 = 0; j0 < ncols; j0 += TILE) {
        float acc[GROUP][TILE] = {{0.0f}};
        for (int kk = 0; kk < k; kk++) {
            const float* restrict b_k = b + (size_t)kk * ldb + j0;
            for (int r = 0; r < GROUP; r++) {
                float a_rk = a[r][kk];
                for (int j = 0; j < TILE; j++) acc[r][j] += a_rk * b_k[j];
            }
        }
        int nj = min_int(TILE, ncols - j0);
        for (int r = 0; r < g; r++) {
            float* out_r = out[r] + j0;
            for (int j = 0; j < nj; j++) out_r[j] = (accumulate ? out_r[j] : 0.0f) + alpha * acc[r][j];
        }
    }
}

// m (n, ldm) += y^T x: row j of m gets sum_r y[r][j] * x[r], for y (GROUP, ldy) and x (GROUP, ldm),
// where ldm is a multiple of TILE (x zero-padded).
static void add_outer_group(float* restrict m, const float* restrict y, int ldy, const float* restrict x,
                            int ldm, int n) {
    for (int c0 = 0; c0 < ldm; c0 += TILE) {
        for (int j = 0; j < n; j++) {
            float* restrict m_j = m + (size_t)j * ldm + c0;
            for (int c = 0; c < TILE; c++) {
                float sum = 0.0f;
                for (int r = 0; r < GROUP; r++) sum += y[(size_t)r * ldy + j] * x[(size_t)r * ldm + c0 + c];
                m_j[c] += sum;
            }
        }
    }
}

// s (n) = softmax of the scores s (n), in place; returns the LSE.
static float softmax_row(float* restrict s, int n) {
    float maxs = -INFINITY, sum = 0.0f;
    #pragma omp simd reduction(max:maxs)
    for (int j = 0; j < n; j++) maxs = s[j] > maxs ? s[j] : maxs;
    #pragma omp simd reduction(+:sum)
    for (int j = 0; j < n; j++) {
        s[j] = fast_exp(s[j] - maxs);
        sum += s[j];
    }
    float inv_sum = 1.0f / sum;
    for (int j = 0; j < n; j++) s[j] *= inv_sum;
    return maxs + logf(sum);
}

// s (n) = sigmoid(s + bias), in place, divided by the row sum + eps if normalize; returns the row
// sum Z if normalize, else 0.
static float sigmoid_row(float* restrict s, int n, float bias, int normalize) {
    float sum = 0.0f;
    #pragma omp simd reduction(+:sum)
    for (int j = 0; j < n; j++) {
        s[j] = sigmoid(s[j] + bias);
        sum += s[j];
    }
    if (!normalize) return 0.0f;
    float inv_z = 1.0f / (sum + SIGMOID_NORM_EPS);
    for (int j = 0; j < n; j++) s[j] *= inv_z;
    return sum;
}

// ALiBi: the row's query is position n_seen - 1 and key j gets -slope (n_seen - 1 - j).
static void add_alibi_row(float* restrict s, int n_seen, float slope) {
    if (slope == 0.0f) return;
    for (int j = 0; j < n_seen; j++) s[j] -= slope * (float)(n_seen - 1 - j);
}

// The weights of one row: the first n_seen scores of s (n) become weights in place, the masked rest
// 0. Returns the row's statistic for the backward (see the file header).
static float weights_row(float* restrict s, int n_seen, int n, AttnScore score, float slope) {
    add_alibi_row(s, n_seen, slope);
    float stat = score.sigmoid ? sigmoid_row(s, n_seen, score.bias, score.normalize) : softmax_row(s, n_seen);
    for (int j = n_seen; j < n; j++) s[j] = 0.0f;
    return stat;
}

// Rows r of a (GROUP, ld) scratch matrix, as pointers.
static void row_pointers(float* rows[GROUP], float* m, int ld) {
    for (int r = 0; r < GROUP; r++) rows[r] = m + (size_t)r * ld;
}

// Forward scratch of one task: keys transposed kt (hs, ld), values vp (keys, hsp), scores s (GROUP, ld).
typedef struct {
    float *kt, *vp, *s;
} ForwardScratch;

// The forward for the g <= GROUP query rows i0.. of one (b, h), which see n keys at most.
// q[r]: query rows; out, stat: this head's (Tq rows, C apart), (Tq).
static void attention_forward_group(float* out, float* stat, const float* const q[GROUP], const ForwardScratch* w,
                                    int ld, int hsp, int i0, int g, int n, int C, int hs, float scale,
                                    AttnScore score, float slope) {
    float* s[GROUP];
    row_pointers(s, w->s, ld);
    group_times_matrix(s, 0, scale, q, w->kt, ld, hs, n, GROUP);   // S = scale Q K^T
    for (int r = 0; r < GROUP; r++)   // query i0+r sees n-g+1+r keys; padding rows get weights 0
        if (r < g) stat[i0 + r] = weights_row(s[r], n - g + 1 + r, n, score, slope);
        else memset(s[r], 0, (size_t)n * sizeof(float));
    float* out_rows[GROUP];
    for (int r = 0; r < GROUP; r++) out_rows[r] = out + (size_t)(i0 + min_int(r, g - 1)) * C;
    group_times_matrix(out_rows, 0, 1.0f, (const float* const*)s, w->vp, hsp, n, hs, g);   // O = A V
}

// qkv (B,Tmax,3C) -> out (B,Tq,C), stat (B,NH,Tq); query i is position Tk-Tq+i (see attention.h).
void attention_forward(float* out, float* stat, const float* qkv, int B, int Tq, int Tk, int Tmax, int C, int NH,
                       AttnScore score) {
    int hs = C / NH, hsp = round_up(hs, TILE), n_blocks = (Tq + QUERY_BLOCK - 1) / QUERY_BLOCK;
    float scale = 1.0f / sqrtf((float)hs);
    size_t stride = 3 * (size_t)C, max_ld = round_up(Tk, TILE);
    #pragma omp parallel
    {
        ForwardScratch w = {malloc_check(max_ld * hs * sizeof(float)), malloc_check(max_ld * hsp * sizeof(float)),
                            malloc_check(max_ld * GROUP * sizeof(float))};
        #pragma omp for collapse(3) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                for (int blk = 0; blk < n_blocks; blk++) {
                    int i0 = blk * QUERY_BLOCK, i1 = min_int(i0 + QUERY_BLOCK, Tq);
                    int n_keys = Tk - Tq + i1, ld = round_up(n_keys, TILE);   // keys of the block's last row
                    const float* head = qkv + (size_t)b * Tmax * stride + (size_t)h * hs;
                    transpose_rows(w.kt, ld, head + C, n_keys, stride, hs);
                    copy_rows(w.vp, hsp, head + 2 * C, n_keys, stride, hs);
                    for (int i = i0; i < i1; i += GROUP) {
                        int g = min_int(GROUP, i1 - i);
                        const float* q[GROUP];
                        for (int r = 0; r < GROUP; r++) q[r] = head + (Tk - Tq + i + min_int(r, g - 1)) * stride;
                        attention_forward_group(out + (size_t)b * Tq * C + (size_t)h * hs,
                                                stat + ((size_t)b * NH + h) * Tq, q, &w, ld, hsp, i, g,
                                                Tk - Tq + i + g, C, hs, scale, score, attn_alibi_slope(score, h, NH));
                    }
                }
            }
        }
        free(w.s);
        free(w.vp);
        free(w.kt);
    }
}

// a (hs) . b (hs).
static float row_dot(const float* a, const float* b, int hs) {
    float sum = 0.0f;
    for (int c = 0; c < hs; c++) sum += a[c] * b[c];
    return sum;
}

// One row of the backward (see the file header). On entry p (n) holds the scores s and ds (n) holds
// dP = dO . v_j; on exit p holds the forward's weights and ds = scale * dS. stat: the row's statistic.
static void score_gradient_row(float* restrict p, float* restrict ds, const float* dout_row, const float* out_row,
                               float stat, int n, int hs, float scale, AttnScore score, float slope) {
    add_alibi_row(p, n, slope);
    if (!score.sigmoid) {
        float D = row_dot(dout_row, out_row, hs);
        #pragma omp simd
        for (int j = 0; j < n; j++) {
            p[j] = fast_exp(p[j] - stat);
            ds[j] = scale * p[j] * (ds[j] - D);
        }
        return;
    }
    // sigmoid: p (1 - p) = sig^2 e with e = exp(-(s + b)); unnormalized is D = 0, Z' = 1
    float D = score.normalize ? row_dot(dout_row, out_row, hs) : 0.0f;
    float inv_z = score.normalize ? 1.0f / (stat + SIGMOID_NORM_EPS) : 1.0f;
    #pragma omp simd
    for (int j = 0; j < n; j++) {
        float e = fast_exp(-(p[j] + score.bias)), sig = 1.0f / (1.0f + e);
        p[j] = sig * inv_z;
        ds[j] = scale * (ds[j] - D) * inv_z * sig * sig * e;
    }
}

// Backward scratch of one thread: keys and values transposed kt, vt (hs, ld); keys kp and the dK, dV
// accumulators (T, hsp); a group's queries qg and output gradients dog (GROUP, hsp); its
// weights p and scaled score gradients ds (GROUP, ld).
typedef struct {
    float *kt, *vt, *kp, *dk, *dv, *qg, *dog, *p, *ds;
} BackwardScratch;

// The backward for the g <= GROUP rows i0.. of one head (see attention_backward_head).
static void attention_backward_group(float* dqkv, const float* dout, const float* qkv, const float* out,
                                     const float* stat, const BackwardScratch* w, int ld, int hsp,
                                     int i0, int g, int C, int hs, float scale, AttnScore score, float slope) {
    size_t stride = 3 * (size_t)C;
    int n = i0 + g;   // keys seen by the last row
    copy_rows(w->qg, hsp, qkv + (size_t)i0 * stride, g, stride, hs);
    copy_rows(w->dog, hsp, dout + (size_t)i0 * C, g, C, hs);
    memset(w->qg + (size_t)g * hsp, 0, (size_t)(GROUP - g) * hsp * sizeof(float));
    memset(w->dog + (size_t)g * hsp, 0, (size_t)(GROUP - g) * hsp * sizeof(float));
    float *qg[GROUP], *dog[GROUP], *p[GROUP], *ds[GROUP];
    row_pointers(qg, w->qg, hsp);
    row_pointers(dog, w->dog, hsp);
    row_pointers(p, w->p, ld);
    row_pointers(ds, w->ds, ld);
    group_times_matrix(p, 0, scale, (const float* const*)qg, w->kt, ld, hs, n, GROUP);   // S = scale Q K^T
    group_times_matrix(ds, 0, 1.0f, (const float* const*)dog, w->vt, ld, hs, n, GROUP);  // dP = dO V^T
    for (int r = 0; r < GROUP; r++) {
        int n_seen = r < g ? i0 + r + 1 : 0;   // padding rows get p = ds = 0
        if (n_seen)
            score_gradient_row(p[r], ds[r], dog[r], out + (size_t)(i0 + r) * C, stat[i0 + r], n_seen, hs, scale,
                               score, slope);
        for (int j = n_seen; j < n; j++) p[r][j] = ds[r][j] = 0.0f;
    }
    add_outer_group(w->dv, w->p, ld, w->dog, hsp, n);     // dV += A^T dO
    add_outer_group(w->dk, w->ds, ld, w->qg, hsp, n);     // dK += scale dS^T Q
    float* dq[GROUP];
    for (int r = 0; r < GROUP; r++) dq[r] = dqkv + (size_t)(i0 + min_int(r, g - 1)) * stride;
    group_times_matrix(dq, 1, 1.0f, (const float* const*)ds, w->kp, hsp, n, hs, g);   // dQ += scale dS K
}

// One (b, h): dqkv (T,3C) += for this head's columns, from dout, qkv, out (T rows) and stat (T).
// Pointers are at row 0, column h*hs; rows are 3C (qkv, dqkv) or C (out, dout) floats apart.
static void attention_backward_head(float* dqkv, const float* dout, const float* qkv, const float* out,
                                    const float* stat, int T, int C, int hs, float scale, AttnScore score,
                                    float slope, const BackwardScratch* w) {
    size_t stride = 3 * (size_t)C;
    int ld = round_up(T, TILE), hsp = round_up(hs, TILE);
    transpose_rows(w->kt, ld, qkv + C, T, stride, hs);
    transpose_rows(w->vt, ld, qkv + 2 * C, T, stride, hs);
    copy_rows(w->kp, hsp, qkv + C, T, stride, hs);
    memset(w->dk, 0, (size_t)T * hsp * sizeof(float));
    memset(w->dv, 0, (size_t)T * hsp * sizeof(float));
    for (int i0 = 0; i0 < T; i0 += GROUP)
        attention_backward_group(dqkv, dout, qkv, out, stat, w, ld, hsp, i0, min_int(GROUP, T - i0), C, hs, scale,
                                 score, slope);
    add_rows(dqkv + C, stride, w->dk, hsp, T, hs);
    add_rows(dqkv + 2 * C, stride, w->dv, hsp, T, hs);
}

// dqkv (B,T,3C) += from dout (B,T,C), qkv (B,T,3C), out (B,T,C), stat (B,NH,T).
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* stat,
                        int B, int T, int C, int NH, AttnScore score) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel
    {
        size_t ld = round_up(T, TILE), hsp = round_up(hs, TILE), nt = (size_t)hs * ld, np = (size_t)T * hsp;
        float* buf = malloc_check((2 * nt + 3 * np + 2 * GROUP * hsp + 2 * GROUP * ld) * sizeof(float));
        BackwardScratch w;
        w.kt = buf, w.vt = w.kt + nt, w.kp = w.vt + nt, w.dk = w.kp + np, w.dv = w.dk + np;
        w.qg = w.dv + np, w.dog = w.qg + GROUP * hsp, w.p = w.dog + GROUP * hsp, w.ds = w.p + GROUP * ld;
        #pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                size_t at3 = (size_t)b * T * 3 * C + (size_t)h * hs, at1 = (size_t)b * T * C + (size_t)h * hs;
                attention_backward_head(dqkv + at3, dout + at1, qkv + at3, out + at1,
                                        stat + ((size_t)b * NH + h) * T, T, C, hs, scale, score,
                                        attn_alibi_slope(score, h, NH), &w);
            }
        }
        free(buf);
    }
}

// One row of attention_weights: s (n) holds the scaled scores of a query that sees n keys.
static void stored_weights_row(float* restrict s, int n, float stat, AttnScore score, float slope) {
    add_alibi_row(s, n, slope);
    float inv_z = score.normalize ? 1.0f / (stat + SIGMOID_NORM_EPS) : 1.0f;
    for (int j = 0; j < n; j++) s[j] = score.sigmoid ? sigmoid(s[j] + score.bias) * inv_z : fast_exp(s[j] - stat);
}

void attention_weights(float* weights, const float* qkv, const float* stat, int B, int T, int C, int NH,
                       AttnScore score) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float* head = qkv + (size_t)b * T * 3 * C + (size_t)h * hs;
            for (int i = 0; i < T; i++) {
                float* w = weights + (((size_t)b * NH + h) * T + i) * T;
                for (int j = 0; j < T; j++)
                    w[j] = j <= i ? scale * row_dot(head + (size_t)i * 3 * C, head + (size_t)j * 3 * C + C, hs) : 0.0f;
                stored_weights_row(w, i + 1, stat[((size_t)b * NH + h) * T + i], score, attn_alibi_slope(score, h, NH));
            }
        }
    }
}
