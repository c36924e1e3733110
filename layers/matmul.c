// Linear layer (matmul) forward and backward on the CPU, through one hand-written SGEMM.
//
// All three products are C (M,N) = beta*C + alpha * op(A) (M,K) @ op(B) (K,N), row-major:
//   forward   out   (N,OC) = inp (N,C)     @ weight^T (C,OC)   NT, beta 0, then + bias
//   backward  dinp  (N,C) += dout (N,OC)   @ weight (OC,C)     NN, beta 1
//             dweight(OC,C) += dout^T (OC,N) @ inp (N,C)       TN, beta 1
//
// The SGEMM follows the GotoBLAS / BLIS scheme (Goto & van de Geijn, "Anatomy of high-performance
// matrix multiplication", TOMS 2008; Van Zee & van de Geijn, "BLIS", TOMS 2015):
//   for each NC-wide block of N:
//     for each KC-deep slice of K:
//       pack op(B) (KC x NC) into NR-wide panels, each KC x NR contiguous (4.5 MiB, L3);
//       for each MC-tall block of M:
//         pack op(A) (MC x KC) into MR-tall panels, each KC x MR contiguous (384 KiB, L2);
//         for each NR panel of B (72 KiB, reused MC/MR times from L1/L2):
//           for each MR panel of A (12 KiB, streamed): micro-kernel on an MR x NR tile of C.
// The micro-kernel keeps an MR x NR = 8 x 48 tile of C in 24 AVX-512 registers (16 floats each);
// per step of k it loads 3 vectors of B, broadcasts 8 floats of A and issues 24 FMAs. It is
// written with GCC vector extensions: without AVX-512 the same code builds an 8 x 24 tile of
// 256-bit vectors (or SSE pairs). Packing zero-pads partial panels, so the micro-kernel always
// runs full tiles and only its store to C is clipped at the edges; transposes are resolved once,
// in the packing (VLEN x VLEN blocks transposed in registers). Threads (OpenMP, 2 cores here)
// each take a contiguous slice of N, or of M where that duplicates less packing work, and run
// the serial blocked GEMM on it with their own packing buffers.
// Measured on the 2-core EPYC (Zen 4, ~114 GFLOP/s FMA peak per core): 180-200 GFLOP/s on the
// GPT-2 124M layers with 2 threads (scripts/bench_matmul.py).
#include "layers.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"

#ifdef __AVX512F__
#define VLEN 16
#else
#define VLEN 8
#endif
typedef float vfloat __attribute__((vector_size(VLEN * 4)));
typedef float vfloat_unaligned __attribute__((vector_size(VLEN * 4), aligned(4)));

enum {
    MR = 8,            // rows of the register tile
    NV = 3,            // vectors per row of the register tile
    NR = NV * VLEN,    // columns of the register tile
    KC = 384,          // depth of a packed slice
    MC = 256,          // rows of a packed A block (MC x KC floats: 384 KiB, in L2)
    NC = 3072,         // columns of a packed B block (KC x NC floats, in L3)
};
_Static_assert(VLEN % MR == 0, "pack_strip_transposed fills VLEN/MR whole A panels per strip");

// ---------------------------------------------------------------------------------------------
// Micro-kernel: c (m x n, ldc) = beta*c + alpha * a_panel (MR x kc) @ b_panel (kc x NR).

static inline void store_tile(float* restrict c, int ldc, const vfloat acc[MR][NV], int m, int n,
                              float alpha, float beta) {
    if (m == MR && n == NR) {
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NV; j++) {
                vfloat_unaligned* cp = (vfloat_unaligned*)(c + (size_t)i * ldc + j * VLEN);
                *cp = beta == 0.0f ? alpha * acc[i][j] : beta * *cp + alpha * acc[i][j];
            }
        return;
    }
    float tile[MR][NR] __attribute__((aligned(64)));
    memcpy(tile, acc, sizeof(tile));
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float* cp = c + (size_t)i * ldc + j;
            *cp = beta == 0.0f ? alpha * tile[i][j] : beta * *cp + alpha * tile[i][j];
        }
}

