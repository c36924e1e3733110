// Per-head QK-norm (attention/qknorm.c; docs/MODEL.md section 9): CPU fp32 kernels, OpenMP. qkv rows
// hold [q | k | v] (3C floats), heads of size hs = C/NH side by side. The backward ACCUMULATES (+=).
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// QK-norm (docs/MODEL.md 9): LayerNorm (eps 1e-5) over the hs features of each head of q and of k,
// affine weights shared across heads: qw, qb, kw, kb (hs). inp/out (N,3C), v copied through;
// saves mean, rstd (N,2,NH) ([q heads | k heads] per row). out may not alias inp.
void qknorm_forward(float* out, float* mean, float* rstd, const float* inp,
                    const float* qw, const float* qb, const float* kw, const float* kb, int N, int C, int NH);
// dinp (N,3C) (v part: += dout), dqw, dqb, dkw, dkb (hs) += from dout (N,3C).
void qknorm_backward(float* dinp, float* dqw, float* dqb, float* dkw, float* dkb, const float* dout,
                     const float* inp, const float* qw, const float* kw, const float* mean, const float* rstd,
                     int N, int C, int NH);

#ifdef __cplusplus
}
#endif
