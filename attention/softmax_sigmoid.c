// Causal attention on the CPU, flash-style (FlashAttention, Dao et al. 2022; docs/MODEL.md section 4),
// with the score-to-weight map of AttnScore, as attention/score.h defines it: softmax, sigmoid(s + b)
// (docs/MODEL.md 5.1-5.2, FlashSigmoid) or sigmoid divided by its row sum (the sink paper's normalized
// variant, docs/MODEL.md 5.3), the logits with or without ALiBi's offset (docs/MODEL.md section 6).
// No (T,T) buffer exists in either direction: the forward keeps one statistic per row (softmax: the
// log-sum-exp; normalized sigmoid: the row sum Z) and the backward recomputes the weights from it:
//   softmax:      p = exp(s - LSE),        dS = p (dP - D),                          D = dO . O
//   sigmoid:      p = sigmoid(s + b),      dS = dP p (1 - p)
//   sigmoid/norm: a = sigmoid(s + b) / Z', dS = (dP - D) / Z' p (1 - p), Z' = Z + 1e-8
// then dV += A^T dO, dQ += scale dS K, dK += scale dS^T Q, with s = scale q.k, scale = 1/sqrt(hs).
// Speed: query rows go in groups of GROUP = 16 (one AVX-512 vector of floats, two of AVX2, four of
// NEON), and a group's scores live transposed, (keys, GROUP): row j holds key j's score for each
// query of the group. Then
//  - every product is one register-tiled loop, gemm (GCC/Clang vector extensions so it vectorizes
//    whatever the compiler decides), whose left operand is read one float at a time from fixed
//    offsets: S^T = K Q^T and dP^T = V dO^T read K^T, V^T (hs, keys) with Q^T, dO^T (hs, GROUP) as
//    vectors; O = A V, dQ = dS K, dV += A^T dO and dK += dS^T Q read the transposed weights. Its
//    register tiles per instruction set (common/cpu_shapes.h), rows x vectors of accumulators, the
//    last columns of a product in tiles of one vector: AVX-512 8 x 2 and 16 x 1 (16 of 32
//    registers), AVX2 6 x 2 and 12 x 1 (12 of 16), NEON 6 x 4 and 16 x 1 (24 and 16 of 32);
//  - the row statistics (max, sum, LSE) are vectors over the group's queries, with no horizontal sums,
//    and the masked entries are a compare per key (key j <= query position), so tiles stop at the
//    group's last key rounded up to VEC.
// Operands read over and over are contiguous scratch, made once per head or block of queries
// (rows of qkv are 3C floats apart and would map onto few cache sets): K^T (forward), Q^T, K^T, V^T,
// dO^T (backward) by VEC x VEC transposes (VEC = 16, 8 or 4) with shuffles in registers, copies of
// V (forward) and K (backward), and the dK, dV accumulators; a group's rows of Q and dO are read in
// place when hs is a multiple of VEC, else from zero-padded copies. The map's exp is fast_exp
// (common/fastmath.h), which vectorizes.
// Parallelism: the forward runs one task per (b, h, block of query rows); the backward one task per
// (b, h), which owns that head's columns of dqkv, so its += into dK and dV needs no atomics.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attention/rows.h"
#include "attention/softmax_sigmoid.h"
#include "common/check.h"
#include "common/cpu_shapes.h"

#define VEC ATTN_VEC      // floats per vector (common/cpu_shapes.h: 16 on AVX-512, 8 on AVX2, 4 on NEON)
#define GROUP ATTN_GROUP  // query rows handled together: GROUP / VEC vectors of scores per key
#define QUERY_BLOCK 128   // query rows per forward task; they share one scratch copy of K and V
#define LINE 16           // floats per 64-byte cache line
#define INLINE static inline __attribute__((always_inline))
// The register tiles of gemm: TILE_ROWS x TILE_VECS, the last columns TAIL_ROWS x 1 vector.
#define TILE_ROWS ATTN_TILE_ROWS
#define TILE_VECS ATTN_TILE_VECS
#define TAIL_ROWS ATTN_TAIL_ROWS
#define MAX_ROWS (TILE_ROWS > TAIL_ROWS ? TILE_ROWS : TAIL_ROWS)
_Static_assert(GROUP % VEC == 0 && LINE % VEC == 0, "whole vectors per group and per cache line");

