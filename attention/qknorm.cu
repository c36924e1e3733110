// QK-norm (docs/MODEL.md section 9) on the GPU, the twin of attention/qknorm.c: a LayerNorm (eps 1e-5,
// biased variance) over the hs features of every head of q and of k in qkv rows, one affine
// (weight, bias) of size hs for q and one for k shared by the heads; v copied through (forward) or
// its gradient added (backward). The q heads and the k heads are each one launch of the per-head
// LayerNorm (layers/layernorm_group.cuh: one warp per head of a row); mean and rstd are saved in the
// CPU's layout (N, 2, NH). dqw, dqb, dkw, dkb are deterministic column sums over the rows, each row's
// heads added in head order (common/reduce.cuh).
#include "attention/qknorm.h"
#include "layers/layernorm_group.cuh"

#define QKNORM_EPS 1e-5f
#define QKNORM_THREADS 256

namespace {

// The q heads (part 0) or the k heads (part 1) of qkv rows (N, 3C) as norm groups; statistics (N, 2, NH).
NormGroups qk_groups(int N, int C, int NH) { return {N, NH, C / NH, 3L * C, 2 * NH, 0}; }

// The v part of qkv rows (N, 3C): out = inp, or out += inp with ACCUMULATE.
template <bool ACCUMULATE>
__global__ void qknorm_v_kernel(floatD* out, const floatD* inp, int N, int C) {
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < (long)N * C; i += (long)gridDim.x * blockDim.x) {
        size_t at = (size_t)(i / C) * 3 * C + 2 * C + i % C;
        out[at] = from_float(ACCUMULATE ? to_float(out[at]) + to_float(inp[at]) : to_float(inp[at]));
    }
}

template <bool ACCUMULATE> void qknorm_v(floatX* out, const floatX* inp, int N, int C) {
    qknorm_v_kernel<ACCUMULATE><<<grid_blocks((long)N * C, QKNORM_THREADS), QKNORM_THREADS>>>(as_device(out),
                                                                                             as_device(inp), N, C);
    cuda_check_launch();
}

// Columns [dqw | dqb | dkw | dkb] (4 hs): sums over rows and, within a row, over the heads in order.
struct QknormParamGrads {
    floatD *dqw, *dqb, *dkw, *dkb;
    const floatD *dout, *inp;
    const float *mean, *rstd;
    NormGroups g;
    __device__ float value(long row, int col) const {
        int part = col / g.hs, j = col % g.hs, k = part >= 2;   // k: the k heads, one column C further
        float sum = 0.0f;
        for (int h = 0; h < g.heads; h++) {
            GroupNormGrads d = group_norm_grads(dout + k * g.heads * g.hs, inp + k * g.heads * g.hs,
                                                mean + k * g.heads, rstd + k * g.heads, g, row, h, j);
            sum += part % 2 == 0 ? d.dweight : d.dbias;
        }
        return sum;
    }
    __device__ void add(int col, float sum) const {
        int part = col / g.hs;
        floatD* d = (part == 0 ? dqw : part == 1 ? dqb : part == 2 ? dkw : dkb) + col % g.hs;
        *d = from_float(to_float(*d) + sum);
    }
};

}  // namespace

void qknorm_forward_cuda(floatX* out, float* mean, float* rstd, const floatX* inp, const floatX* qw, const floatX* qb,
                         const floatX* kw, const floatX* kb, int N, int C, int NH) {
    if ((long)N * C == 0) return;
    NormGroups g = qk_groups(N, C, NH);
    group_norm_forward_kernel<<<group_norm_blocks(g), GROUP_NORM_THREADS>>>(
        as_device(out), mean, rstd, as_device(inp), as_device(qw), as_device(qb), g, QKNORM_EPS);
    cuda_check_launch();
    group_norm_forward_kernel<<<group_norm_blocks(g), GROUP_NORM_THREADS>>>(
        as_device(out + C), mean + NH, rstd + NH, as_device(inp + C), as_device(kw), as_device(kb), g, QKNORM_EPS);
    cuda_check_launch();
    qknorm_v<false>(out, inp, N, C);
}

void qknorm_backward_cuda(floatX* dinp, floatX* dqw, floatX* dqb, floatX* dkw, floatX* dkb, const floatX* dout,
                          const floatX* inp, const floatX* qw, const floatX* kw, const float* mean, const float* rstd,
                          int N, int C, int NH) {
    if ((long)N * C == 0) return;
    NormGroups g = qk_groups(N, C, NH);
    group_norm_backward_dinp_kernel<<<group_norm_blocks(g), GROUP_NORM_THREADS>>>(
        as_device(dinp), as_device(dout), as_device(inp), as_device(qw), mean, rstd, g);
    cuda_check_launch();
    group_norm_backward_dinp_kernel<<<group_norm_blocks(g), GROUP_NORM_THREADS>>>(
        as_device(dinp + C), as_device(dout + C), as_device(inp + C), as_device(kw), mean + NH, rstd + NH, g);
    cuda_check_launch();
    qknorm_v<true>(dinp, dout, N, C);
    QknormParamGrads term = {as_device(dqw), as_device(dqb), as_device(dkw), as_device(dkb), as_device(dout),
                             as_device(inp), mean, rstd, g};
    column_sum_add(term, N, 4 * (C / NH));
}
