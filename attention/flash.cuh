// The building blocks of the FlashAttention-2 (Dao 2023) style CUDA kernels: the tensor-core tiles
// of the softmax / sigmoid attention (attention/softmax_sigmoid_tc.cu) and of mLSTM's chunks
// (attention/mlstm.cu), and the launch helpers every attention kernel family uses (the CTA size, the
// shared-memory opt-in, the dispatch on the head size, warp reductions). What the softmax / sigmoid
// kernels alone share (the score map's policy, the families' launchers) is in
// attention/softmax_sigmoid.cuh.
//
// Tensor-core kernels (bf16 build, head size 32, 64 or 128, 16-byte aligned pointers): mma.sync
// m16n8k16 bf16 x bf16 -> fp32, tiles staged in shared memory with cp.async (double buffered),
// fragments read with ldmatrix. Rows of every shared tile are HS + 8 bf16 (16 bytes of padding), so
// the 8 row addresses of one ldmatrix 8x8 matrix fall in 8 distinct 16-byte bank groups. A CTA is
// 4 warps (THREADS), each owning 16 rows of the tile's products.
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

constexpr int THREADS = 128;                  // 4 warps per CTA in every kernel

static __device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

static __device__ __forceinline__ float warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
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

// p[0], p[1] (bf16 pair, 4-byte aligned) += x0, x1: the one read-modify-write of a dqkv element pair.
static __device__ __forceinline__ void add_pair(bf16* p, float x0, float x1) {
    __nv_bfloat162* p2 = reinterpret_cast<__nv_bfloat162*>(p);
    const float2 old = __bfloat1622float2(*p2);
    *p2 = __floats2bfloat162_rn(old.x + x0, old.y + x1);
}
#endif   // ATTNLAB_BF16

}   // namespace flash