typedef float vec __attribute__((vector_size(VEC * sizeof(float))));
typedef float vec_unaligned __attribute__((vector_size(VEC * sizeof(float)), aligned(4)));

static inline int min_int(int a, int b) { return a < b ? a : b; }
static inline int round_up(int n, int m) { return (n + m - 1) / m * m; }
// The row length of a scratch matrix with n >= 1 columns read down a column: an odd number of
// 64-byte lines, so that its rows spread over all cache sets (rows a power of two apart, 4 KiB at
// T = 1024, would share a few sets and evict each other).
static inline int padded_ld(int n) {
    return round_up(n, LINE) / LINE % 2 ? round_up(n, LINE) : round_up(n, LINE) + LINE;
}
// Floats of zeroed slack after each scratch block: a register tile reads its left operand for
// whole tiles of rows (MAX_ROWS) and drops the rows past the product's, which may lie past the
// last array.
#define SLACK (MAX_ROWS * GROUP)

// In-register transpose of VEC x VEC floats: stage s swaps bit s of the row index with bit s of the
// column index, by two-source shuffles of the row pairs (i, i | s).
#define SWAP_LO(s, k) (((k) & (s)) ? VEC + ((k) ^ (s)) : (k))
#define SWAP_HI(s, k) (((k) & (s)) ? VEC + (k) : ((k) | (s)))
#if VEC == 16
#define SWAP_MASK(F, s) F(s, 0), F(s, 1), F(s, 2), F(s, 3), F(s, 4), F(s, 5), F(s, 6), F(s, 7), F(s, 8), \
                        F(s, 9), F(s, 10), F(s, 11), F(s, 12), F(s, 13), F(s, 14), F(s, 15)
#elif VEC == 8
#define SWAP_MASK(F, s) F(s, 0), F(s, 1), F(s, 2), F(s, 3), F(s, 4), F(s, 5), F(s, 6), F(s, 7)
#elif VEC == 4
#define SWAP_MASK(F, s) F(s, 0), F(s, 1), F(s, 2), F(s, 3)
#else
#error "SWAP_MASK and the transpose stages are written for vectors of 4, 8 or 16 floats"
#endif
#define TRANSPOSE_STAGE(r, s)                                                         \
    for (int i = 0; i < VEC; i++) {                                                   \
        if (i & (s)) continue;                                                        \
        vec lo = __builtin_shufflevector(r[i], r[i | (s)], SWAP_MASK(SWAP_LO, s));    \
        r[i | (s)] = __builtin_shufflevector(r[i], r[i | (s)], SWAP_MASK(SWAP_HI, s)); \
        r[i] = lo;                                                                    \
    }

// dst (VEC rows, ld apart) = the VEC x VEC block of src (rows `stride` apart), transposed.
static void transpose_block(float* restrict dst, int ld, const float* restrict src, size_t stride) {
    vec r[VEC];
    for (int i = 0; i < VEC; i++) r[i] = *(const vec_unaligned*)(src + i * stride);
    TRANSPOSE_STAGE(r, 1)
    TRANSPOSE_STAGE(r, 2)
#if VEC >= 8
    TRANSPOSE_STAGE(r, 4)
#endif
#if VEC >= 16
    TRANSPOSE_STAGE(r, 8)
#endif
    for (int i = 0; i < VEC; i++) *(vec_unaligned*)(dst + (size_t)i * ld) = r[i];
}

// dst (hs, ld) = src (n, hs) rows, `stride` floats apart, transposed, zero in columns n..ld-1:
// whole VEC x VEC blocks in registers, the edges (head sizes or row counts not a multiple of VEC)
// one float at a time.
static void transpose_rows(float* restrict dst, int ld, const float* restrict src, int n, size_t stride, int hs) {
    int n_blocks = n / VEC * VEC, hs_blocks = hs / VEC * VEC;
    for (int j0 = 0; j0 < n_blocks; j0 += VEC)
        for (int c0 = 0; c0 < hs_blocks; c0 += VEC)
            transpose_block(dst + (size_t)c0 * ld + j0, ld, src + j0 * stride + c0, stride);
    for (int c = 0; c < hs; c++)
        for (int j = c < hs_blocks ? n_blocks : 0; j < ld; j++)
            dst[(size_t)c * ld + j] = j < n ? src[j * stride + c] : 0.0f;
}

