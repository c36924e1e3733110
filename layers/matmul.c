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
//       pack op(B) (KC x NC) into NR-wide panels, each KC x NR contiguous (L3);
//       for each MC-tall block of M:
//         pack op(A) (MC x KC) into MR-tall panels, each KC x MR contiguous (L2);
//         for each NR panel of B (reused MC/MR times from L1/L2):
//           for each MR panel of A (streamed): micro-kernel on an MR x NR tile of C.
// The micro-kernel keeps an MR x NR tile of C in registers; per step of k it loads NR/VLEN vectors
// of B, broadcasts MR floats of A and issues MR NR/VLEN FMAs. It is written with GCC vector
// extensions, and its shape is chosen at compile time for the instruction set (common/cpu_shapes.h):
//   AVX-512 (32 registers of 16 floats): 8 x 48, 24 accumulators, 3 B vectors, KC 384, MC 256;
//   AVX2 (16 registers of 8 floats): 6 x 16, 12 accumulators, 2 B vectors and a broadcast (15 of
//     the 16 registers), KC 384, MC 240, the k loop unrolled 4 times;
//   NEON (32 of 4): 8 x 12, 24 accumulators; other targets (16 of 4): 4 x 12.
// Packing zero-pads partial panels, so the micro-kernel always runs full tiles and only its store
// to C is clipped at the edges; transposes are resolved once, in the packing (VLEN x VLEN blocks
// transposed in registers: a strip of VLEN rows fills VLEN/MR panels of A, or MR/VLEN strips one
// panel; AVX2's 6-row panels take 6 rows of each 8 x 8 block, see pack_panel_transposed).
// Threads (OpenMP, 2 cores here)
// each take a contiguous slice of N or of M, whichever gives the slowest thread less to do (its
// padded tiles plus its packing: splitting N makes every thread pack all of A), and run the
// serial blocked GEMM on it with their own packing buffers.
// Work that would otherwise be a pass of its own over a large tensor rides along: the forward's
// bias is added to the register tile as it is stored, and the bias gradient (dout's column sums)
// is summed while dout^T is packed for the weight gradient.
// Measured on a 2-core EPYC with AVX-512 (Zen 4, ~114 GFLOP/s FMA peak per core): 180-200 GFLOP/s
// on the GPT-2 124M layers with 2 threads; on a 2-core EPYC with AVX2 (Zen 3, ~101 GFLOP/s per
// core): see docs/PERF.md (scripts/bench/bench_matmul.py).
#include "layers/matmul.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/cpu_shapes.h"
#include "layers/gelu.h"

#define VLEN CPU_VLEN   // floats per vector register
#define DO_PRAGMA(x) _Pragma(#x)
#define UNROLL(n) DO_PRAGMA(GCC unroll n)
typedef float vfloat __attribute__((vector_size(VLEN * 4)));
typedef float vfloat_unaligned __attribute__((vector_size(VLEN * 4), aligned(4)));

enum {
    MR = MATMUL_MR,    // rows of the register tile
    NR = MATMUL_NR,    // columns of the register tile
    NV = NR / VLEN,    // vectors per row of the register tile
    KC = MATMUL_KC,    // depth of a packed slice
    MC = MATMUL_MC,    // rows of a packed A block (MC x KC floats, in L2)
    NC = 3072,         // columns of a packed B block (KC x NC floats, in L3)
};
_Static_assert(NR % VLEN == 0 && MC % MR == 0, "whole vectors per tile row, whole panels per A block");
_Static_assert(VLEN % MR == 0 || MR % VLEN == 0 || MR < VLEN, "pack_a has no transposing path for this MR");

// ---------------------------------------------------------------------------------------------
// Micro-kernel: c (m x n, ldc) = beta*c + alpha * a_panel (MR x kc) @ b_panel (kc x NR) [+ bias].

