// LayerScale (Touvron et al. 2021; docs/MODEL.md 10): a learned per-channel scale on a residual
// branch, x + scale * branch(x). CPU fp32 kernels, OpenMP; the backward ACCUMULATES (+=).
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// out (N,C) = inp (N,C) * scale (C); out may alias inp.
void layerscale_forward(float* out, const float* inp, const float* scale, int N, int C);
// dinp (N,C) += dout * scale; dscale (C) += sum over rows of dout * inp. dinp may not alias dout.
void layerscale_backward(float* dinp, float* dscale, const float* dout, const float* inp, const float* scale,
                         int N, int C);

#ifdef __cplusplus
}
#endif