// One register tile of gemm: rows m < mr and vectors v < nv of the product (mr, nv and a_ms are
// constants after inlining), stored into rows m < m_valid and columns < n_valid of out (rows ldo
// apart): = alpha * product, or += with accumulate.
INLINE void gemm_tile(float* out, size_t ldo, float alpha, int accumulate, const float* a, size_t a_ks, int a_ms,
                      const float* b, size_t ldb, int k, int mr, int nv, int m_valid, int n_valid) {
    vec acc[MAX_ROWS][TILE_VECS];
    for (int m = 0; m < mr; m++)
        for (int v = 0; v < nv; v++) acc[m][v] = (vec){0};
    for (int kk = 0; kk < k; kk++) {
        const float* a_k = a + kk * a_ks;
        vec b_k[TILE_VECS];
        for (int v = 0; v < nv; v++) b_k[v] = *(const vec_unaligned*)(b + kk * ldb + v * VEC);
        for (int m = 0; m < mr; m++)
            for (int v = 0; v < nv; v++) acc[m][v] += a_k[m * a_ms] * b_k[v];
    }
    if (m_valid == mr && n_valid == nv * VEC) {
        for (int m = 0; m < mr; m++)
            for (int v = 0; v < nv; v++) {
                vec_unaligned* o = (vec_unaligned*)(out + m * ldo + v * VEC);
                *o = accumulate ? *o + alpha * acc[m][v] : alpha * acc[m][v];
            }
        return;
    }
    for (int m = 0; m < m_valid; m++) {
        float row[TILE_VECS * VEC] = {0};
        memcpy(row, acc[m], nv * sizeof(vec));
        float* out_m = out + m * ldo;
        for (int j = 0; j < n_valid; j++) out_m[j] = (accumulate ? out_m[j] : 0.0f) + alpha * row[j];
    }
}

// out (M, N; rows ldo apart) = alpha * a (M, K) @ b (K, N), or += with accumulate, where a(m, k) is
// a[k * a_ks + m * a_ms] and b's rows are ldb apart. Tiles of TILE_ROWS x TILE_VECS, the last
// columns in tiles of TAIL_ROWS x 1 vector: a is read for M rounded up to the tile's rows (results
// past M are dropped; SLACK keeps those reads inside the scratch), b for N rounded up to VEC columns.
INLINE void gemm(float* out, size_t ldo, float alpha, int accumulate, const float* a, size_t a_ks, int a_ms,
                 const float* b, size_t ldb, int M, int N, int K) {
    int n0 = 0;
    for (; n0 + (TILE_VECS - 1) * VEC < N; n0 += TILE_VECS * VEC)
        for (int m0 = 0; m0 < M; m0 += TILE_ROWS)
            gemm_tile(out + m0 * ldo + n0, ldo, alpha, accumulate, a + m0 * a_ms, a_ks, a_ms, b + n0, ldb, K,
                      TILE_ROWS, TILE_VECS, min_int(TILE_ROWS, M - m0), min_int(TILE_VECS * VEC, N - n0));
#if TILE_VECS == 2   // one vector at most is left (the AVX-512 build's code as it was measured)
    if (n0 < N)
        for (int m0 = 0; m0 < M; m0 += TAIL_ROWS)
            gemm_tile(out + m0 * ldo + n0, ldo, alpha, accumulate, a + m0 * a_ms, a_ks, a_ms, b + n0, ldb, K,
                      TAIL_ROWS, 1, min_int(TAIL_ROWS, M - m0), N - n0);
#else
    for (; n0 < N; n0 += VEC)
        for (int m0 = 0; m0 < M; m0 += TAIL_ROWS)
            gemm_tile(out + m0 * ldo + n0, ldo, alpha, accumulate, a + m0 * a_ms, a_ks, a_ms, b + n0, ldb, K,
                      TAIL_ROWS, 1, min_int(TAIL_ROWS, M - m0), min_int(VEC, N - n0));
#endif
}