static void micro_kernel(int kc, const float* restrict a, const float* restrict b, float* restrict c,
                         int ldc, int m, int n, float alpha, float beta) {
    vfloat acc[MR][NV];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NV; j++) acc[i][j] = (vfloat){0};
    if (beta != 0.0f)  // the tile of C is read at the end: start fetching it now
        for (int i = 0; i < m; i++)
            for (int j = 0; j < NV; j++) __builtin_prefetch(c + (size_t)i * ldc + j * VLEN, 1);
    for (int k = 0; k < kc; k++) {
        vfloat bk[NV];
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++) bk[j] = *(const vfloat*)(b + (size_t)k * NR + j * VLEN);
        const float* ak = a + (size_t)k * MR;
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
            for (int j = 0; j < NV; j++) acc[i][j] += ak[i] * bk[j];
    }
    store_tile(c, ldc, acc, m, n, alpha, beta);
}

// ---------------------------------------------------------------------------------------------
// Packing. A panel of width w holds, for each k, w consecutive floats: element (r, k) of the
// block goes to dst[(r / w) * w * kc + k * w + r % w]; rows past the edge are zero.
// Two cases: the source runs along k ("copy": k-major, rows contiguous) or along r ("transpose":
// r-major, each row contiguous along k, transposed VLEN x VLEN at a time in registers).

// In-register transpose of a VLEN x VLEN block: log2(VLEN) stages of two-source shuffles, stage
// `bit` swapping that bit of the row index with the same bit of the column index.
typedef int vint __attribute__((vector_size(VLEN * 4)));

static inline __attribute__((always_inline)) void transpose_stage(vfloat r[VLEN], int bit) {
    vint lo_mask, hi_mask;
#pragma GCC unroll 16
    for (int j = 0; j < VLEN; j++) {
        lo_mask[j] = (j & bit) ? VLEN + (j ^ bit) : j;
        hi_mask[j] = (j & bit) ? VLEN + j : (j | bit);
    }
#pragma GCC unroll 16
    for (int i = 0; i < VLEN; i++) {
        if (i & bit) continue;
        vfloat lo = __builtin_shuffle(r[i], r[i | bit], lo_mask);
        r[i | bit] = __builtin_shuffle(r[i], r[i | bit], hi_mask);
        r[i] = lo;
    }
}

static inline __attribute__((always_inline)) void transpose_block(vfloat r[VLEN]) {
    transpose_stage(r, 1);
    transpose_stage(r, 2);
    transpose_stage(r, 4);
    if (VLEN == 16) transpose_stage(r, 8);
}

// Loads rows 0..VLEN-1 of a VLEN-wide column block at p (row stride ld). The offsets are spelled
// as base + {1,2,4,8} * index so that they fit x86 addressing modes instead of VLEN pointers.
static inline __attribute__((always_inline)) void load_rows(vfloat r[VLEN], const float* p, size_t ld) {
    size_t ld3 = 3 * ld, ld5 = 5 * ld, ld7 = 7 * ld;
    for (int half = 0; half < VLEN; half += 8, p += 8 * ld) {
        r[half + 0] = *(const vfloat_unaligned*)(p);
        r[half + 1] = *(const vfloat_unaligned*)(p + ld);
        r[half + 2] = *(const vfloat_unaligned*)(p + 2 * ld);
        r[half + 3] = *(const vfloat_unaligned*)(p + ld3);
        r[half + 4] = *(const vfloat_unaligned*)(p + 4 * ld);
        r[half + 5] = *(const vfloat_unaligned*)(p + ld5);
        r[half + 6] = *(const vfloat_unaligned*)(p + 2 * ld3);
        r[half + 7] = *(const vfloat_unaligned*)(p + ld7);
    }
}

// VLEN rows of src (row stride ld, `rows` of them valid), each kc long, into panels of width w.
// w is a compile-time constant after inlining: a multiple of VLEN (B panels) or a divisor (A).
// Full strips go through registers VLEN x VLEN at a time; edge strips and the k tail are scalar.
static inline __attribute__((always_inline)) void pack_strip_transposed(
    float* restrict dst, const float* src, int ld, int kc, int rows, int w) {
    int piece = w < VLEN ? w : VLEN;
    int k = 0;
    for (; rows == VLEN && k + VLEN <= kc; k += VLEN) {
        vfloat r[VLEN];
        load_rows(r, src + k, (size_t)ld);
        transpose_block(r);
#pragma GCC unroll 16
        for (int kk = 0; kk < VLEN; kk++)
            for (int p = 0; p < VLEN; p += piece)
                memcpy(dst + (size_t)(p / w) * w * kc + (size_t)(k + kk) * w + p % w, (float*)&r[kk] + p,
                       sizeof(float) * piece);
    }
    for (; k < kc; k++)
        for (int j = 0; j < VLEN; j++)
            dst[(size_t)(j / w) * w * kc + (size_t)k * w + j % w] = j < rows ? src[(size_t)j * ld + k] : 0.0f;
}

