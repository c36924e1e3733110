// LayerScale (Touvron et al. 2021; docs/MODEL.md 10) on the GPU, the twin of layers/layerscale.c: a
// learned per-channel scale on a residual branch. Elementwise in fp32, one thread per element
// (grid-stride); dscale is a deterministic column sum over the rows (common/reduce.cuh), where the
// CPU sums fixed row chunks.
#include "common/reduce.cuh"
#include "layers/layerscale.h"

#define LAYERSCALE_THREADS 256

namespace {

// out (N,C) = inp * scale (C) (out may alias inp); with ACCUMULATE, out += instead (the backward's dinp).
template <bool ACCUMULATE>
__global__ void layerscale_kernel(floatD* out, const floatD* inp, const floatD* scale, long total, int C) {
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        float y = to_float(inp[i]) * to_float(scale[i % C]);
        out[i] = from_float(ACCUMULATE ? to_float(out[i]) + y : y);
    }
}

// dscale (C) += sum over rows of dout * inp.
struct LayerscaleGrad {
    floatD* dscale;
    const floatD *dout, *inp;
    int C;
    __device__ float value(long row, int col) const {
        return to_float(dout[row * C + col]) * to_float(inp[row * C + col]);
    }
    __device__ void add(int col, float sum) const { dscale[col] = from_float(to_float(dscale[col]) + sum); }
};

}  // namespace

void layerscale_forward_cuda(floatX* out, const floatX* inp, const floatX* scale, int N, int C) {
    long total = (long)N * C;
    if (total == 0) return;
    layerscale_kernel<false><<<grid_blocks(total, LAYERSCALE_THREADS), LAYERSCALE_THREADS>>>(
        as_device(out), as_device(inp), as_device(scale), total, C);
    cuda_check_launch();
}

void layerscale_backward_cuda(floatX* dinp, floatX* dscale, const floatX* dout, const floatX* inp,
                              const floatX* scale, int N, int C) {
    long total = (long)N * C;
    if (total == 0) return;
    layerscale_kernel<true><<<grid_blocks(total, LAYERSCALE_THREADS), LAYERSCALE_THREADS>>>(
        as_device(dinp), as_device(dout), as_device(scale), total, C);
    cuda_check_launch();
    column_sum_add(LayerscaleGrad{as_device(dscale), as_device(dout), as_device(inp), C}, N, C);
}
