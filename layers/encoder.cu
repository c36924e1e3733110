// Token + position embedding on the GPU, the twin of layers/encoder.c.
// Forward: one thread per pack of channels of one (b,t) row, out = wte[token] + wpe[t].
// Backward, bitwise deterministic and without atomics. The CPU twin gives each thread a slice of
// channels and walks the positions in (b,t) order; here the positions are first sorted by token
// on the device (a bitonic sort of the unique 64-bit keys token << 32 | position, so the sorted
// order is fixed: by token, then by position). A thread block that lands on the first position of
// a token owns that token's run for one slice of channels: warp w sums positions w, w+8, ... of the
// run in order, the 8 warp sums are added in warp order and the total is added to the dwte row once.
// dwpe: one thread per (t, pack of channels) sums dout over b in order. No float atomics anywhere,
// so every run on every GPU gives the same bits. Scratch: the sort keys, cudaMallocAsync per call.
#include <cstdint>

#include "common/cuda_common.cuh"
#include "layers/encoder.h"

#define ENC_THREADS 256
#define ENC_WARPS (ENC_THREADS / 32)
#define SORT_TILE 1024    // keys sorted in shared memory by one block of SORT_TILE / 2 threads
#define WTE_BLOCKS 1024   // blocks striding over the sorted positions, per slice of channels

namespace {


typedef unsigned long long Key;   // token << 32 | position
__device__ unsigned token_of(Key k) { return (unsigned)(k >> 32); }
__device__ size_t position_of(Key k) { return (size_t)(k & 0xffffffffull); }

// out (BT,C) = wte[inp] + wpe[t]; one thread per pack of W channels.
template <int W>
__global__ void encoder_forward_kernel(floatD* out, const int* inp, const floatD* wte, const floatD* wpe, int BT,
                                       int T, int C) {
    long packs_per_row = C / W, packs = (long)BT * packs_per_row;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < packs; i += (long)gridDim.x * blockDim.x) {
        long bt = i / packs_per_row;
        int c = (int)(i % packs_per_row) * W;
        Pack<W> e = load_pack<W>(wte + (size_t)inp[bt] * C + c);
        if (wpe) {
            Pack<W> p = load_pack<W>(wpe + (size_t)(bt % T) * C + c);
#pragma unroll
            for (int k = 0; k < W; k++) e.v[k] = from_float(to_float(e.v[k]) + to_float(p.v[k]));
        }
        store_pack<W>(out + (size_t)bt * C + c, e);
    }
}

// keys (npad): token << 32 | position for the n positions, then ~0 (sorts last).
__global__ void make_keys_kernel(Key* keys, const int* inp, long n, long npad) {
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < npad; i += (long)gridDim.x * blockDim.x)
        keys[i] = i < n ? (Key)(unsigned)inp[i] << 32 | (Key)i : ~0ull;
}

// Bitonic sort: the lower element of pair t at the power-of-two distance j, and the compare-exchange
// of a[i], a[i + j] (ascending where bit k of the global index is clear, descending elsewhere).
__device__ long pair_low(long t, long j) { return (t & ~(j - 1)) << 1 | (t & (j - 1)); }
__device__ void compare_exchange(Key* a, long i, long j, bool ascending) {
    Key x = a[i], y = a[i + j];
    if ((x > y) == ascending) {
        a[i] = y;
        a[i + j] = x;
    }
}

// All steps of the merges k_first..k_last (powers of two) with distance j < SORT_TILE, on one tile.
__global__ void __launch_bounds__(SORT_TILE / 2) bitonic_tile_kernel(Key* keys, long k_first, long k_last) {
    __shared__ Key tile[SORT_TILE];
    long base = (long)blockIdx.x * SORT_TILE;
    for (int i = threadIdx.x; i < SORT_TILE; i += blockDim.x) tile[i] = keys[base + i];
    __syncthreads();
    for (long k = k_first; k <= k_last; k *= 2) {
        for (long j = k / 2 < SORT_TILE / 2 ? k / 2 : SORT_TILE / 2; j > 0; j /= 2) {
            long i = pair_low(threadIdx.x, j);
            compare_exchange(tile, i, j, ((base + i) & k) == 0);
            __syncthreads();
        }
    }
    for (int i = threadIdx.x; i < SORT_TILE; i += blockDim.x) keys[base + i] = tile[i];
}

// One step (merge k, distance j >= SORT_TILE) over all npad keys.
__global__ void bitonic_step_kernel(Key* keys, long npad, long k, long j) {
    for (long t = (long)blockIdx.x * blockDim.x + threadIdx.x; t < npad / 2; t += (long)gridDim.x * blockDim.x) {
        long i = pair_low(t, j);
        compare_exchange(keys, i, j, (i & k) == 0);
    }
}

