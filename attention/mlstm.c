// The mLSTM cell on the CPU, fp32 (xLSTM matrix memory; docs/MODEL.md section 11), OpenMP over (b, h).
// One implementation, the chunkwise form of docs/MODEL.md 11.3: the parallel (quadratic) form of 11.2 is it
// with a single chunk of T positions, and the recurrent step of 11.1 is its state update over a chunk of
// one position followed by a read-out of the new state. mLSTMsig (11.4) is the same code with the log
// input gate logsigmoid(i~) instead of i~ and the stabiliser fixed at 0. Gates are soft-capped first
// (15 tanh(z/15), docs/MODEL.md 11). Output row t of a chunk t0.. with the state (C, n, m) before the chunk:
//   logw_s = sum_{r=s+1..t} lf_r + li_s (keys s = t0..t),   b_t = sum_{r=t0..t} lf_r (the state's)
//   m_t = max(b_t + m, max_s logw_s) [exp] or 0 [sig],        beta = exp(b_t + m - m_t)
//   num = beta C^T q_t/sqrt(hs) + sum_s exp(logw_s - m_t) (q_t.k_s/sqrt(hs)) v_s;  den: n and 1 for C, v
//   n_out_t = max(|den|, exp(-m_t)),   h_t = num / (n_out_t + 1e-6)
// The log weights are summed from t downwards (docs/MODEL.md 11.2 "stablef"), so near keys never see the
// cancellation of two long cumulative sums. With m_0 = 0 before the first chunk, m_t includes the
// initial state's log weight, so the three forms give the same m, n and h (docs/MODEL.md 11.2 itself takes
// m_t = max_s log D_ts, which differs only in the eps*exp(m) term). The running max is not floored
// at -10 as in the Triton kernels (docs/MODEL.md 11.3): m_t >= li_t >= -15 after the soft-cap anyway,
// so exp(-m_t) <= e^15 and every exp(logw - m) <= 1.
// Backward (docs/MODEL.md 11.2, 11.3; n_out and m_out are constants): the chunk states are recomputed, a
// reverse pass over the chunks carries dC, and the gate gradients come from the head's own dq, dk:
// d li_t = k_t.dk_t (= the column sum of docs/MODEL.md 11.2), d lf_t = sum_{u>=t} (q_u.dq_u - k_u.dk_u),
// times sigmoid(-i~) (mLSTMsig) and sigmoid(-f~), times the soft-cap derivative 1 - tanh^2(z/15).
// Speed: a chunk is a handful of small dense products, all through one register-tiled loop
// (`product`: GROUP rows x TILE columns of the result in registers, per instruction set 8 x 32 on
// AVX-512, 3 x 32 on AVX2, 6 x 16 on NEON (common/cpu_shapes.h); operands read with any strides,
// so q, k, v stay in place in qkv when hs is a multiple of TILE): forward S = Q K^T, A = S o E/sqrt(hs),
// H = diag(beta) Q C + A V, C' = decay C + (e o K)^T V; backward the same shapes for dP = dH' V^T,
// dV += A^T dH', dK += dS^T Q, dQ += dS K and the state terms. A causal product visits only its row
// groups' part on or below the diagonal. The log weights of a chunk are built one diagonal (t - s) at
// a time across all rows, which adds the same terms in the same order as row by row from t downwards
// but vectorizes; the gate functions (tanh, logsigmoid, exp) are branch-free polynomial versions that
// vectorize too.
// Parallelism: one task per (b, h), which owns that head's columns of every output (no atomics).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention/mlstm.h"
#include "attention/rows.h"
#include "common/fastmath.h"
#include "common/check.h"
#include "common/cpu_shapes.h"

// The register tile, GROUP x TILE accumulators (common/cpu_shapes.h): 8 x 32 floats, 16 of AVX-512's
// 32 registers; 3 x 32, 12 of AVX2's 16 (the right operand's row is read from L1 by the FMAs);
// 6 x 16, 24 of NEON's 32.
#define GROUP MLSTM_GROUP   // result rows per register tile
#define TILE MLSTM_TILE     // result columns per register tile; scratch rows hold a multiple
// The end of row i's group of rows, where the zeros above a causal matrix's diagonal stop (see
// gate_scores), within the row's ld floats when GROUP does not divide TILE.
#define GROUP_END(i, ld) (TILE % GROUP == 0 ? round_up((i) + 1, GROUP) : min_int(round_up((i) + 1, GROUP), (ld)))

static inline int min_int(int a, int b) { return a < b ? a : b; }
static inline int round_up(int n, int m) { return (n + m - 1) / m * m; }
static inline float max_f(float a, float b) { return a > b ? a : b; }

// log(1 + u) for u in [0, 1], branch-free: log(w) of w = 1 + u (cephes logf: w or w/2 near 1, a
// degree-9 polynomial) plus the rounding of w, (u - (w - 1)) / w, so tiny u keeps its precision.
static inline float log_1p(float u) {
    float w = 1.0f + u, rounding = u - (w - 1.0f);
    int big = w > 1.41421356f;
    float e = big ? 1.0f : 0.0f, x = (big ? 0.5f * w : w) - 1.0f, z = x * x;
    float p = 7.0376836292e-2f;
    p = p * x - 1.1514610310e-1f;
    p = p * x + 1.1676998740e-1f;
    p = p * x - 1.2420140846e-1f;
    p = p * x + 1.4249322787e-1f;
    p = p * x - 1.6668057665e-1f;
    p = p * x + 2.0000714765e-1f;
    p = p * x - 2.4999993993e-1f;
    p = p * x + 3.3333331174e-1f;
    float y = p * x * z - 2.12194440e-4f * e - 0.5f * z;
    return x + y + 0.693359375f * e + rounding / w;
}

