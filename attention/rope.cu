// Rotary position embedding (RoPE, Su et al. 2021; docs/MODEL.md section 8) on the GPU, the twin of
// attention/rope.c: rotate-half / GPT-NeoX pairs (j, j + hs/2) of each q and k head rotate by the
// angle pos * 10000^(-2j/hs); v is copied (forward) or its gradient added (backward, which applies
// the transposed rotation and accumulates). As on the CPU, the cos/sin table (T, 2, hs/2) is
// computed in double once per call (a first kernel, into scratch from cudaMallocAsync), so decoding
// at large positions keeps full float accuracy; float sincosf of pos * freq would lose it.
// The rotation: one thread per (row, pair) and per v element, in place when out == inp (each
// thread reads its pair before writing it).
#include <cmath>

#include "attention/rope.h"
#include "common/check.h"
#include "common/cuda_common.cuh"

#define ROPE_BASE 10000.0
#define ROPE_THREADS 256

namespace {

// cos_sin (T, 2, half): cos then sin of (pos0 + t) * ROPE_BASE^(-2j/hs), j < half = hs/2.
__global__ void rope_table_kernel(float* cos_sin, int T, int hs, int pos0) {
    int half = hs / 2;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < (long)T * half; i += (long)gridDim.x * blockDim.x) {
        int t = (int)(i / half), j = (int)(i % half);
        double angle = ((double)pos0 + t) * pow(ROPE_BASE, -2.0 * j / hs);
        cos_sin[(size_t)t * 2 * half + j] = (float)cos(angle);
        cos_sin[(size_t)t * 2 * half + half + j] = (float)sin(angle);
    }
}

// out (B,T,3C) = R(sign * angle) inp on the q and k heads, v passed through; with ACCUMULATE,
// out += instead. Per row, items 0..C-1 are the pairs (head = item / half, j = item % half) of the
// 2 NH q and k heads, items C..2C-1 the v channels.
template <bool ACCUMULATE>
__global__ void rope_rotate_kernel(floatD* out, const floatD* inp, const float* cos_sin, int B, int T, int C,
                                   int NH, float sign) {
    int half = C / NH / 2;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < (long)B * T * 2 * C;
         i += (long)gridDim.x * blockDim.x) {
        long row = i / (2 * C);
        int item = (int)(i % (2 * C));
        const floatD* x = inp + (size_t)row * 3 * C;
        floatD* y = out + (size_t)row * 3 * C;
        if (item >= C) {   // v
            int c = item + C;
            float v = to_float(x[c]);
            y[c] = from_float(ACCUMULATE ? to_float(y[c]) + v : v);
            continue;
        }
        int j = item % half, at = (item / half) * 2 * half + j;
        const float* cs = cos_sin + (size_t)(row % T) * 2 * half;
        float c = cs[j], s = sign * cs[half + j];
        float a = to_float(x[at]), b = to_float(x[at + half]);
        float r1 = a * c - b * s, r2 = b * c + a * s;
        y[at] = from_float(ACCUMULATE ? to_float(y[at]) + r1 : r1);
        y[at + half] = from_float(ACCUMULATE ? to_float(y[at + half]) + r2 : r2);
    }
}

template <bool ACCUMULATE>
void rope_rotate(floatX* out, const floatX* inp, int B, int T, int C, int NH, int pos0, float sign, const char* fn) {
    int hs = rope_head_size(fn, C, NH);
    long items = (long)B * T * 2 * C;
    if (items == 0) return;
    float* cos_sin = nullptr;
    cuda_check(cudaMallocAsync(&cos_sin, (size_t)T * hs * sizeof(float), 0));
    rope_table_kernel<<<grid_blocks((long)T * hs / 2, ROPE_THREADS), ROPE_THREADS>>>(cos_sin, T, hs, pos0);
    cuda_check_launch();
    rope_rotate_kernel<ACCUMULATE><<<grid_blocks(items, ROPE_THREADS), ROPE_THREADS>>>(
        as_device(out), as_device(inp), cos_sin, B, T, C, NH, sign);
    cuda_check_launch();
    cuda_check(cudaFreeAsync(cos_sin, 0));
}

}  // namespace

void rope_forward_cuda(floatX* out, const floatX* inp, int B, int T, int C, int NH, int pos0) {
    rope_rotate<false>(out, inp, B, T, C, NH, pos0, 1.0f, "rope_forward_cuda");
}

void rope_backward_cuda(floatX* dinp, const floatX* dout, int B, int T, int C, int NH, int pos0) {
    rope_rotate<true>(dinp, dout, B, T, C, NH, pos0, -1.0f, "rope_backward_cuda");
}