// c (m x n) = beta*c + alpha*acc [+ bias (n), per column].
static inline void store_tile(float* restrict c, int ldc, const vfloat acc[MR][NV], int m, int n,
                              float alpha, float beta, const float* restrict bias) {
    if (m == MR && n == NR) {
        vfloat bv[NV];
        for (int j = 0; j < NV; j++) bv[j] = bias ? *(const vfloat_unaligned*)(bias + j * VLEN) : (vfloat){0};
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NV; j++) {
                vfloat_unaligned* cp = (vfloat_unaligned*)(c + (size_t)i * ldc + j * VLEN);
                *cp = (beta == 0.0f ? alpha * acc[i][j] : beta * *cp + alpha * acc[i][j]) + bv[j];
            }
        return;
    }
    float tile[MR][NR] __attribute__((aligned(64)));
    memcpy(tile, acc, sizeof(tile));
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float* cp = c + (size_t)i * ldc + j;
            *cp = (beta == 0.0f ? alpha * tile[i][j] : beta * *cp + alpha * tile[i][j]) + (bias ? bias[j] : 0.0f);
        }
}

static void micro_kernel(int kc, const float* restrict a, const float* restrict b, float* restrict c,
                         int ldc, int m, int n, float alpha, float beta, const float* restrict bias) {
    vfloat acc[MR][NV];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NV; j++) acc[i][j] = (vfloat){0};
    if (beta != 0.0f)  // the tile of C is read at the end: start fetching it now
        for (int i = 0; i < m; i++)
            for (int j = 0; j < NV; j++) __builtin_prefetch(c + (size_t)i * ldc + j * VLEN, 1);
    UNROLL(MATMUL_KUNROLL)
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
    store_tile(c, ldc, acc, m, n, alpha, beta, bias);
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
    if (VLEN >= 8) transpose_stage(r, 4);
    if (VLEN >= 16) transpose_stage(r, 8);
}