static inline float log_sigmoid(float x) { return (x < 0.0f ? x : 0.0f) - log_1p(fast_exp(-fabsf(x))); }

// A soft-capped gate: value = 15 tanh(z/15) and grad = its derivative 1 - tanh^2(z/15).
typedef struct {
    float value, grad;
} Capped;

// Branch-free: cephes tanhf (an odd polynomial in x = z/15 below 0.625, else 1 - r with
// r = 2 / (exp(2|x|) + 1)), within 3 ulp of float64; 1 - tanh^2 = r (2 - r) above 0.625 keeps its
// relative precision where tanh -> 1 (1 - tanh*tanh would cancel).
static inline Capped soft_cap(float z) {
    float x = z / MLSTM_GATE_SOFT_CAP, ax = fabsf(x), s = x * x;
    float poly = ((((-5.70498872745e-3f * s + 2.06390887954e-2f) * s - 5.37397155531e-2f) * s + 1.33314422036e-1f) * s
                  - 3.33332819422e-1f) * s * ax + ax;
    float r = 2.0f / (fast_exp(2.0f * ax) + 1.0f);
    int small = ax < 0.625f;
    float th = small ? poly : 1.0f - r;
    return (Capped){MLSTM_GATE_SOFT_CAP * (x < 0.0f ? -th : th), small ? 1.0f - poly * poly : r * (2.0f - r)};
}

static inline float dot(const float* restrict a, const float* restrict b, int n) {
    float sum = 0.0f;
    #pragma omp simd reduction(+:sum)
    for (int i = 0; i < n; i++) sum += a[i] * b[i];
    return sum;
}

// A matrix operand of `product`: element (r, k) at p[r * rs + k * cs], so one array serves as a
// matrix (rows_of) or as its transpose (cols_of) without a copy.
typedef struct {
    const float* p;
    size_t rs, cs;
} Mat;

static Mat rows_of(const float* p, size_t ld) { return (Mat){p, ld, 1}; }
static Mat cols_of(const float* p, size_t ld) { return (Mat){p, 1, ld}; }

// The part of a product over a chunk's positions that a group of result rows r0..r0+GROUP-1 needs:
// all of it; the terms k < r0 + GROUP (A_rk = 0 for k > r); the terms k >= r0 (A_rk = 0 for k < r);
// or the result columns < r0 + GROUP (a causal result, read on and below its diagonal only).
typedef enum { ALL, K_LOWER, K_UPPER, COLS_LOWER } Band;

// Where a product goes: rows `ld` floats apart, written (=) or added to (+=), result row r times
// scale[r] (NULL: 1). Whole tiles are written: rows hold a multiple of TILE floats, and the
// columns past the product's own get values that nothing reads.
typedef struct {
    float* p;
    size_t ld;
    int add;
    const float* scale;
} Dst;

// The TILE columns j0.. of a group of result rows: out_r (= or +=) scale_r sum_{k0 <= k < k1}
// a_r[k * cs] b_k (k1 > k0), with b's rows ldb apart and readable for TILE columns. The group's
// GROUP x TILE accumulators stay in registers over the k loop; rows r >= g are computed and dropped.
// The first term initialises them (a zero-initialised array would cost a memset call per tile).
static void product_tile(Dst out, int r0, int g, const float* const a_r[GROUP], size_t cs, const float* b,
                         size_t ldb, int k0, int k1, int j0) {
    float acc[GROUP][TILE];
    for (int r = 0; r < GROUP; r++)
        for (int j = 0; j < TILE; j++) acc[r][j] = a_r[r][(size_t)k0 * cs] * b[(size_t)k0 * ldb + j0 + j];
    for (int k = k0 + 1; k < k1; k++) {
        const float* restrict b_k = b + (size_t)k * ldb + j0;
        for (int r = 0; r < GROUP; r++) {
            float a_rk = a_r[r][(size_t)k * cs];
            for (int j = 0; j < TILE; j++) acc[r][j] += a_rk * b_k[j];
        }
    }
    for (int r = 0; r < g; r++) {
        float* restrict out_r = out.p + (size_t)(r0 + r) * out.ld + j0;
        float s = out.scale ? out.scale[r0 + r] : 1.0f;
        for (int j = 0; j < TILE; j++) out_r[j] = (out.add ? out_r[j] : 0.0f) + s * acc[r][j];
    }
}

// out (m, ncols) (= or +=) diag(out.scale) a (m, kn) b (kn, ncols), over the part `band` names; b's
// rows are ldb floats apart and readable up to a multiple of TILE columns.
static void product(Dst out, Mat a, const float* b, size_t ldb, int m, int kn, int ncols, Band band) {
    for (int r0 = 0; r0 < m; r0 += GROUP) {
        int g = min_int(GROUP, m - r0);
        int k0 = band == K_UPPER ? r0 : 0, k1 = band == K_LOWER ? min_int(kn, r0 + g) : kn;
        int nc = band == COLS_LOWER ? min_int(ncols, r0 + g) : ncols;
        const float* a_r[GROUP];
        for (int r = 0; r < GROUP; r++) a_r[r] = a.p + (size_t)(r0 + min_int(r, g - 1)) * a.rs;
        for (int j0 = 0; j0 < nc; j0 += TILE) product_tile(out, r0, g, a_r, a.cs, b, ldb, k0, k1, j0);
    }
}

