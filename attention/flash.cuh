// Internal to attention/softmax_sigmoid.cu, the CUDA twin of attention/softmax_sigmoid.c
// (attention_cuda.h): FlashAttention-2 (Dao 2023) style causal attention, templated on the score mode
// (softmax; sigmoid(s + b), FlashSigmoid, docs/MODEL.md 5.4; sigmoid / row sum, docs/MODEL.md 5.3) and
// on ALiBi (docs/MODEL.md section 6: every score s_ij gets slope_h (j - i) added, i and j absolute positions).
// No T x T matrix exists in memory in either direction.
//
// Two kernel families:
//  - tensor-core kernels (bf16 build, head size 32, 64 or 128, 16-byte aligned pointers): mma.sync
//    m16n8k16 bf16 x bf16 -> fp32, tiles staged in shared memory with cp.async (double buffered),
//    fragments read with ldmatrix. Rows of every shared tile are HS + 8 bf16 (16 bytes of padding),
//    so the 8 row addresses of one ldmatrix 8x8 matrix fall in 8 distinct 16-byte bank groups.
//  - row-wise fallback kernels (any head size, any precision; the only path of the FP32 build, the
//    forward for Tq < 16, i.e. decoding): one warp per query (or key) row, fp32 throughout, lanes
//    over keys for the scores, lanes over the head dimension for the accumulators (kept in shared
//    memory, so any hs works).
//
// Tiling of the tensor-core kernels (4 warps = 128 threads per CTA, each warp owns 16 rows):
//  forward   CTA = 64 query rows of one (b, h); loops over 64-key tiles of K and V (double buffered)
//            up to the diagonal. Per warp: S (16 x 64) = Q K^T, online softmax on S in registers
//            (running max m and sum l per row, log2 domain; sigmoid: no max, no sum, no rescale;
//            normalized sigmoid: running sum only), O (16 x HS) += P V with P re-packed from the S
//            accumulators into bf16 A fragments (no trip through shared memory).
//  dK, dV    CTA = 64 keys of one (b, h); K, V stay in shared memory; loops over query tiles of BQ rows
//            (64 for hs 32 and 64, 32 for hs 128, to bound registers) from the diagonal to T, Q, dO, LSE and
//            D double buffered. Per warp (16 keys): S^T = K Q^T and dP^T = V dO^T (16 x BQ), then
//            P^T and dS^T elementwise, dV (16 x HS) += P^T dO, dK += dS^T Q.
//  dQ        CTA = 64 query rows; Q, dO stay in shared memory; loops over key tiles of BK keys (64 for
//            hs 32 and 64, 32 for hs 128, to stay under 99 KB of shared memory) up to the diagonal. Per warp:
//            S = Q K^T, dP = dO V^T (16 x BK), dS, dQ (16 x HS) += dS K.
//  D_i = dO_i . O_i (softmax and normalized sigmoid) comes from a pre-pass into a stream-ordered
//  scratch buffer (cudaMallocAsync), shared by both families.
//
// ALiBi is a compile-time parameter of every kernel (ALIBI), so that the kernels without it keep their
// arithmetic (bit for bit) and their cost. With it, the offset slope (j - i) joins each score where the score is formed
// (after the scale, in the units the kernel keeps it in: log2 in the softmax forward), before the mask,
// the max, the sigmoid and the row statistics, so the LSE and Z in stat include it, and the backward
// recomputes the same scores. Row-wise kernels: one FMA per score (add_alibi). Tensor-core kernels:
// j - i of a C-fragment element is the thread's per-tile distance plus a compile-time constant, so the
// offset is one FMA of the slope and that constant (shared by the elements with the same constant)
// that becomes the addend of the scale's FMA (fragment_score).
//
// mma.sync.m16n8k16.row.col fragments (PTX ISA "Matrix Fragments for mma.m16n8k16"), lane = 4 g + t:
//   A (16 x 16, 4 regs of 2 bf16): a0 = (row g,   cols 2t, 2t+1), a1 = (row g+8, cols 2t, 2t+1),
//                                  a2 = (row g,   cols 2t+8, +9), a3 = (row g+8, cols 2t+8, +9)
//   B (16 x 8, 2 regs):            b0 = (rows 2t, 2t+1, col g),   b1 = (rows 2t+8, 2t+9, col g)
//   C (16 x 8, 4 fp32):            c0, c1 = (row g, cols 2t, 2t+1), c2, c3 = (row g+8, cols 2t, 2t+1)
// ldmatrix.x4 lets lanes 8i..8i+7 name the 8 rows of matrix i; a lane receives row g, cols 2t, 2t+1 of
// each matrix (with .trans: rows 2t, 2t+1 of col g). Hence:
//   A from a row-major [m][k] tile:         lane address row m0 + (lane & 15), col k0 + 8 (lane >> 4)
//   B = M^T from a row-major [n][k] tile:   row n0 + (lane & 7) + 8 (lane >> 4), col k0 + 8 ((lane >> 3) & 1)
//                                           (regs 0, 1: n-block n0; regs 2, 3: n-block n0 + 8)
//   B = M from a row-major [k][n] tile, .trans: row k0 + (lane & 7) + 8 ((lane >> 3) & 1), col n0 + 8 (lane >> 4)
//                                           (regs 0, 1: n-block n0; regs 2, 3: n-block n0 + 8)
//   A from C accumulators: the C tiles of n-blocks 2kk, 2kk+1 are exactly A (16 x 16) of k-step kk:
//     a0 = (c0, c1 of 2kk), a1 = (c2, c3 of 2kk), a2 = (c0, c1 of 2kk+1), a3 = (c2, c3 of 2kk+1).
//
// Determinism: every kernel is deterministic (bitwise run to run): no atomics; each output element
// (out, stat, D, and each element of dqkv) is written by exactly one thread, with a fixed reduction
// order. dQ costs a second pass (the dQ kernel recomputes S and dP) instead of fp32 atomics.
// dqkv is accumulated (+=) with one read-modify-write per element at the end of a kernel.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/cuda_common.cuh"
#include "common/fastmath.h"
#include "attention/softmax_sigmoid.h"
#include "common/ptx.cuh"