// gemm with a's rows contiguous along m (a_ms = 1): K^T, V^T, or transposed weights read as (keys, GROUP).
static void gemm_a_columns(float* out, size_t ldo, float alpha, int accumulate, const float* a, size_t a_ks,
                           const float* b, size_t ldb, int M, int N, int K) {
    gemm(out, ldo, alpha, accumulate, a, a_ks, 1, b, ldb, M, N, K);
}

// gemm with a (M, GROUP) row-major (a_ks = 1, a_ms = GROUP): transposed weights read as rows of keys.
static void gemm_a_rows(float* out, size_t ldo, float alpha, int accumulate, const float* a, const float* b,
                        size_t ldb, int M, int N, int K) {
    gemm(out, ldo, alpha, accumulate, a, 1, GROUP, b, ldb, M, N, K);
}

// The forward's weights of one group, in place: st (n, GROUP) holds scaled scores, row j the key j
// for each query r, which sees keys j <= pos[r]; masked entries become 0. stat[r] for r < g: the row
// statistic (see the file header). The rows are normalized here, not O after A V: O then comes from
// the very weights the backward recomputes, so dS sums to 0 over a row as closely as it can (the
// gradients that are 0 in exact arithmetic stay at rounding noise, which Adam would amplify).
static void forward_weights(float* restrict st, float* stat, const int pos[GROUP], int n, int g, AttnHead map) {
    float sums[GROUP] = {0}, maxs[GROUP];
    for (int r = 0; r < GROUP; r++) maxs[r] = -INFINITY;   // the sigmoid's statistic ignores it
    if (!map.score.sigmoid) {
        for (int j = 0; j < n; j++) {
            float* s = st + (size_t)j * GROUP;
            #pragma omp simd
            for (int r = 0; r < GROUP; r++) {
                float x = attn_logit(map, s[r], pos[r], j);   // masked keys too (one condition, so it vectorizes)
                s[r] = x;
                maxs[r] = j <= pos[r] && x > maxs[r] ? x : maxs[r];
            }
        }
        for (int j = 0; j < n; j++) {
            float* s = st + (size_t)j * GROUP;
            #pragma omp simd
            for (int r = 0; r < GROUP; r++) {
                float weight = attn_softmax_weight(s[r], maxs[r]);
                s[r] = j <= pos[r] ? weight : 0.0f;
                sums[r] += s[r];
            }
        }
    } else {
        for (int j = 0; j < n; j++) {
            float* s = st + (size_t)j * GROUP;
            #pragma omp simd
            for (int r = 0; r < GROUP; r++) {
                float weight = attn_sigmoid_weight(map, attn_logit(map, s[r], pos[r], j));
                s[r] = j <= pos[r] ? weight : 0.0f;
                sums[r] += s[r];
            }
        }
    }
    float norm[GROUP];
    for (int r = 0; r < GROUP; r++) {
        if (r < g) stat[r] = attn_row_stat(map.score, maxs[r], sums[r]);
        norm[r] = attn_row_scale(map.score, sums[r]);
    }
    if (map.score.sigmoid && !map.score.normalize) return;
    for (int j = 0; j < n; j++) {
        float* s = st + (size_t)j * GROUP;
        #pragma omp simd
        for (int r = 0; r < GROUP; r++) s[r] *= norm[r];
    }
}

// A scratch buffer of n floats, zeroed, whose start is 64-byte aligned (rows of a multiple of VEC
// floats then start on cache lines); release it with free(*block).
static float* aligned_scratch(void** block, size_t n) {
    *block = malloc_check(n * sizeof(float) + 64);
    float* start = (float*)(((uintptr_t)*block + 63) & ~(uintptr_t)63);
    memset(start, 0, n * sizeof(float));
    return start;
}