// One (b, h): q, k, v at row 0 of this head's columns of qkv (rows `stride` = 3C floats apart) and
// the head's log input and log forget gates li, lf (T).
typedef struct {
    const float *q, *k, *v, *li, *lf;
    size_t stride;
    int hs, sig_igate;
    float scale;   // 1/sqrt(hs)
} Head;

// The memory before a chunk: C (hs, hsp) [key dim, value dim] (or its transpose, see state_update),
// n (hs) or NULL, the stabiliser m.
typedef struct {
    float *C, *n;
    float m;
} State;

// li, lf (T) from the raw pre-activations gate_i[t*gstride], gate_f[t*gstride], gathered first so
// that the gate math runs over contiguous arrays.
static void log_gates(float* restrict li, float* restrict lf, const float* gate_i, const float* gate_f,
                      size_t gstride, int T, int sig_igate) {
    for (int t = 0; t < T; t++) li[t] = gate_i[t * gstride], lf[t] = gate_f[t * gstride];
    for (int t = 0; t < T; t++) {
        float i_t = soft_cap(li[t]).value;
        li[t] = sig_igate ? log_sigmoid(i_t) : i_t;
        lf[t] = log_sigmoid(soft_cap(lf[t]).value);
    }
}

// The Head of (b, head) of qkv (B,T,3C), with its log gates from gates (B,T,2NH) written to li, lf (T).
static Head head_at(const float* qkv, const float* gates, float* li, float* lf, int b, int head, int T, int C,
                    int NH, int sig_igate) {
    int hs = C / NH;
    const float* q = qkv + (size_t)b * T * 3 * C + (size_t)head * hs;
    const float* g = gates + (size_t)b * T * 2 * NH + head;
    log_gates(li, lf, g, g + NH, 2 * (size_t)NH, T, sig_igate);
    return (Head){q, q + C, q + 2 * C, li, lf, 3 * (size_t)C, hs, sig_igate, 1.0f / sqrtf((float)hs)};
}

// The stabiliser: max(base, logw (n)) for mLSTMexp, 0 for mLSTMsig.
static float stabiliser(float base, const float* logw, int n, int sig_igate) {
    if (sig_igate) return 0.0f;
    float m = base;
    for (int i = 0; i < n; i++) m = max_f(m, logw[i]);
    return m;
}

// Row t of the chunk starting at t0: logw[s - t0] = sum_{r=s+1..t} lf_r + li_s for the keys
// s = t0..t; returns the state's log weight b_t = sum_{r=t0..t} lf_r.
static float row_log_weights(float* logw, const Head* hd, int t0, int t) {
    float acc = 0.0f;
    for (int s = t; s > t0; s--) {
        logw[s - t0] = acc + hd->li[s];
        acc += hd->lf[s];
    }
    logw[0] = acc + hd->li[t0];
    return acc + hd->lf[t0];
}

// The chunk t0..t1-1 as seen from its end: a[s - t0] = sum_{r=s+1..t1-1} lf_r + li_s; returns the
// chunk's total log forget g = sum_{r=t0..t1-1} lf_r.
static float chunk_log_weights(float* a, const Head* hd, int t0, int t1) {
    float acc = 0.0f;
    for (int s = t1 - 1; s >= t0; s--) {
        a[s - t0] = acc + hd->li[s];
        acc += hd->lf[s];
    }
    return acc;
}

// Scratch for one chunk of at most L positions, with ld = L and hsp = hs rounded up to TILE: its
// rows q, k, v, ldr floats apart: in place in qkv when hs is a multiple of TILE (whole tiles stay
// inside the head's columns), else copies in qp, kp, vp (L, hsp) zero-padded to whole tiles;
// kt, vt = K^T, V^T (hs, ld); rows (L, hsp): the output rows H (forward)
// or dh' (backward); x (L, hsp): e o left (state update) or beta o dh' (backward); logw (L, ld): the
// log weights by diagonal, logw[d][t] for key t - d; e (L, ld): the gate weights exp(logw - m) by
// [query][key]; s, p (L, ld): products over query x key; per position b, m, beta, den, a (L).
typedef struct {
    const float *q, *k, *v;
    size_t ldr;
    float *qp, *kp, *vp, *kt, *vt, *rows, *x, *logw, *e, *s, *p, *b, *m, *beta, *den, *a;
    int ld, hsp;
} Chunk;

// n floats from *buf, which moves past them: carves one allocation into the arrays of a scratch.
static float* take(float** buf, size_t n) {
    float* p = *buf;
    *buf += n;
    return p;
}

static size_t chunk_floats(int L, int hs) {
    size_t ld = round_up(L, TILE), hsp = round_up(hs, TILE);
    return 5 * (size_t)L * hsp + 2 * (size_t)hs * ld + 4 * (size_t)L * ld + 5 * (size_t)L;
}

static Chunk chunk_scratch(float** buf, int L, int hs) {
    Chunk w;
    w.ld = round_up(L, TILE), w.hsp = round_up(hs, TILE);
    size_t rows = (size_t)L * w.hsp, sq = (size_t)L * w.ld;
    w.qp = take(buf, rows), w.kp = take(buf, rows), w.vp = take(buf, rows), w.rows = take(buf, rows);
    w.x = take(buf, rows), w.kt = take(buf, (size_t)hs * w.ld), w.vt = take(buf, (size_t)hs * w.ld);
    w.logw = take(buf, sq), w.e = take(buf, sq), w.s = take(buf, sq), w.p = take(buf, sq);
    w.b = take(buf, L), w.m = take(buf, L), w.beta = take(buf, L), w.den = take(buf, L), w.a = take(buf, L);
    return w;
}

