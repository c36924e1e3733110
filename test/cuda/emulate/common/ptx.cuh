// The CPU emulation of common/ptx.cuh (found first on test_cuda_emu's include path): the same
// functions, written from the PTX ISA's definitions instead of inline assembly.
//   mma.m16n8k16 (row.col, bf16 -> f32): the fragment layouts of "Matrix Fragments for mma.m16n8k16";
//     products and sums in fp32, like the hardware up to summation order.
//   ldmatrix .x4 (.trans): lanes 8i..8i+7 give the row addresses of matrix i (16-byte aligned, in
//     shared memory); lane 4g+t receives row g, columns 2t, 2t+1 of each matrix (.trans: rows 2t, 2t+1
//     of column g).
//   cp.async: the copy happens at the cp.async.wait_group that retires its group (emulate.cpp), so
//     reading a tile before waiting sees stale bytes; src-size 0 fills zeros.
#pragma once
#include <cstdint>
#include <cstring>

#include "common/cuda_common.cuh"
#include "emulate.h"

template <typename T> T* dynamic_smem() { return reinterpret_cast<T*>(emu::dynamic_smem()); }

static inline void mma_bf16(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    const uint32_t mine[6] = {a[0], a[1], a[2], a[3], b0, b1};
    const unsigned char(*slots)[32] = emu::warp_put(mine, sizeof(mine));
    auto lo = [](uint32_t u) { return (float)emu_bf16_from_bits(u & 0xffff); };
    auto hi = [](uint32_t u) { return (float)emu_bf16_from_bits(u >> 16); };
    float A[16][16], B[16][8];
    for (int lane = 0; lane < 32; lane++) {
        const int g = lane / 4, t = lane % 4;
        uint32_t r[6];
        memcpy(r, slots[lane], sizeof(r));
        A[g][2 * t] = lo(r[0]), A[g][2 * t + 1] = hi(r[0]);
        A[g + 8][2 * t] = lo(r[1]), A[g + 8][2 * t + 1] = hi(r[1]);
        A[g][2 * t + 8] = lo(r[2]), A[g][2 * t + 9] = hi(r[2]);
        A[g + 8][2 * t + 8] = lo(r[3]), A[g + 8][2 * t + 9] = hi(r[3]);
        B[2 * t][g] = lo(r[4]), B[2 * t + 1][g] = hi(r[4]);
        B[2 * t + 8][g] = lo(r[5]), B[2 * t + 9][g] = hi(r[5]);
    }
    const int g = emu::lane() / 4, t = emu::lane() % 4;
    const int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    for (int e = 0; e < 4; e++) {
        float sum = d[e];
        for (int k = 0; k < 16; k++) sum += A[rows[e]][k] * B[k][cols[e]];
        d[e] = sum;
    }
    emu::warp_done();
}

static inline void ldmatrix(uint32_t r[4], const __nv_bfloat16* smem, bool trans) {
    emu::check_shared(smem, 16, 16, "ldmatrix row address");
    const unsigned char(*slots)[32] = emu::warp_put(&smem, sizeof(smem));
    const __nv_bfloat16* rows[32];
    for (int lane = 0; lane < 32; lane++) memcpy(&rows[lane], slots[lane], sizeof(rows[lane]));
    emu::warp_done();
    const int g = emu::lane() / 4, t = emu::lane() % 4;
    for (int i = 0; i < 4; i++) {
        uint16_t e0, e1;
        if (!trans) {
            memcpy(&e0, rows[8 * i + g] + 2 * t, 2);
            memcpy(&e1, rows[8 * i + g] + 2 * t + 1, 2);
        } else {
            memcpy(&e0, rows[8 * i + 2 * t] + g, 2);
            memcpy(&e1, rows[8 * i + 2 * t + 1] + g, 2);
        }
        r[i] = (uint32_t)e0 | ((uint32_t)e1 << 16);
    }
}
static inline void ldmatrix_x4(uint32_t r[4], const __nv_bfloat16* smem) { ldmatrix(r, smem, false); }
static inline void ldmatrix_x4_trans(uint32_t r[4], const __nv_bfloat16* smem) { ldmatrix(r, smem, true); }

static inline void cp_async_16(void* smem, const void* gmem, bool valid) { emu::cp_async(smem, gmem, 16, valid); }
static inline void cp_async_4(void* smem, const void* gmem, bool valid) { emu::cp_async(smem, gmem, 4, valid); }
static inline void cp_async_commit() { emu::cp_async_commit(); }
template <int N> static inline void cp_async_wait() { emu::cp_async_wait(N); }