// Forward scratch of one task: keys transposed kt (hs, ld), values v (keys, hsp), a group's queries
// transposed qt (hs, GROUP) and its transposed scores st (keys, GROUP).
typedef struct {
    float *kt, *v, *qt, *st;
} ForwardScratch;

// The forward for the g <= GROUP query rows i0.. of one (b, h), query i0+r at position pos0+r.
// head: qkv at its row 0, column h*hs; out, stat: this head's (Tq rows, C apart), (Tq).
static void attention_forward_group(float* out, float* stat, const float* head, const ForwardScratch* w, int ld,
                                    int hsp, int i0, int pos0, int g, int C, int hs, float scale, AttnHead map) {
    size_t stride = 3 * (size_t)C;
    int pos[GROUP];
    for (int r = 0; r < GROUP; r++) pos[r] = pos0 + min_int(r, g - 1);   // rows past g repeat the last
    int n = pos[GROUP - 1] + 1;   // keys seen by the last row
    transpose_rows(w->qt, GROUP, head + (size_t)pos0 * stride, g, stride, hs);
    gemm_a_columns(w->st, GROUP, scale, 0, w->kt, ld, w->qt, GROUP, n, GROUP, hs);   // S^T = scale K Q^T
    forward_weights(w->st, stat + i0, pos, n, g, map);
    gemm_a_columns(out + (size_t)i0 * C, C, 1.0f, 0, w->st, GROUP, w->v, hsp, g, hs, n);   // O = A V
}

// qkv (B,Tmax,3C) -> out (B,Tq,C), stat (B,NH,Tq); query i is position Tk-Tq+i (see softmax_sigmoid.h).
void attention_forward(float* out, float* stat, const float* qkv, int B, int Tq, int Tk, int Tmax, int C, int NH,
                       AttnScore score) {
    int hs = C / NH, hsp = round_up(hs, VEC), n_blocks = (Tq + QUERY_BLOCK - 1) / QUERY_BLOCK;
    float scale = 1.0f / sqrtf((float)hs);
    size_t stride = 3 * (size_t)C, max_ld = padded_ld(Tk);
    #pragma omp parallel
    {
        size_t nkt = (size_t)hs * max_ld, nv = max_ld * hsp, nqt = (size_t)hs * GROUP, nst = max_ld * GROUP;
        void* block;
        ForwardScratch w;
        w.kt = aligned_scratch(&block, round_up(nkt, VEC) + nv + round_up(nqt, VEC) + nst + SLACK);
        w.v = w.kt + round_up(nkt, VEC), w.qt = w.v + nv, w.st = w.qt + round_up(nqt, VEC);
        #pragma omp for collapse(3) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                for (int blk = 0; blk < n_blocks; blk++) {
                    int i0 = blk * QUERY_BLOCK, i1 = min_int(i0 + QUERY_BLOCK, Tq);
                    int n_keys = Tk - Tq + i1, ld = padded_ld(n_keys);   // keys of the block's last row
                    const float* head = qkv + (size_t)b * Tmax * stride + (size_t)h * hs;
                    transpose_rows(w.kt, ld, head + C, n_keys, stride, hs);
                    copy_rows(w.v, hsp, head + 2 * C, n_keys, stride, hs);
                    for (int i = i0; i < i1; i += GROUP)
                        attention_forward_group(out + (size_t)b * Tq * C + (size_t)h * hs,
                                                stat + ((size_t)b * NH + h) * Tq, head, &w, ld, hsp, i,
                                                Tk - Tq + i, min_int(GROUP, i1 - i), C, hs, scale,
                                                attn_head(score, h, NH));
                }
            }
        }
        free(block);
    }
}

// a (hs) . b (hs).
static float row_dot(const float* a, const float* b, int hs) {
    float sum = 0.0f;
    #pragma omp simd reduction(+:sum)
    for (int c = 0; c < hs; c++) sum += a[c] * b[c];
    return sum;
}