// dst (hs, ld) = src (n rows `stride` floats apart, hs columns) transposed, columns 0..n-1.
static void transpose(float* restrict dst, int ld, const float* restrict src, size_t stride, int n, int hs) {
    for (int c = 0; c < hs; c++)
        for (int j = 0; j < n; j++) dst[(size_t)c * ld + j] = src[j * stride + c];
}

// Points w->q, k, v at the head's rows t0..t0+n-1 (see Chunk).
static void load_rows(Chunk* w, const Head* hd, int t0, int n) {
    size_t at = (size_t)t0 * hd->stride;
    w->q = hd->q + at, w->k = hd->k + at, w->v = hd->v + at, w->ldr = hd->stride;
    if (hd->hs % TILE == 0) return;
    copy_rows(w->qp, w->hsp, w->q, n, hd->stride, hd->hs);
    copy_rows(w->kp, w->hsp, w->k, n, hd->stride, hd->hs);
    copy_rows(w->vp, w->hsp, w->v, n, hd->stride, hd->hs);
    w->q = w->qp, w->k = w->kp, w->v = w->vp, w->ldr = w->hsp;
}

// st: the state before the chunk t0..t0+n-1 (rows loaded in w) -> the state after it (docs/MODEL.md
// 11.3): C = decay C + sum_s e_s left_s right_s^T, so (left, right) = (k, v) updates C and (v, k) its
// transpose; st->n (if not NULL) likewise with k_s. Leaves e (n) in w->a.
static void state_update(State* st, Chunk* w, const Head* hd, int t0, int n, const float* left,
                         const float* right) {   // left, right: rows w->ldr apart
    int hs = hd->hs, hsp = w->hsp;
    float g = chunk_log_weights(w->a, hd, t0, t0 + n);
    float m = stabiliser(g + st->m, w->a, n, hd->sig_igate);
    float decay = fast_exp(g + st->m - m);
    for (int s = 0; s < n; s++) {
        float e = w->a[s] = fast_exp(w->a[s] - m);
        for (int c = 0; c < hs; c++) w->x[(size_t)s * hsp + c] = e * left[s * w->ldr + c];
    }
    for (size_t i = 0; i < (size_t)hs * hsp; i++) st->C[i] *= decay;
    product((Dst){st->C, hsp, 1, NULL}, cols_of(w->x, hsp), right, w->ldr, hs, n, hs, ALL);
    for (int c = 0; st->n && c < hs; c++) st->n[c] *= decay;
    for (int s = 0; st->n && s < n; s++)
        for (int c = 0; c < hs; c++) st->n[c] += w->a[s] * w->k[s * w->ldr + c];
    st->m = m;
}

// The stabilisers m (n) of a chunk's rows from b (n) and the log weights by diagonal (see
// chunk_weights); given ones (the forward's, in the backward) if m_given is not NULL.
static void stabilisers(float* restrict m, const float* logw, int ld, const float* b, float m_state, int n,
                        int sig_igate, const float* m_given) {
    for (int i = 0; i < n; i++) m[i] = m_given ? m_given[i] : sig_igate ? 0.0f : b[i] + m_state;
    if (m_given || sig_igate) return;
    for (int d = 0; d < n; d++)
        for (int i = d; i < n; i++) m[i] = max_f(m[i], logw[(size_t)d * ld + i]);
}

// The gate weights of the chunk t0..t0+n-1 after a state of stabiliser m_state (docs/MODEL.md 11.3):
// the log weights of query i and key j = i - d, summed one diagonal d at a time across all rows
// (each row gets lf_i, lf_i-1, ... in row_log_weights' order), then m (n) (or m_given), b (n),
// beta (n) (times 1/sqrt(hs)) and e (n, ld) = exp(logw - m) on and below the diagonal.
static void chunk_weights(Chunk* w, const Head* hd, int t0, int n, float m_state, const float* m_given) {
    const float *li = hd->li + t0, *lf = hd->lf + t0;
    float *b = w->b, *m = w->m;
    int ld = w->ld;
    for (int i = 0; i < n; i++) b[i] = 0.0f;
    for (int d = 0; d < n; d++) {
        float* restrict logw_d = w->logw + (size_t)d * ld;
        for (int i = d; i < n; i++) {
            logw_d[i] = b[i] + li[i - d];
            b[i] += lf[i - d];
        }
    }
    stabilisers(m, w->logw, ld, b, m_state, n, hd->sig_igate, m_given);
    for (int i = 0; i < n; i++) w->beta[i] = fast_exp(b[i] + m_state - m[i]) * hd->scale;
    for (int i = 0; i < n; i++) {
        float* restrict e_i = w->e + (size_t)i * ld;
        const float* logw_i = w->logw + i;   // key j's log weight at logw_i[(i - j) * ld]
        for (int j = 0; j <= i; j++) e_i[j] = fast_exp(logw_i[(size_t)(i - j) * ld] - m[i]);
    }
}

