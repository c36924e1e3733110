// The per-head LayerNorm after the mLSTM cell (xLSTM's MultiHeadLayerNorm; docs/MODEL.md 11) on the
// GPU, the twin of layers/headnorm.c: each head's hs features of a row normalised (biased variance,
// eps from the caller), times a per-channel weight, no bias; mean and rstd saved per (row, head).
// One warp per (row, head) (layers/layernorm_group.cuh); dweight is a deterministic column sum over
// the rows (common/reduce.cuh), where the CPU sums per-thread partials.
#include "layers/headnorm.h"
#include "layers/layernorm_group.cuh"

namespace {

// dweight (C) += sum over rows of norm * dout, channel c of head c / hs.
struct HeadnormWeightGrad {
    floatD* dweight;
    const floatD *dout, *inp;
    const float *mean, *rstd;
    NormGroups g;
    __device__ float value(long row, int col) const {
        return group_norm_grads(dout, inp, mean, rstd, g, row, col / g.hs, col % g.hs).dweight;
    }
    __device__ void add(int col, float sum) const { dweight[col] = from_float(to_float(dweight[col]) + sum); }
};

NormGroups headnorm_groups(int N, int NH, int hs) { return {N, NH, hs, (long)NH * hs, NH, hs}; }

}  // namespace

void headnorm_forward_cuda(floatX* out, float* mean, float* rstd, const floatX* inp, const floatX* weight, int N,
                           int NH, int hs, float eps) {
    if ((long)N * NH == 0) return;
    NormGroups g = headnorm_groups(N, NH, hs);
    group_norm_forward_kernel<<<group_norm_blocks(g), GROUP_NORM_THREADS>>>(as_device(out), mean, rstd, as_device(inp),
                                                                           as_device(weight), nullptr, g, eps);
    cuda_check_launch();
}

void headnorm_backward_cuda(floatX* dinp, floatX* dweight, const floatX* dout, const floatX* inp, const floatX* weight,
                            const float* mean, const float* rstd, int N, int NH, int hs) {
    if ((long)N * NH == 0) return;
    NormGroups g = headnorm_groups(N, NH, hs);
    group_norm_backward_dinp_kernel<<<group_norm_blocks(g), GROUP_NORM_THREADS>>>(
        as_device(dinp), as_device(dout), as_device(inp), as_device(weight), mean, rstd, g);
    cuda_check_launch();
    HeadnormWeightGrad term = {as_device(dweight), as_device(dout), as_device(inp), mean, rstd, g};
    column_sum_add(term, N, NH * hs);
}