// Loads rows 0..VLEN-1 of a VLEN-wide column block at p (row stride ld). The offsets are spelled
// as base + {1,2,4,8} * index so that they fit x86 addressing modes instead of VLEN pointers.
static inline __attribute__((always_inline)) void load_rows(vfloat r[VLEN], const float* p, size_t ld) {
    size_t ld3 = 3 * ld;
#if CPU_VLEN == 4
    r[0] = *(const vfloat_unaligned*)(p);
    r[1] = *(const vfloat_unaligned*)(p + ld);
    r[2] = *(const vfloat_unaligned*)(p + 2 * ld);
    r[3] = *(const vfloat_unaligned*)(p + ld3);
#else
    size_t ld5 = 5 * ld, ld7 = 7 * ld;
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
#endif
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

// The transposing pack for a panel width MR that is neither a divisor nor a multiple of VLEN: the
// MR rows of src (row stride ld, `rows` of them valid), each kc long, into one panel. Each VLEN x VLEN
// block is loaded as MR rows (the rest zero) and transposed in registers; the VLEN floats of depth k
// are stored at dst[k * MR], in increasing k, so the next store overwrites the VLEN - MR extra ones
// (the last block's spill into the next panel, or into VLEN floats of slack after the buffer's last).
static inline __attribute__((always_inline)) void pack_panel_transposed(
    float* restrict dst, const float* src, int ld, int kc, int rows) {
    int k = 0;
    for (; rows == MR && k + VLEN <= kc; k += VLEN) {
        vfloat r[VLEN];
#pragma GCC unroll 16
        for (int i = 0; i < VLEN; i++)
            r[i] = i < MR ? *(const vfloat_unaligned*)(src + (size_t)i * ld + k) : (vfloat){0};
        transpose_block(r);
#pragma GCC unroll 16
        for (int kk = 0; kk < VLEN; kk++) *(vfloat_unaligned*)(dst + (size_t)(k + kk) * MR) = r[kk];
    }
    for (; k < kc; k++)
        for (int j = 0; j < MR; j++) dst[(size_t)k * MR + j] = j < rows ? src[(size_t)j * ld + k] : 0.0f;
}

// `rows` (<= w) rows running along k (src[k*ld + r]) into one panel of width w; with row_sums,
// also adds each row's sum over the kc values into row_sums[r], read back from the panel in L1.
static inline __attribute__((always_inline)) void pack_panel_copy(
    float* restrict dst, const float* src, int ld, int kc, int rows, int w, float* restrict row_sums) {
    if (rows == w) {
        for (int k = 0; k < kc; k++) memcpy(dst + (size_t)k * w, src + (size_t)k * ld, sizeof(float) * w);
    } else {
        for (int k = 0; k < kc; k++)
            for (int r = 0; r < w; r++) dst[(size_t)k * w + r] = r < rows ? src[(size_t)k * ld + r] : 0.0f;
    }
    if (!row_sums) return;
    float sums[NR] = {0};
    for (int k = 0; k < kc; k++)
        for (int r = 0; r < w; r++) sums[r] += dst[(size_t)k * w + r];
    for (int r = 0; r < rows; r++) row_sums[r] += sums[r];
}

static int clamp_rows(int rows, int w) { return rows < 0 ? 0 : rows > w ? w : rows; }

// op(A) block (mc x kc) -> ceil(mc/MR) panels of width MR. op(A)(i,k) = trans_a ? a[k*lda+i] : a[i*lda+k].
// The transposing path goes VLEN rows (a strip) at a time where MR divides VLEN (up to VLEN/MR panels
// per strip) or VLEN divides MR (MR/VLEN strips per panel), else one panel at a time; the buffer has
// VLEN rows of slack for the strips past mc and the last panel's spill.
// row_sums (trans_a only: the one caller, the bias gradient, packs dout^T) gathers op(A)'s row sums.
static void pack_a(float* restrict dst, const float* a, int lda, int trans_a, int mc, int kc, float* row_sums) {
    if (trans_a) {
        for (int i0 = 0; i0 < mc; i0 += MR)
            pack_panel_copy(dst + (size_t)i0 * kc, a + i0, lda, kc, clamp_rows(mc - i0, MR), MR,
                            row_sums ? row_sums + i0 : NULL);
    } else if (VLEN % MR == 0 || MR % VLEN == 0) {
        int end = MR > VLEN ? (mc + MR - 1) / MR * MR : mc;   // every strip of the last panel, zero rows too
        for (int i0 = 0; i0 < end; i0 += VLEN)
            pack_strip_transposed(dst + (size_t)(i0 / MR) * MR * kc + i0 % MR, a + (size_t)i0 * lda, lda, kc,
                                  clamp_rows(mc - i0, VLEN), MR);
    } else {
        for (int i0 = 0; i0 < mc; i0 += MR)
            pack_panel_transposed(dst + (size_t)i0 * kc, a + (size_t)i0 * lda, lda, kc, clamp_rows(mc - i0, MR));
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
            pack_panel_copy(dst, b + j0, ldb, kc, clamp_rows(nc - j0, NR), NR, NULL);
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
    const float* bias;   // c[i][j] += bias[j], added in the registers by the last slice of K (NULL: none)
    float* a_row_sums;   // a_row_sums[i] += sum_k op(A)[i][k], gathered while packing (NULL: none)
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

// C block (mc x nc) at (ic, jc) += packed A block @ packed B block, over depth kc; `last`: the
// final slice of K, whose stores add the bias.
static void macro_kernel(const Gemm* g, int ic, int jc, int mc, int nc, int kc, float beta, int last) {
    for (int j0 = 0; j0 < nc; j0 += NR) {
        const float* bp = packed_b + (size_t)j0 * kc;
        const float* bias = last && g->bias ? g->bias + jc + j0 : NULL;
        for (int i0 = 0; i0 < mc; i0 += MR) {
            float* c = g->c + (size_t)(ic + i0) * g->ldc + jc + j0;
            int m = mc - i0 < MR ? mc - i0 : MR, n = nc - j0 < NR ? nc - j0 : NR;
            micro_kernel(kc, packed_a + (size_t)i0 * kc, bp, c, g->ldc, m, n, g->alpha, beta, bias);
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
                // A is packed once per block of N: its row sums come from the first
                float* sums = g->a_row_sums && jc == 0 ? g->a_row_sums + ic : NULL;
                pack_a(packed_a, a_at(g, ic, pc), g->lda, g->trans_a, mc, kc, sums);
                macro_kernel(g, ic, jc, mc, nc, kc, beta, pc + kc == g->K);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Thread t of nt: the slice [lo, hi) of N (split_n) or of M, in whole register panels.
static int slice_bound(int extent, int unit, int t, int nt) {
    int panels = (extent + unit - 1) / unit, bound = (int)((long)panels * t / nt) * unit;
    return bound < extent ? bound : extent;
}

static Gemm thread_slice(const Gemm* whole, int split_n, int t, int nt) {
    int extent = split_n ? whole->N : whole->M, unit = split_n ? NR : MR;
    int lo = slice_bound(extent, unit, t, nt), hi = slice_bound(extent, unit, t + 1, nt);
    Gemm part = *whole;
    if (split_n) {
        part.N = hi - lo;
        part.b = b_at(whole, 0, lo);
        part.c = whole->c + lo;
        if (part.bias) part.bias += lo;
        if (t > 0) part.a_row_sums = NULL;   // every thread packs all of A: the first one sums it
    } else {
        part.M = hi - lo;
        part.a = a_at(whole, lo, 0);
        part.c = whole->c + (size_t)lo * whole->ldc;
        if (part.a_row_sums) part.a_row_sums += lo;
    }
    return part;
}

// The slowest thread's time, in units of one FMA lane, if N (split_n) or M is split among nt
// threads: its register tiles (whole MR x NR tiles, edges padded) plus its packing, each packed
// float costing about PACK_COST lanes (a load, a shuffle or copy and a store, often from L2 or L3).
enum { PACK_COST = 16 };
static double split_cost(const Gemm* g, int split_n, int nt) {
    int extent = split_n ? g->N : g->M, unit = split_n ? NR : MR, widest = 0;
    for (int t = 0; t < nt; t++) {
        int w = slice_bound(extent, unit, t + 1, nt) - slice_bound(extent, unit, t, nt);
        widest = w > widest ? w : widest;
    }
    int m = split_n ? g->M : widest, n = split_n ? widest : g->N;
    double tiles = (double)((m + MR - 1) / MR) * ((n + NR - 1) / NR) * MR * NR;
    return (tiles + PACK_COST * (double)(m + n)) * g->K;
}

// C (M,N) = beta*C + alpha * op(A) @ op(B) [+ bias], row-major with leading dimensions;
// beta 0 never reads C. Small products run on one thread; otherwise each thread takes a slice of
// N or of M, whichever makes the slowest thread faster.
static void sgemm(const Gemm* whole) {
    int threads = 2.0 * whole->M * whole->N * whole->K < 4e6 ? 1 : omp_get_max_threads();
    int split_n = split_cost(whole, 1, threads) < split_cost(whole, 0, threads);
#pragma omp parallel num_threads(threads)
    {
        Gemm part = thread_slice(whole, split_n, omp_get_thread_num(), omp_get_num_threads());
        if (part.M > 0 && part.N > 0) gemm_serial(&part);
    }
}

// ---------------------------------------------------------------------------------------------

// out (N,OC) = inp (N,C) @ weight^T + bias: an NT product whose stores add the bias.
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC) {
    Gemm g = {.trans_b = 1, .M = N, .N = OC, .K = C, .alpha = 1.0f, .a = inp, .lda = C, .b = weight, .ldb = C,
              .c = out, .ldc = OC, .bias = bias};
    sgemm(&g);
}

// dinp (N,C) += dout @ weight (NN); dweight (OC,C) += dout^T @ inp (TN), whose packing of dout^T
// also sums dout's columns into dbias.
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, int N, int C, int OC) {
    if (dinp) {
        Gemm g = {.M = N, .N = C, .K = OC, .alpha = 1.0f, .a = dout, .lda = OC, .b = weight, .ldb = C, .beta = 1.0f,
                  .c = dinp, .ldc = C};
        sgemm(&g);
    }
    Gemm g = {.trans_a = 1, .M = OC, .N = C, .K = N, .alpha = 1.0f, .a = dout, .lda = OC, .b = inp, .ldb = C,
              .beta = 1.0f, .c = dweight, .ldc = C, .a_row_sums = dbias};
    sgemm(&g);
}

// The CPU runs the matmul and the GELU one after the other (the CUDA twin uses cuBLASLt's epilogue).
void matmul_gelu_forward(float* out_gelu, float* pre_gelu, const float* inp, const float* weight, const float* bias,
                         int N, int C, int OC, int exact) {
    matmul_forward(pre_gelu, inp, weight, bias, N, C, OC);
    gelu_forward(out_gelu, pre_gelu, N * OC, exact);
}