// s (n, ld) = scale S o e in place on and below the diagonal (the weights C~ of docs/MODEL.md 11.2);
// den (n) = the row sums. Above the diagonal, zeros up to the end of the row's GROUP: the part of the
// upper triangle that `product` reads (K_LOWER and K_UPPER visit whole groups).
static void gate_scores(float* restrict s, float* restrict den, const float* restrict e, int n, int ld, float scale) {
    for (int i = 0; i < n; i++) {
        float *restrict s_i = s + (size_t)i * ld, sum = 0.0f;
        const float* restrict e_i = e + (size_t)i * ld;
        #pragma omp simd reduction(+:sum)
        for (int j = 0; j < GROUP_END(i, ld); j++) {
            s_i[j] = j <= i ? s_i[j] * scale * e_i[j] : 0.0f;
            sum += s_i[j];
        }
        den[i] = sum;
    }
}

// The state's part of a chunk's output rows: w->rows (n, hsp) = diag(beta) Q C.
static void state_readout(Chunk* w, const State* st, int hs, int n) {
    product((Dst){w->rows, w->hsp, 0, w->beta}, rows_of(w->q, w->ldr), st->C, w->hsp, n, hs, hs, ALL);
}

// h (n rows h_stride floats apart), n_out, m_out (n) from the numerators w->rows and the in-chunk
// denominators w->den: den += beta q.n, n_out = max(|den|, exp(-m)), h = num / (n_out + eps).
static void finish_rows(float* h, size_t h_stride, float* n_out, float* m_out, const Chunk* w, const State* st,
                        int hs, int n) {
    for (int i = 0; i < n; i++) {
        const float* num = w->rows + (size_t)i * w->hsp;
        float den = w->den[i] + w->beta[i] * dot(w->q + i * w->ldr, st->n, hs);
        float norm = max_f(fabsf(den), fast_exp(-w->m[i])), inv = 1.0f / (norm + MLSTM_EPS);
        for (int c = 0; c < hs; c++) h[(size_t)i * h_stride + c] = num[c] * inv;
        n_out[i] = norm;
        m_out[i] = w->m[i];
    }
}

// Output rows t0..t0+n-1 of the chunk whose rows are loaded in w, after the state st.
static void chunk_forward(float* h, size_t h_stride, float* n_out, float* m_out, Chunk* w, const Head* hd,
                          const State* st, int t0, int n) {
    int hs = hd->hs, ld = w->ld, hsp = w->hsp;
    transpose(w->kt, ld, w->k, w->ldr, n, hs);
    chunk_weights(w, hd, t0, n, st->m, NULL);
    product((Dst){w->s, ld, 0, NULL}, rows_of(w->q, w->ldr), w->kt, ld, n, hs, n, COLS_LOWER);   // S = Q K^T
    gate_scores(w->s, w->den, w->e, n, ld, hd->scale);
    state_readout(w, st, hs, n);
    product((Dst){w->rows, hsp, 1, NULL}, rows_of(w->s, ld), w->v, w->ldr, n, n, hs, K_LOWER);   // H += A V
    finish_rows(h, h_stride, n_out, m_out, w, st, hs, n);
}

// Per-thread scratch of the forward: a chunk's, li, lf (T), the state C (hs, hsp) and n (hsp).
typedef struct {
    Chunk c;
    float *li, *lf, *C, *n;
} ForwardScratch;

static size_t forward_scratch_floats(int T, int L, int hs) {
    return chunk_floats(L, hs) + 2 * (size_t)T + (size_t)(hs + 1) * round_up(hs, TILE);
}

static ForwardScratch forward_scratch(float* buf, int T, int L, int hs) {
    ForwardScratch w;
    w.c = chunk_scratch(&buf, L, hs);
    w.li = take(&buf, T), w.lf = take(&buf, T), w.C = take(&buf, (size_t)hs * w.c.hsp), w.n = take(&buf, w.c.hsp);
    return w;
}

// One head: h (T rows, h_stride floats apart), n_out, m_out (T).
static void head_forward(float* h, float* n_out, float* m_out, size_t h_stride, const Head* hd, int T, int chunk,
                         ForwardScratch* w) {
    memset(w->C, 0, (size_t)hd->hs * w->c.hsp * sizeof(float));
    memset(w->n, 0, (size_t)w->c.hsp * sizeof(float));
    State st = {w->C, w->n, 0.0f};
    for (int t0 = 0; t0 < T; t0 += chunk) {
        int n = min_int(chunk, T - t0);
        load_rows(&w->c, hd, t0, n);
        chunk_forward(h + (size_t)t0 * h_stride, h_stride, n_out + t0, m_out + t0, &w->c, hd, &st, t0, n);
        if (t0 + n < T) state_update(&st, &w->c, hd, t0, n, w->c.k, w->c.v);
    }
}

static void check_chunk(const char* fn, int chunk) {
    if (chunk <= 0) fail("%s: chunk size %d is not positive; use a chunk size >= 1 (64 is usual)", fn, chunk);
}

// qkv (B,T,3C), gates (B,T,2NH) -> h (B,T,C), n_out, m_out (B,NH,T).
void mlstm_chunkwise_forward(float* h, float* n_out, float* m_out, const float* qkv, const float* gates,
                             int B, int T, int C, int NH, int chunk, int sig_igate) {
    check_chunk("mlstm_chunkwise_forward", chunk);
    if (T <= 0) return;
    int hs = C / NH, L = min_int(chunk, T);
    #pragma omp parallel
    {
        float* buf = calloc_check(forward_scratch_floats(T, L, hs), sizeof(float));
        ForwardScratch w = forward_scratch(buf, T, L, hs);
        #pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int head = 0; head < NH; head++) {
                Head hd = head_at(qkv, gates, w.li, w.lf, b, head, T, C, NH, sig_igate);
                size_t at = ((size_t)b * NH + head) * T;
                head_forward(h + (size_t)b * T * C + (size_t)head * hs, n_out + at, m_out + at, C, &hd, T, L, &w);
            }
        }
        free(buf);
    }
}

