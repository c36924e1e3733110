// Per-head LayerNorm (xLSTM MultiHeadLayerNorm; docs/MODEL.md 11): the norm after the mLSTM cell.
// CPU fp32 kernels, OpenMP; the backward ACCUMULATES (+=).
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// out (N,C) = LayerNorm over each head's hs features of inp (N,C) (biased variance, no bias) times
// weight (C), C = NH*hs; saves mean, rstd (N,NH). xLSTM-7B uses eps 1e-6.
void headnorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                      int N, int NH, int hs, float eps);
// dinp (N,C), dweight (C) += from dout (N,C).
void headnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                       const float* mean, const float* rstd, int N, int NH, int hs);

#ifdef __cplusplus
}
#endif