// dwte (V,C) += sum of dout over each token's positions; keys (n) sorted. blockIdx.y picks 32 packs
// of W channels; a block owns a token when it lands on the token's first position.
template <int W>
__global__ void encoder_backward_wte_kernel(floatD* dwte, const floatD* dout, const Key* keys, long n, int C) {
    __shared__ float warp_sums[ENC_WARPS][W][32];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int c = (blockIdx.y * 32 + lane) * W;
    bool active = c < C;
    for (long i = blockIdx.x; i < n; i += gridDim.x) {   // the same i for the whole block
        unsigned token = token_of(keys[i]);
        if (i > 0 && token_of(keys[i - 1]) == token) continue;   // not the token's first position
        float acc[W] = {};
        for (long j = i + warp; active && j < n && token_of(keys[j]) == token; j += ENC_WARPS) {
            Pack<W> d = load_pack<W>(dout + position_of(keys[j]) * C + c);
#pragma unroll
            for (int k = 0; k < W; k++) acc[k] += to_float(d.v[k]);
        }
#pragma unroll
        for (int k = 0; k < W; k++) warp_sums[warp][k][lane] = acc[k];
        __syncthreads();
        if (warp == 0 && active) {
            floatD* row = dwte + (size_t)token * C + c;
            Pack<W> g = load_pack<W>(row);
#pragma unroll
            for (int k = 0; k < W; k++) {
                float sum = 0.0f;
                for (int w = 0; w < ENC_WARPS; w++) sum += warp_sums[w][k][lane];
                g.v[k] = from_float(to_float(g.v[k]) + sum);
            }
            store_pack<W>(row, g);
        }
        __syncthreads();
    }
}

// dwpe (T,C) += sum over b of dout (B,T,C), in b order; one thread per pack of W channels.
template <int W>
__global__ void encoder_backward_wpe_kernel(floatD* dwpe, const floatD* dout, int B, int T, int C) {
    long packs_per_row = C / W, packs = (long)T * packs_per_row;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < packs; i += (long)gridDim.x * blockDim.x) {
        long t = i / packs_per_row;
        int c = (int)(i % packs_per_row) * W;
        float acc[W] = {};
        for (int b = 0; b < B; b++) {
            Pack<W> d = load_pack<W>(dout + ((size_t)b * T + t) * C + c);
#pragma unroll
            for (int k = 0; k < W; k++) acc[k] += to_float(d.v[k]);
        }
        Pack<W> g = load_pack<W>(dwpe + (size_t)t * C + c);
#pragma unroll
        for (int k = 0; k < W; k++) g.v[k] = from_float(to_float(g.v[k]) + acc[k]);
        store_pack<W>(dwpe + (size_t)t * C + c, g);
    }
}

// Sorts the n = B*T (token, position) keys into keys (npad), npad a power of two >= SORT_TILE.
void sort_positions_by_token(Key* keys, const int* inp, long n, long npad) {
    make_keys_kernel<<<grid_blocks(npad, ENC_THREADS), ENC_THREADS>>>(keys, inp, n, npad);
    cuda_check_launch();
    bitonic_tile_kernel<<<npad / SORT_TILE, SORT_TILE / 2>>>(keys, 2, SORT_TILE);
    cuda_check_launch();
    for (long k = 2 * SORT_TILE; k <= npad; k *= 2) {
        for (long j = k / 2; j >= SORT_TILE; j /= 2) {
            bitonic_step_kernel<<<grid_blocks(npad / 2, ENC_THREADS), ENC_THREADS>>>(keys, npad, k, j);
            cuda_check_launch();
        }
        bitonic_tile_kernel<<<npad / SORT_TILE, SORT_TILE / 2>>>(keys, k, k);
        cuda_check_launch();
    }
}

template <int W>
void encoder_backward_packs(floatD* dwte, floatD* dwpe, const floatD* dout, const int* inp, int B, int T, int C) {
    long n = (long)B * T, npad = SORT_TILE;
    while (npad < n) npad *= 2;
    Key* keys = nullptr;
    cuda_check(cudaMallocAsync(&keys, npad * sizeof(Key), 0));
    sort_positions_by_token(keys, inp, n, npad);
    dim3 grid(n < WTE_BLOCKS ? n : WTE_BLOCKS, ceil_div(C, 32 * W));
    encoder_backward_wte_kernel<W><<<grid, ENC_THREADS>>>(dwte, dout, keys, n, C);
    cuda_check_launch();
    cuda_check(cudaFreeAsync(keys, 0));
    if (!dwpe) return;
    encoder_backward_wpe_kernel<W><<<grid_blocks((long)T * (C / W), ENC_THREADS), ENC_THREADS>>>(dwpe, dout, B, T, C);
    cuda_check_launch();
}

}  // namespace

void encoder_forward_cuda(floatX* out, const int* inp, const floatX* wte, const floatX* wpe, int B, int T, int C) {
    bool packed = C % X128 == 0 && aligned16(out) && aligned16(wte) && aligned16(wpe);   // aligned16(NULL) holds
    long rows = (long)B * T;
    if (packed)
        encoder_forward_kernel<X128><<<grid_blocks(rows * (C / X128), ENC_THREADS), ENC_THREADS>>>(
            as_device(out), inp, as_device(wte), as_device(wpe), B * T, T, C);
    else
        encoder_forward_kernel<1><<<grid_blocks(rows * C, ENC_THREADS), ENC_THREADS>>>(
            as_device(out), inp, as_device(wte), as_device(wpe), B * T, T, C);
    cuda_check_launch();
}

void encoder_backward_cuda(floatX* dwte, floatX* dwpe, const floatX* dout, const int* inp, int B, int T, int C) {
    bool packed = C % X128 == 0 && aligned16(dwte) && aligned16(dwpe) && aligned16(dout);
    if (packed)
        encoder_backward_packs<X128>(as_device(dwte), as_device(dwpe), as_device(dout), inp, B, T, C);
    else
        encoder_backward_packs<1>(as_device(dwte), as_device(dwpe), as_device(dout), inp, B, T, C);
}