// The quadratic form: one chunk of T positions.
void mlstm_parallel_forward(float* h, float* n_out, float* m_out, const float* qkv, const float* gates,
                            int B, int T, int C, int NH, int sig_igate) {
    mlstm_chunkwise_forward(h, n_out, m_out, qkv, gates, B, T, C, NH, T > 0 ? T : 1, sig_igate);   // T = 0: a no-op
}

// Per-thread scratch of the backward: a chunk's; li, lf, and for the gate gradients kdk, dlf (T);
// states (NC, hs, hsp) and m_states (NC): the TRANSPOSED states C^T entering each of the NC chunks
// and their stabilisers; dC and its transpose dCt (hs, hsp); the head's own gradients dq, dk, dv
// (T, hsp).
typedef struct {
    Chunk c;
    float *li, *lf, *kdk, *dlf, *states, *m_states, *dC, *dCt, *dq, *dk, *dv;
} BackwardScratch;

static size_t backward_scratch_floats(int T, int L, int NC, int hs) {
    size_t hsp = round_up(hs, TILE), hs2 = (size_t)hs * hsp;
    return chunk_floats(L, hs) + 4 * (size_t)T + NC * (hs2 + 1) + 2 * hs2 + 3 * (size_t)T * hsp;
}

static BackwardScratch backward_scratch(float* buf, int T, int L, int NC, int hs) {
    BackwardScratch w;
    w.c = chunk_scratch(&buf, L, hs);
    size_t hs2 = (size_t)hs * w.c.hsp, rows = (size_t)T * w.c.hsp;
    w.li = take(&buf, T), w.lf = take(&buf, T), w.kdk = take(&buf, T), w.dlf = take(&buf, T);
    w.states = take(&buf, NC * hs2), w.m_states = take(&buf, NC), w.dC = take(&buf, hs2), w.dCt = take(&buf, hs2);
    w.dq = take(&buf, rows), w.dk = take(&buf, rows), w.dv = take(&buf, rows);
    return w;
}

// The transposed states C^T and the m entering each chunk, recomputed with the forward's recurrence
// (n is not needed).
static void recompute_states(BackwardScratch* w, const Head* hd, int T, int chunk) {
    size_t hs2 = (size_t)hd->hs * w->c.hsp;
    memset(w->states, 0, hs2 * sizeof(float));
    State st = {w->states, NULL, 0.0f};
    for (int k = 0, t0 = 0; t0 < T; k++, t0 += chunk) {
        w->m_states[k] = st.m;
        if (t0 + chunk >= T) break;
        st.C = w->states + (size_t)(k + 1) * hs2;
        memcpy(st.C, st.C - hs2, hs2 * sizeof(float));
        load_rows(&w->c, hd, t0, chunk);
        state_update(&st, &w->c, hd, t0, chunk, w->c.v, w->c.k);
    }
}

// The keys t0..t0+n-1 of a chunk (rows loaded in w->c) wrote into the state after it (stabiliser
// m_after), whose gradient is w->dC: dK += diag(e) V dC^T, dV += diag(e) K dC with e_s =
// exp(a_s - m_after). Then dC *= the chunk's decay, leaving the part of the gradient of the state
// before the chunk (stabiliser m_before) that flows through the state after it.
static void chunk_state_backward(BackwardScratch* w, const Head* hd, float m_before, float m_after, int t0, int n) {
    Chunk* c = &w->c;
    int hs = hd->hs, hsp = c->hsp;
    float g = chunk_log_weights(c->a, hd, t0, t0 + n);
    for (int s = 0; s < n; s++) c->a[s] = fast_exp(c->a[s] - m_after);
    transpose(w->dCt, hsp, w->dC, hsp, hs, hs);
    size_t at = (size_t)t0 * hsp;
    product((Dst){w->dk + at, hsp, 1, c->a}, rows_of(c->v, c->ldr), w->dCt, hsp, n, hs, hs, ALL);
    product((Dst){w->dv + at, hsp, 1, c->a}, rows_of(c->k, c->ldr), w->dC, hsp, n, hs, hs, ALL);
    float decay = fast_exp(g + m_before - m_after);
    for (size_t i = 0; i < (size_t)hs * hsp; i++) w->dC[i] *= decay;
}

// On and below the diagonal of row i: s = scale S o e (the weights), p = scale dP o e (dS); above
// it zeros up to the end of the row's GROUP, as in gate_scores.
static void score_gradients(float* restrict s, float* restrict p, const float* restrict e, int n, int ld,
                            float scale) {
    for (int i = 0; i < n; i++) {
        float *restrict s_i = s + (size_t)i * ld, *restrict p_i = p + (size_t)i * ld;
        const float* restrict e_i = e + (size_t)i * ld;
        #pragma omp simd
        for (int j = 0; j < GROUP_END(i, ld); j++) {
            s_i[j] = j <= i ? s_i[j] * scale * e_i[j] : 0.0f;
            p_i[j] = j <= i ? p_i[j] * scale * e_i[j] : 0.0f;
        }
    }
}