// The backward's weights and score gradients of one group (see the file header), in place: on entry
// pt (n, GROUP) holds the scaled scores S^T and dst holds dP^T, row j the key j for each query r,
// which sees keys j <= pos[r] (-1 for rows past the group's end); on exit pt holds the weights and
// dst scale * dS^T, 0 where masked. stat, D: each row's statistic and dO . O.
static void backward_scores(float* restrict pt, float* restrict dst, const float stat[GROUP], const float D[GROUP],
                            const int pos[GROUP], int n, float scale, AttnHead map) {
    if (!map.score.sigmoid) {
        for (int j = 0; j < n; j++) {
            float *p = pt + (size_t)j * GROUP, *ds = dst + (size_t)j * GROUP;
            #pragma omp simd
            for (int r = 0; r < GROUP; r++) {
                float weight = attn_softmax_weight(attn_logit(map, p[r], pos[r], j), stat[r]);
                p[r] = j <= pos[r] ? weight : 0.0f;
                ds[r] = attn_softmax_grad(scale * p[r], ds[r], D[r]);
            }
        }
        return;
    }
    // sigmoid: unnormalized is D = 0, Z' = 1
    float inv_z[GROUP];
    for (int r = 0; r < GROUP; r++) inv_z[r] = map.score.normalize ? attn_norm_scale(stat[r]) : 1.0f;
    for (int j = 0; j < n; j++) {
        float *p = pt + (size_t)j * GROUP, *ds = dst + (size_t)j * GROUP;
        #pragma omp simd
        for (int r = 0; r < GROUP; r++) {
            AttnSigmoid sig = attn_sigmoid(map, attn_logit(map, p[r], pos[r], j));
            int seen = j <= pos[r];
            p[r] = seen ? sig.p * inv_z[r] : 0.0f;
            ds[r] = seen ? attn_sigmoid_grad(sig, scale * (ds[r] - D[r]) * inv_z[r]) : 0.0f;
        }
    }
}

// Backward scratch of one thread: the head's queries, keys, values and output gradients transposed
// qt, kt, vt, dot (hs, ld); keys k and the dK, dV accumulators (ld, hsp); each row's dO . O in d (ld);
// when hs is not a multiple of VEC, a group's queries and output gradients as zero-padded rows qg,
// dog (GROUP, hsp); a group's transposed weights pt and scaled score gradients dst (ld, GROUP).
typedef struct {
    float *qt, *kt, *vt, *dot, *k, *dk, *dv, *d, *qg, *dog, *pt, *dst;
} BackwardScratch;

// The backward for the g <= GROUP rows i0.. of one head (see attention_backward_head).
static void attention_backward_group(float* dqkv, const float* dout, const float* qkv, const float* stat,
                                     const BackwardScratch* w, int ld, int hsp, int i0, int g, int C, int hs,
                                     float scale, AttnHead map) {
    size_t stride = 3 * (size_t)C;
    int n = i0 + g;   // keys seen by the last row
    int pos[GROUP];
    float stat_g[GROUP], D[GROUP];
    for (int r = 0; r < GROUP; r++) {   // rows past g see no key
        pos[r] = r < g ? i0 + r : -1;
        stat_g[r] = r < g ? stat[i0 + r] : 0.0f;
        D[r] = r < g ? w->d[i0 + r] : 0.0f;
    }
    gemm_a_columns(w->pt, GROUP, scale, 0, w->kt, ld, w->qt + i0, ld, n, GROUP, hs);   // S^T = scale K Q^T
    gemm_a_columns(w->dst, GROUP, 1.0f, 0, w->vt, ld, w->dot + i0, ld, n, GROUP, hs);  // dP^T = V dO^T
    backward_scores(w->pt, w->dst, stat_g, D, pos, n, scale, map);
    // Q and dO rows with hsp readable floats: in place, or padded copies
    const float *q = qkv + (size_t)i0 * stride, *dout_g = dout + (size_t)i0 * C;
    size_t ldq = stride, lddo = C;
    if (hs != hsp) {
        copy_rows(w->qg, hsp, q, g, stride, hs);
        copy_rows(w->dog, hsp, dout_g, g, C, hs);
        q = w->qg, dout_g = w->dog, ldq = lddo = hsp;
    }
    // dV += A^T dO, dK += scale dS^T Q; keys i0.. are new to the accumulators (no earlier group sees
    // them): = there, so they need no zeroing
    for (int fresh = 0; fresh < 2; fresh++) {
        int j0 = fresh ? i0 : 0, nj = fresh ? n - i0 : i0;
        gemm_a_rows(w->dv + (size_t)j0 * hsp, hsp, 1.0f, !fresh, w->pt + (size_t)j0 * GROUP, dout_g, lddo, nj, hsp, g);
        gemm_a_rows(w->dk + (size_t)j0 * hsp, hsp, 1.0f, !fresh, w->dst + (size_t)j0 * GROUP, q, ldq, nj, hsp, g);
    }
    gemm_a_columns(dqkv + (size_t)i0 * stride, stride, 1.0f, 1, w->dst, GROUP, w->k, hsp, g, hs, n);  // dQ += scale dS K
}