namespace flash {

enum { MODE_SOFTMAX = 0, MODE_SIGMOID = 1, MODE_SIGMOID_NORM = 2 };

constexpr float SIGMOID_NORM_EPS = 1e-8f;   // Z' = Z + eps (docs/MODEL.md 5.3, as in softmax_sigmoid.c)
constexpr float LOG2E = 1.4426950408889634f;
constexpr float LN2 = 0.6931471805599453f;
constexpr int THREADS = 128;                  // 4 warps per CTA in every kernel

static inline int score_mode(AttnScore s) {
    return !s.sigmoid ? MODE_SOFTMAX : (s.normalize ? MODE_SIGMOID_NORM : MODE_SIGMOID);
}

static __device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

static __device__ __forceinline__ float warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

// The backward of one score, shared by both families (see softmax_sigmoid.c's header): from the scaled score
// s, dP = dO . v, the row statistic (LSE or Z) and D = dO . O, the weight w the forward used (for
// dV += w dO) and dS (unscaled: dQ, dK take scale dS).
//   softmax:      w = exp(s - LSE),                     dS = w (dP - D)
//   sigmoid:      w = p = sigmoid(s + b),               dS = dP p (1 - p)
//   sigmoid/norm: w = p / Z', p = sigmoid(s + b),       dS = (dP - D) / Z' p (1 - p)
template <int MODE, bool FAST>
static __device__ __forceinline__ void weight_and_grad(float s, float dp, float stat, float D, float bias, float& w,
                                                       float& ds) {
    if (MODE == MODE_SOFTMAX) {
        w = FAST ? __expf(s - stat) : expf(s - stat);
        ds = w * (dp - D);
    } else {
        const float p = sigmoid(s + bias);   // common/fastmath.h: __expf and the approximate divide
        if (MODE == MODE_SIGMOID) {
            w = p;
            ds = dp * p * (1.0f - p);
        } else {
            const float inv_z = FAST ? __fdividef(1.0f, stat + SIGMOID_NORM_EPS) : 1.0f / (stat + SIGMOID_NORM_EPS);
            w = p * inv_z;
            ds = (dp - D) * inv_z * p * (1.0f - p);
        }
    }
}

// Launches need more than the default 48 KB of dynamic shared memory opted in (per device, so on
// every launch: cheap, and right when several host threads drive several GPUs).
template <typename Kernel> static void allow_smem(Kernel kernel, size_t bytes) {
    if (bytes > 48 * 1024)
        cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

// The head sizes the tensor-core kernels are built for, and the call of f with the one asked for
// as a compile-time constant (f(std::integral_constant<int, HS>())), shared by forward and backward.
static inline bool tensor_core_head_size(int hs) { return hs == 32 || hs == 64 || hs == 128; }
template <typename F> static void with_head_size(int hs, F f) {
    if (hs == 32) f(std::integral_constant<int, 32>());
    else if (hs == 64) f(std::integral_constant<int, 64>());
    else f(std::integral_constant<int, 128>());
}

// f(std::integral_constant<int, MODE>(), std::integral_constant<bool, ALIBI>()) for the score map of
// `score`: its mode and whether ALiBi is on.
template <typename F> static void with_score(AttnScore score, F f) {
    const auto with_mode = [&](auto alibi) {
        const int mode = score_mode(score);
        if (mode == MODE_SOFTMAX) f(std::integral_constant<int, MODE_SOFTMAX>(), alibi);
        else if (mode == MODE_SIGMOID) f(std::integral_constant<int, MODE_SIGMOID>(), alibi);
        else f(std::integral_constant<int, MODE_SIGMOID_NORM>(), alibi);
    };
    if (score.alibi) with_mode(std::true_type());
    else with_mode(std::false_type());
}

// ALiBi's slope of head h in the units of the scores (times log2(e) in the log2 domain); 0 without it.
template <bool ALIBI>
static __device__ __forceinline__ float alibi_slope(AttnScore score, int h, int NH, float units = 1.0f) {
    return ALIBI ? units * attn_alibi_slope(score, h, NH) : 0.0f;
}

// The score x of key j for query position i plus ALiBi's offset slope (j - i) = -slope (i - j)
// (docs/MODEL.md section 6); x itself without ALiBi. j_minus_i is exact as a float (|j - i| < 2^24).
template <bool ALIBI> static __device__ __forceinline__ float add_alibi(float x, float slope, float j_minus_i) {
    return ALIBI ? fmaf(slope, j_minus_i, x) : x;
}

#ifdef ATTNLAB_BF16
typedef __nv_bfloat16 bf16;

// Two floats as one register of two bf16 (the lower column in the low half, as mma expects).
static __device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

// Fragment loaders for one warp (see the header): A rows m0.. of a [m][LD] tile at k-step k0; B for
// n-blocks n0, n0 + 8 at k-step k0 from a [n][LD] tile (B = tile^T) or, transposed, a [k][LD] tile.
template <int LD> static __device__ __forceinline__ void load_a(uint32_t a[4], const bf16* tile, int m0, int k0) {
    const int lane = threadIdx.x & 31;
    ldmatrix_x4(a, tile + (m0 + (lane & 15)) * LD + k0 + ((lane >> 4) << 3));
}

template <int LD> static __device__ __forceinline__ void load_b_nk(uint32_t b[4], const bf16* tile, int n0, int k0) {
    const int lane = threadIdx.x & 31;
    ldmatrix_x4(b, tile + (n0 + (lane & 7) + ((lane >> 4) << 3)) * LD + k0 + (((lane >> 3) & 1) << 3));
}

template <int LD> static __device__ __forceinline__ void load_b_kn(uint32_t b[4], const bf16* tile, int k0, int n0) {
    const int lane = threadIdx.x & 31;
    ldmatrix_x4_trans(b, tile + (k0 + (lane & 7) + (((lane >> 3) & 1) << 3)) * LD + n0 + ((lane >> 4) << 3));
}

// A fragment of k-step kk from fp32 C accumulators c[n-block][4] (see the header).
static __device__ __forceinline__ void a_from_acc(uint32_t a[4], const float c0[4], const float c1[4]) {
    a[0] = pack_bf16(c0[0], c0[1]);
    a[1] = pack_bf16(c0[2], c0[3]);
    a[2] = pack_bf16(c1[0], c1[1]);
    a[3] = pack_bf16(c1[2], c1[3]);
}

// The two warp-level products every tensor-core kernel is made of (16 rows per warp, fp32 accumulators).
// acc (16 x N) += A B^T: A = rows a_row .. a_row+15 of the smem tile a_s, B = rows 0 .. N-1 of b_s, both
// row-major with K = HS columns (S = Q K^T, dP = dO V^T, and their transposes).
template <int LD, int HS, int N>
static __device__ __forceinline__ void warp_mma_abt(float (*acc)[4], const bf16* a_s, int a_row, const bf16* b_s) {
    #pragma unroll
    for (int kk = 0; kk < HS / 16; kk++) {
        uint32_t a[4];
        load_a<LD>(a, a_s, a_row, kk * 16);
        #pragma unroll
        for (int nb = 0; nb < N / 8; nb += 2) {
            uint32_t b[4];
            load_b_nk<LD>(b, b_s, nb * 8, kk * 16);
            mma_bf16(acc[nb], a, b[0], b[1]);
            mma_bf16(acc[nb + 1], a, b[2], b[3]);
        }
    }
}

// acc (16 x HS) += P B: P (16 x K) = the accumulators of an earlier product, B = rows 0 .. K-1 of the
// row-major smem tile b_s (O += P V, dQ += dS K, dV += P^T dO, dK += dS^T Q).
template <int LD, int HS, int K>
static __device__ __forceinline__ void warp_mma_pb(float (*acc)[4], const float (*p)[4], const bf16* b_s) {
    #pragma unroll
    for (int kk = 0; kk < K / 16; kk++) {
        uint32_t a[4];
        a_from_acc(a, p[2 * kk], p[2 * kk + 1]);
        #pragma unroll
        for (int nd = 0; nd < HS / 8; nd += 2) {
            uint32_t b[4];
            load_b_kn<LD>(b, b_s, kk * 16, nd * 8);
            mma_bf16(acc[nd], a, b[0], b[1]);
            mma_bf16(acc[nd + 1], a, b[2], b[3]);
        }
    }
}

// dst (ROWS, LD) in shared memory <- rows row0 .. row0 + ROWS - 1 of src (HS bf16 each, `stride`
// elements apart); rows at or past n_rows become zeros. All THREADS threads take part.
template <int ROWS, int HS, int LD>
static __device__ __forceinline__ void load_tile(bf16* dst, const bf16* src, size_t stride, int row0, int n_rows) {
    constexpr int CHUNKS = HS / 8;   // 16-byte pieces per row
    static_assert(ROWS * CHUNKS % THREADS == 0, "tile must split evenly over the CTA");
    #pragma unroll
    for (int it = 0; it < ROWS * CHUNKS / THREADS; it++) {
        const int idx = it * THREADS + (int)threadIdx.x, r = idx / CHUNKS, c = idx % CHUNKS * 8;
        const bool valid = row0 + r < n_rows;
        cp_async_16(dst + r * LD + c, src + (valid ? (size_t)(row0 + r) * stride + c : 0), valid);
    }
}

// One step of the double-buffered K, V pipeline of the forward and dQ kernels (stages of BK rows):
// start loading tile it+1 into the other stage, then wait until tile it has landed.
template <int BK, int HS, int LD>
static __device__ __forceinline__ void kv_pipeline_step(bf16* k_s, bf16* v_s, const bf16* k_g, const bf16* v_g,
                                                        size_t stride, int it, int n_tiles, int n_rows) {
    if (it + 1 < n_tiles) {
        const int next = (it + 1) & 1;
        load_tile<BK, HS, LD>(k_s + next * BK * LD, k_g, stride, (it + 1) * BK, n_rows);
        load_tile<BK, HS, LD>(v_s + next * BK * LD, v_g, stride, (it + 1) * BK, n_rows);
        cp_async_commit();
        cp_async_wait<1>();
    } else {
        cp_async_wait<0>();
    }
}

// The scaled score a s of C-fragment element e of n-block nb (see the header) plus, with ALiBi, its
// offset slope (j - i). o0 = slope d0, d0 the j - i of the thread's element (0, 0) in this tile; the
// element's column minus row relative to it is c = 8 nb + (e & 1) - 8 (e >> 1), a compile-time
// constant, so its j - i is d0 + SIGN c (SIGN = 1 when the columns are keys, as in S; -1 when they are
// queries, as in S^T). The offset o0 + slope SIGN c is one FMA, shared by the elements with equal c,
// and the addend of the scale's FMA. Exactly a s without ALiBi.
template <bool ALIBI, int SIGN>
static __device__ __forceinline__ float fragment_score(float s, float a, float slope, float o0, int nb, int e) {
    const int c = 8 * nb + (e & 1) - 8 * (e >> 1);
    return ALIBI ? fmaf(s, a, fmaf(slope, (float)(SIGN * c), o0)) : s * a;
}

// p[0], p[1] (bf16 pair, 4-byte aligned) += x0, x1: the one read-modify-write of a dqkv element pair.
static __device__ __forceinline__ void add_pair(bf16* p, float x0, float x1) {
    __nv_bfloat162* p2 = reinterpret_cast<__nv_bfloat162*>(p);
    const float2 old = __bfloat1622float2(*p2);
    *p2 = __floats2bfloat162_rn(old.x + x0, old.y + x1);
}
#endif   // ATTNLAB_BF16

}   // namespace flash