// The rows t0..t0+n-1 of chunk k (docs/MODEL.md 11.3, n_out and m_out constants): with dh' = dh /
// (n_out + eps), dq += beta dh' C (the state term), dC += beta q dh'^T, and the in-chunk terms of
// docs/MODEL.md 11.2: dV += A^T dH', dK += dS^T Q, dQ += dS K. dh: rows C floats apart.
static void chunk_backward(BackwardScratch* w, const Head* hd, const float* dh, size_t dh_stride,
                           const float* n_out, const float* m_out, int k, int t0, int n) {
    Chunk* c = &w->c;
    int hs = hd->hs, ld = c->ld, hsp = c->hsp;
    transpose(c->kt, ld, c->k, c->ldr, n, hs);
    transpose(c->vt, ld, c->v, c->ldr, n, hs);
    chunk_weights(c, hd, t0, n, w->m_states[k], m_out + t0);
    for (int i = 0; i < n; i++) {
        float inv = 1.0f / (n_out[t0 + i] + MLSTM_EPS);
        float *dhp = c->rows + (size_t)i * hsp, *dhb = c->x + (size_t)i * hsp;
        for (int j = 0; j < hs; j++) {
            dhp[j] = dh[(size_t)(t0 + i) * dh_stride + j] * inv;
            dhb[j] = c->beta[i] * dhp[j];
        }
    }
    size_t at = (size_t)t0 * hsp;
    const float* states_t = w->states + (size_t)k * hs * hsp;
    product((Dst){w->dq + at, hsp, 1, NULL}, rows_of(c->x, hsp), states_t, hsp, n, hs, hs, ALL);   // dQ += dHb C^T
    product((Dst){w->dC, hsp, 1, NULL}, cols_of(c->q, c->ldr), c->x, hsp, hs, n, hs, ALL);        // dC += Q^T dHb
    product((Dst){c->s, ld, 0, NULL}, rows_of(c->q, c->ldr), c->kt, ld, n, hs, n, COLS_LOWER);    // S = Q K^T
    product((Dst){c->p, ld, 0, NULL}, rows_of(c->rows, hsp), c->vt, ld, n, hs, n, COLS_LOWER);    // dP = dH' V^T
    score_gradients(c->s, c->p, c->e, n, ld, hd->scale);
    product((Dst){w->dv + at, hsp, 1, NULL}, cols_of(c->s, ld), c->rows, hsp, n, n, hs, K_UPPER);  // dV += A^T dH'
    product((Dst){w->dk + at, hsp, 1, NULL}, cols_of(c->p, ld), c->q, c->ldr, n, n, hs, K_UPPER);  // dK += dS^T Q
    product((Dst){w->dq + at, hsp, 1, NULL}, rows_of(c->p, ld), c->k, c->ldr, n, n, hs, K_LOWER);  // dQ += dS K
}

// The head's gate gradients (docs/MODEL.md 11.2, 11.3): d li_t = k_t.dk_t, d lf_t = sum_{u>=t} (q_u.dq_u -
// k_u.dk_u), through sigmoid (mLSTMsig input gate), logsigmoid (forget gate) and the soft-cap, += into
// dgate_i[t*gstride], dgate_f[t*gstride]; the raw pre-activations are at gate_i, gate_f likewise.
static void log_gates_backward(float* dgate_i, float* dgate_f, const float* gate_i, const float* gate_f, size_t gstride,
                               const Head* hd, BackwardScratch* w, int T) {
    int hs = hd->hs, hsp = w->c.hsp;
    for (int t = 0; t < T; t++) {   // independent dot products first, then the cumulative sum
        w->kdk[t] = dot(hd->k + t * hd->stride, w->dk + (size_t)t * hsp, hs);
        w->dlf[t] = dot(hd->q + t * hd->stride, w->dq + (size_t)t * hsp, hs) - w->kdk[t];
    }
    for (int t = T - 2; t >= 0; t--) w->dlf[t] += w->dlf[t + 1];
    int sig_igate = hd->sig_igate;
    for (int t = 0; t < T; t++) {
        Capped ci = soft_cap(gate_i[t * gstride]), cf = soft_cap(gate_f[t * gstride]);
        float dli = sig_igate ? w->kdk[t] * sigmoid(-ci.value) : w->kdk[t];
        dgate_i[t * gstride] += dli * ci.grad;
        dgate_f[t * gstride] += w->dlf[t] * sigmoid(-cf.value) * cf.grad;
    }
}

// One head's dq, dk, dv (in w) from dh (T rows, C floats apart), n_out, m_out (T).
static void head_backward(BackwardScratch* w, const Head* hd, const float* dh, const float* n_out,
                          const float* m_out, int T, int chunk, int C) {
    int NC = (T + chunk - 1) / chunk;
    size_t rows = (size_t)T * w->c.hsp;
    memset(w->dq, 0, rows * sizeof(float));
    memset(w->dk, 0, rows * sizeof(float));
    memset(w->dv, 0, rows * sizeof(float));
    memset(w->dC, 0, (size_t)hd->hs * w->c.hsp * sizeof(float));
    recompute_states(w, hd, T, chunk);
    for (int k = NC - 1; k >= 0; k--) {
        int t0 = k * chunk, n = min_int(chunk, T - t0);
        load_rows(&w->c, hd, t0, n);
        if (k < NC - 1) chunk_state_backward(w, hd, w->m_states[k], w->m_states[k + 1], t0, n);
        chunk_backward(w, hd, dh, C, n_out, m_out, k, t0, n);
    }
}