// `rows` (<= w) rows running along k (src[k*ld + r]) into one panel of width w.
static inline __attribute__((always_inline)) void pack_panel_copy(
    float* restrict dst, const float* src, int ld, int kc, int rows, int w) {
    if (rows == w) {
        for (int k = 0; k < kc; k++) memcpy(dst + (size_t)k * w, src + (size_t)k * ld, sizeof(float) * w);
        return;
    }
    for (int k = 0; k < kc; k++)
        for (int r = 0; r < w; r++) dst[(size_t)k * w + r] = r < rows ? src[(size_t)k * ld + r] : 0.0f;
}

static int clamp_rows(int rows, int w) { return rows < 0 ? 0 : rows > w ? w : rows; }

// op(A) block (mc x kc) -> ceil(mc/MR) panels of width MR. op(A)(i,k) = trans_a ? a[k*lda+i] : a[i*lda+k].
// The transposing path writes VLEN/MR panels per strip: the buffer has VLEN rows of slack.
static void pack_a(float* restrict dst, const float* a, int lda, int trans_a, int mc, int kc) {
    if (trans_a) {
        for (int i0 = 0; i0 < mc; i0 += MR)
            pack_panel_copy(dst + (size_t)i0 * kc, a + i0, lda, kc, clamp_rows(mc - i0, MR), MR);
    } else {
        for (int i0 = 0; i0 < mc; i0 += VLEN)
            pack_strip_transposed(dst + (size_t)i0 * kc, a + (size_t)i0 * lda, lda, kc, clamp_rows(mc - i0, VLEN), MR);
    }
}