// One (b, h): dqkv (T,3C) += for this head's columns, from dout, qkv, out (T rows) and stat (T).
// Pointers are at row 0, column h*hs; rows are 3C (qkv, dqkv) or C (out, dout) floats apart.
static void attention_backward_head(float* dqkv, const float* dout, const float* qkv, const float* out,
                                    const float* stat, int T, int C, int hs, float scale, AttnHead map,
                                    const BackwardScratch* w) {
    size_t stride = 3 * (size_t)C;
    int ld = padded_ld(T), hsp = round_up(hs, VEC), need_d = !map.score.sigmoid || map.score.normalize;
    transpose_rows(w->qt, ld, qkv, T, stride, hs);
    transpose_rows(w->kt, ld, qkv + C, T, stride, hs);
    transpose_rows(w->vt, ld, qkv + 2 * C, T, stride, hs);
    transpose_rows(w->dot, ld, dout, T, C, hs);
    copy_rows(w->k, hsp, qkv + C, T, stride, hs);
    for (int i = 0; i < T; i++) w->d[i] = need_d ? row_dot(dout + (size_t)i * C, out + (size_t)i * C, hs) : 0.0f;
    for (int i0 = 0; i0 < T; i0 += GROUP)
        attention_backward_group(dqkv, dout, qkv, stat, w, ld, hsp, i0, min_int(GROUP, T - i0), C, hs, scale, map);
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
        size_t ld = padded_ld(T), hsp = round_up(hs, VEC), nt = round_up(hs * (int)ld, VEC), np = ld * hsp;
        size_t ng = GROUP * hsp, ns = ld * GROUP;
        void* block;
        BackwardScratch w;
        w.qt = aligned_scratch(&block, 4 * nt + 3 * np + ld + 2 * ng + 2 * ns + SLACK);
        w.kt = w.qt + nt, w.vt = w.kt + nt, w.dot = w.vt + nt, w.k = w.dot + nt, w.dk = w.k + np, w.dv = w.dk + np;
        w.d = w.dv + np, w.qg = w.d + ld, w.dog = w.qg + ng, w.pt = w.dog + ng, w.dst = w.pt + ns;
        #pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                size_t at3 = (size_t)b * T * 3 * C + (size_t)h * hs, at1 = (size_t)b * T * C + (size_t)h * hs;
                attention_backward_head(dqkv + at3, dout + at1, qkv + at3, out + at1,
                                        stat + ((size_t)b * NH + h) * T, T, C, hs, scale, attn_head(score, h, NH),
                                        &w);
            }
        }
        free(block);
    }
}

// One row of attention_weights: s (n) holds the scaled scores of a query that sees n keys.
static void stored_weights_row(float* restrict s, int n, float stat, AttnHead map) {
    float inv_z = map.score.normalize ? attn_norm_scale(stat) : 1.0f;
    for (int j = 0; j < n; j++) {
        float x = attn_logit(map, s[j], n - 1, j);
        s[j] = map.score.sigmoid ? attn_sigmoid_weight(map, x) * inv_z : attn_softmax_weight(x, stat);
    }
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
                stored_weights_row(w, i + 1, stat[((size_t)b * NH + h) * T + i], attn_head(score, h, NH));
            }
        }
    }
}