// dqkv (B,T,3C), dgates (B,T,2NH) += from dh (B,T,C), n_out, m_out (B,NH,T).
void mlstm_chunkwise_backward(float* dqkv, float* dgates, const float* dh, const float* qkv, const float* gates,
                              const float* n_out, const float* m_out, int B, int T, int C, int NH, int chunk,
                              int sig_igate) {
    check_chunk("mlstm_chunkwise_backward", chunk);
    if (T <= 0) return;
    int hs = C / NH, L = min_int(chunk, T), NC = (T + L - 1) / L;
    #pragma omp parallel
    {
        float* buf = calloc_check(backward_scratch_floats(T, L, NC, hs), sizeof(float));
        BackwardScratch w = backward_scratch(buf, T, L, NC, hs);
        #pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int head = 0; head < NH; head++) {
                Head hd = head_at(qkv, gates, w.li, w.lf, b, head, T, C, NH, sig_igate);
                size_t at = ((size_t)b * NH + head) * T, g_at = (size_t)b * T * 2 * NH + head;
                head_backward(&w, &hd, dh + (size_t)b * T * C + (size_t)head * hs, n_out + at, m_out + at, T, L, C);
                log_gates_backward(dgates + g_at, dgates + g_at + NH, gates + g_at, gates + g_at + NH, 2 * (size_t)NH,
                                   &hd, &w, T);
                float* dq = dqkv + (size_t)b * T * 3 * C + (size_t)head * hs;
                add_rows(dq, 3 * (size_t)C, w.dq, w.c.hsp, T, hs);
                add_rows(dq + C, 3 * (size_t)C, w.dk, w.c.hsp, T, hs);
                add_rows(dq + 2 * C, 3 * (size_t)C, w.dv, w.c.hsp, T, hs);
            }
        }
        free(buf);
    }
}

// The quadratic form: one chunk of T positions.
void mlstm_parallel_backward(float* dqkv, float* dgates, const float* dh, const float* qkv, const float* gates,
                             const float* n_out, const float* m_out, int B, int T, int C, int NH, int sig_igate) {
    mlstm_chunkwise_backward(dqkv, dgates, dh, qkv, gates, n_out, m_out, B, T, C, NH, T > 0 ? T : 1, sig_igate);
}

// h (B,C) from qkv (B,3C), gates (B,2NH); the state (c_state, n_state, m_state) advanced by one step:
// a chunk of one position, then a read-out of the new state (docs/MODEL.md 11.1), on a zero-padded
// copy of the state.
void mlstm_recurrent_step(float* h, float* c_state, float* n_state, float* m_state, const float* qkv,
                          const float* gates, int B, int C, int NH, int sig_igate) {
    int hs = C / NH, hsp = round_up(hs, TILE);
    size_t hs2 = (size_t)hs * hsp;
    #pragma omp parallel
    {
        float* buf = calloc_check(chunk_floats(1, hs) + hs2 + hsp, sizeof(float));
        float* next = buf;
        Chunk w = chunk_scratch(&next, 1, hs);
        State st = {take(&next, hs2), take(&next, hsp), 0.0f};
        #pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++) {
            for (int head = 0; head < NH; head++) {
                float li, lf, n_unused, m_unused;
                Head hd = head_at(qkv, gates, &li, &lf, b, head, 1, C, NH, sig_igate);
                size_t bh = (size_t)b * NH + head;
                float *C_bh = c_state + bh * hs * hs, *n_bh = n_state + bh * hs;
                copy_rows(st.C, hsp, C_bh, hs, hs, hs);
                memcpy(st.n, n_bh, (size_t)hs * sizeof(float));
                st.m = m_state[bh];
                load_rows(&w, &hd, 0, 1);
                state_update(&st, &w, &hd, 0, 1, w.k, w.v);
                w.beta[0] = hd.scale, w.m[0] = st.m, w.den[0] = 0.0f;   // no keys: b = 0, so beta = 1/sqrt(hs)
                state_readout(&w, &st, hs, 1);
                finish_rows(h + (size_t)b * C + (size_t)head * hs, hs, &n_unused, &m_unused, &w, &st, hs, 1);
                copy_rows(C_bh, hs, st.C, hs, hsp, hs);
                memcpy(n_bh, st.n, (size_t)hs * sizeof(float));
                m_state[bh] = st.m;
            }
        }
        free(buf);
    }
}

void mlstm_score_matrix(float* weights, const float* qkv, const float* gates, int B, int T, int C, int NH,
                        int sig_igate) {
    #pragma omp parallel
    {
        float* buf = malloc_check(3 * (size_t)T * sizeof(float));
        float *li = buf, *lf = buf + T, *logw = buf + 2 * T;
        #pragma omp for collapse(2)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                Head hd = head_at(qkv, gates, li, lf, b, h, T, C, NH, sig_igate);
                for (int t = 0; t < T; t++) {
                    float* w = weights + (((size_t)b * NH + h) * T + t) * T;
                    row_log_weights(logw, &hd, 0, t);
                    float m = stabiliser(-INFINITY, logw, t + 1, 0);
                    for (int j = 0; j < T; j++)
                        w[j] = j <= t ? fabsf(hd.scale * dot(hd.q + t * hd.stride, hd.k + j * hd.stride, hd.hs)) *
                                            expf(logw[j] - m)
                                      : 0.0f;
                }
            }
        }
        free(buf);
    }
}