// op(B) block (kc x nc) -> ceil(nc/NR) panels of width NR. op(B)(k,j) = trans_b ? b[j*ldb+k] : b[k*ldb+j].
static void pack_b(float* restrict dst, const float* b, int ldb, int trans_b, int kc, int nc) {
    for (int j0 = 0; j0 < nc; j0 += NR, dst += (size_t)NR * kc) {
        if (trans_b) {
            for (int v = 0; v < NV; v++)
                pack_strip_transposed(dst + v * VLEN, b + (size_t)(j0 + v * VLEN) * ldb, ldb, kc,
                                      clamp_rows(nc - j0 - v * VLEN, VLEN), NR);
        } else {
            pack_panel_copy(dst, b + j0, ldb, kc, clamp_rows(nc - j0, NR), NR);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The blocked GEMM on one thread, with its own packing buffers.

typedef struct {
    int trans_a, trans_b, M, N, K;
    float alpha;
    const float* a;
    int lda;
    const float* b;
    int ldb;
    float beta;
    float* c;
    int ldc;
} Gemm;

// Packing buffers, one pair per thread, allocated on first use and kept (no page faults per call).
static _Thread_local float* packed_a;
static _Thread_local float* packed_b;

static float* aligned_floats(size_t count) {
    void* p = NULL;
    if (posix_memalign(&p, 64, count * sizeof(float)) != 0)
        fail("out of memory allocating %zu floats for matmul packing", count);
    return p;
}

static void ensure_buffers(void) {
    if (!packed_a) {
        packed_a = aligned_floats((size_t)(MC + VLEN) * KC);
        packed_b = aligned_floats((size_t)(NC + NR) * KC);
    }
}

static inline const float* a_at(const Gemm* g, int i, int k) {
    return g->trans_a ? g->a + (size_t)k * g->lda + i : g->a + (size_t)i * g->lda + k;
}
static inline const float* b_at(const Gemm* g, int k, int j) {
    return g->trans_b ? g->b + (size_t)j * g->ldb + k : g->b + (size_t)k * g->ldb + j;
}

// C block (mc x nc) at (ic, jc) += packed A block @ packed B block, over depth kc.
static void macro_kernel(const Gemm* g, int ic, int jc, int mc, int nc, int kc, float beta) {
    for (int j0 = 0; j0 < nc; j0 += NR) {
        const float* bp = packed_b + (size_t)j0 * kc;
        for (int i0 = 0; i0 < mc; i0 += MR) {
            float* c = g->c + (size_t)(ic + i0) * g->ldc + jc + j0;
            int m = mc - i0 < MR ? mc - i0 : MR, n = nc - j0 < NR ? nc - j0 : NR;
            micro_kernel(kc, packed_a + (size_t)i0 * kc, bp, c, g->ldc, m, n, g->alpha, beta);
        }
    }
}

static void gemm_serial(const Gemm* g) {
    ensure_buffers();
    for (int jc = 0; jc < g->N; jc += NC) {
        int nc = g->N - jc < NC ? g->N - jc : NC;
        for (int pc = 0; pc < g->K; pc += KC) {
            int kc = g->K - pc < KC ? g->K - pc : KC;
            float beta = pc == 0 ? g->beta : 1.0f;
            pack_b(packed_b, b_at(g, pc, jc), g->ldb, g->trans_b, kc, nc);
            for (int ic = 0; ic < g->M; ic += MC) {
                int mc = g->M - ic < MC ? g->M - ic : MC;
                pack_a(packed_a, a_at(g, ic, pc), g->lda, g->trans_a, mc, kc);
                macro_kernel(g, ic, jc, mc, nc, kc, beta);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Thread t of nt: the slice [lo, hi) of N (split_n) or of M, in whole register panels.
static Gemm thread_slice(const Gemm* whole, int split_n, int t, int nt) {
    int extent = split_n ? whole->N : whole->M, unit = split_n ? NR : MR;
    int panels = (extent + unit - 1) / unit;
    int lo = (int)((long)panels * t / nt) * unit, hi = (int)((long)panels * (t + 1) / nt) * unit;
    if (hi > extent) hi = extent;
    Gemm part = *whole;
    if (split_n) {
        part.N = hi - lo;
        part.b = b_at(whole, 0, lo);
        part.c = whole->c + lo;
    } else {
        part.M = hi - lo;
        part.a = a_at(whole, lo, 0);
        part.c = whole->c + (size_t)lo * whole->ldc;
    }
    return part;
}

// C (M,N) = beta*C + alpha * op(A) @ op(B), row-major with leading dimensions; beta 0 never
// reads C. Small products run on one thread.
static void sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float* a, int lda,
                  const float* b, int ldb, float beta, float* c, int ldc) {
    Gemm whole = {trans_a, trans_b, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc};
    int threads = 2.0 * M * N * K < 4e6 ? 1 : omp_get_max_threads();
    int n_panels = (N + NR - 1) / NR, m_panels = (M + MR - 1) / MR;
    // Splitting N makes every thread pack all of A (M*K); splitting M, all of B (K*N).
    int split_n = n_panels >= threads && (M <= N || m_panels < threads);
#pragma omp parallel num_threads(threads)
    {
        Gemm part = thread_slice(&whole, split_n, omp_get_thread_num(), omp_get_num_threads());
        if (part.M > 0 && part.N > 0) gemm_serial(&part);
    }
}

// ---------------------------------------------------------------------------------------------

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC) {
    sgemm(0, 1, N, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC);
    if (!bias) return;
#pragma omp parallel for schedule(static) if ((long)N * OC > 65536)
    for (int n = 0; n < N; n++) {
        float* row = out + (size_t)n * OC;
        for (int o = 0; o < OC; o++) row[o] += bias[o];
    }
}

// dbias (OC) += column sums of dout (N,OC); each thread owns a range of columns.
static void bias_backward(float* dbias, const float* dout, int N, int OC) {
#pragma omp parallel if ((long)N * OC > 65536)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int lo = (int)((long)OC * t / nt), hi = (int)((long)OC * (t + 1) / nt);
        for (int n = 0; n < N; n++) {
            const float* row = dout + (size_t)n * OC;
            for (int o = lo; o < hi; o++) dbias[o] += row[o];
        }
    }
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, int N, int C, int OC) {
    if (dinp) sgemm(0, 0, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    sgemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias) bias_backward(dbias, dout, N, OC);
}
