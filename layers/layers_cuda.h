// The CUDA kernel set for the layers: the twins of layers/layers.h, with the same arguments
// (device pointers; floatX tensors, float statistics) and the suffix _cuda. Backward kernels
// accumulate (+=) into their gradient outputs as the CPU ones do. All launch on the default stream.
#pragma once
#include <stddef.h>

#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

void encoder_forward_cuda(floatX* out, const int* inp, const floatX* wte, const floatX* wpe, int B, int T, int C);
// Deterministic: no atomics on dwte (tokens are bucketed, each row of dwte summed by one thread block).
void encoder_backward_cuda(floatX* dwte, floatX* dwpe, const floatX* dout, const int* inp, int B, int T, int C);
void layernorm_forward_cuda(floatX* out, float* mean, float* rstd, const floatX* inp, const floatX* weight,
                            const floatX* bias, int N, int C);
void layernorm_backward_cuda(floatX* dinp, floatX* dweight, floatX* dbias, const floatX* dout, const floatX* inp,
                             const floatX* weight, const float* mean, const float* rstd, int N, int C);
// cuBLASLt, the only library call: out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC).
void matmul_forward_cuda(floatX* out, const floatX* inp, const floatX* weight, const floatX* bias, int N, int C,
                         int OC);
// dinp (N,C), dweight (OC,C), dbias (OC) += from dout (N,OC); dinp or dbias may be NULL.
void matmul_backward_cuda(floatX* dinp, floatX* dweight, floatX* dbias, const floatX* dout, const floatX* inp,
                          const floatX* weight, int N, int C, int OC);
// The matmul with cuBLASLt's GELU epilogue: pre_gelu = inp @ weight^T + bias, out_gelu = gelu(pre_gelu);
// exact 1: the erf GELU (the matmul, then the GELU kernel), 0: the tanh approximation.
void matmul_gelu_forward_cuda(floatX* out_gelu, floatX* pre_gelu, const floatX* inp, const floatX* weight,
                              const floatX* bias, int N, int C, int OC, int exact);
void gelu_forward_cuda(floatX* out, const floatX* inp, int N, int exact);
void gelu_backward_cuda(floatX* dinp, const floatX* inp, const floatX* dout, int N, int exact);
// SwiGLU's activation (layers/layers.h): out (N,hidden) = silu(gate) * up of the rows [gate | up] of inp.
void swiglu_forward_cuda(floatX* out, const floatX* inp, int N, int hidden);
// dinp (N, 2 hidden) += from dout (N,hidden).
void swiglu_backward_cuda(floatX* dinp, const floatX* inp, const floatX* dout, int N, int hidden);
// RMSNorm (ln=rms; layers/layers.h): out = inp * rstd * weight, rstd (N) saved; one warp per row.
void rmsnorm_forward_cuda(floatX* out, float* rstd, const floatX* inp, const floatX* weight, int N, int C);
// dinp (N,C), dweight (C) += (dweight: deterministic column sum).
void rmsnorm_backward_cuda(floatX* dinp, floatX* dweight, const floatX* dout, const floatX* inp, const floatX* weight,
                           const float* rstd, int N, int C);
// The residual add fused with the RMSNorm after it: residual = inp1 + inp2 (may alias inp2), out = RMSNorm(residual).
void residual_rmsnorm_forward_cuda(floatX* residual, floatX* out, float* rstd, const floatX* inp1, const floatX* inp2,
                                   const floatX* weight, int N, int C);
void residual_forward_cuda(floatX* out, const floatX* inp1, const floatX* inp2, int N);
void residual_backward_cuda(floatX* dinp1, floatX* dinp2, const floatX* dout, int N);
// The residual add fused with the LayerNorm after it (one warp per row): residual = inp1 + inp2 (may
// alias inp2), out = LayerNorm(residual), mean and rstd saved.
void residual_layernorm_forward_cuda(floatX* residual, floatX* out, float* mean, float* rstd, const floatX* inp1,
                                     const floatX* inp2, const floatX* weight, const floatX* bias, int N, int C);
// Fused classifier: losses (float) and, if dlogits is not NULL, dlogits (may alias logits), in one
// pass over each row, never materializing the probabilities; fp32 math.
void crossentropy_forward_backward_cuda(float* losses, floatX* dlogits, const floatX* logits, const int* targets,
                                        float dloss, int N, int V, int Vp);
// AdamW on fp32 master weights (master), writing the rounded floatX copy to params; with master
// NULL (fp32 build) it updates params directly. m, v are float.
void adamw_update_cuda(floatX* params, float* master, float* m, float* v, const floatX* grads, size_t N, float lr,
                       float beta1, float beta2, float eps, float weight_decay, float grad_scale, int t);
// out[0] (device float) = sum of squares of values (N), deterministic (fixed-order reduction).
void global_norm_squared_cuda(float* out, const floatX* values, size_t N);
// LayerScale (layers/layerscale.h): out (N,C) = inp * scale (C); out may alias inp.
void layerscale_forward_cuda(floatX* out, const floatX* inp, const floatX* scale, int N, int C);
// dinp (N,C) += dout * scale; dscale (C) += sum over rows of dout * inp (deterministic column sum).
void layerscale_backward_cuda(floatX* dinp, floatX* dscale, const floatX* dout, const floatX* inp,
                              const floatX* scale, int N, int C);
// The mLSTM head norm (layers/headnorm.h): out (N,C) = per-head LayerNorm of inp (N,C) times weight (C),
// C = NH*hs, no bias; mean, rstd (N,NH).
void headnorm_forward_cuda(floatX* out, float* mean, float* rstd, const floatX* inp, const floatX* weight, int N,
                           int NH, int hs, float eps);
// dinp (N,C), dweight (C) += from dout (N,C) (dweight: deterministic column sum).
void headnorm_backward_cuda(floatX* dinp, floatX* dweight, const floatX* dout, const floatX* inp, const floatX* weight,
                            const float* mean, const float* rstd, int N, int NH, int hs);

#ifdef __cplusplus
}
#endif
