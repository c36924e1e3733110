// The CPU kernel set for the layers of a GPT (fp32 reference, OpenMP).
// Convention: outputs first, inputs next, sizes last; shapes in the comment.
// Every backward ACCUMULATES (+=) into its gradient outputs, so gradient accumulation over
// micro-batches and weight tying (wte is used twice) fall out for free.
// The CUDA twins in the .cu files have the same arguments and the suffix _cuda.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// out (B,T,C) = wte[inp[b,t]] + wpe[t]. inp (B,T) token ids; wte (V,C); wpe (T,C), or NULL (RoPE models).
void encoder_forward(float* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C);
// dwte (V,C), dwpe (T,C) += from dout (B,T,C); dwpe may be NULL.
void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp, int B, int T, int C);

// LayerNorm over the last dim (eps 1e-5). inp (N,C) -> out (N,C); saves mean, rstd (N).
void layernorm_forward(float* out, float* mean, float* rstd,
                       const float* inp, const float* weight, const float* bias, int N, int C);
// dinp (N,C), dweight (C), dbias (C) +=.
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean, const float* rstd,
                        int N, int C);

// out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC); bias may be NULL.
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC);
// dinp (N,C), dweight (OC,C), dbias (OC) += from dout (N,OC); dinp or dbias may be NULL.
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, int N, int C, int OC);

// The matmul with its GELU epilogue: pre_gelu (N,OC) = inp @ weight^T + bias, out_gelu = gelu(pre_gelu).
void matmul_gelu_forward(float* out_gelu, float* pre_gelu, const float* inp, const float* weight, const float* bias,
                         int N, int C, int OC, int exact);

// GELU: exact 0 the tanh approximation (GPT-2's), exact 1 the erf form 0.5 x (1 + erf(x / sqrt 2)).
// inp (N) -> out (N).
void gelu_forward(float* out, const float* inp, int N, int exact);
// dinp (N) += gelu'(inp) * dout.
void gelu_backward(float* dinp, const float* inp, const float* dout, int N, int exact);

// SwiGLU's activation: inp (N, 2*hidden) holds the rows [gate | up]; out (N,hidden) = silu(gate) * up,
// silu(g) = g * sigmoid(g).
void swiglu_forward(float* out, const float* inp, int N, int hidden);
// dinp (N, 2*hidden) += the gradients of gate and up from dout (N,hidden).
void swiglu_backward(float* dinp, const float* inp, const float* dout, int N, int hidden);

// The residual add fused with the LayerNorm that follows it: residual (N,C) = inp1 + inp2 (residual may
// alias inp2), out (N,C) = LayerNorm(residual) with mean, rstd (N) saved.
void residual_layernorm_forward(float* residual, float* out, float* mean, float* rstd, const float* inp1,
                                const float* inp2, const float* weight, const float* bias, int N, int C);

// RMSNorm over the last dim (eps 1e-5), weight only: out (N,C) = inp * rstd * weight, rstd (N) =
// 1/sqrt(mean(inp^2) + eps) saved.
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C);
// dinp (N,C), dweight (C) +=.
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int N, int C);
// The residual add fused with the RMSNorm after it: residual (N,C) = inp1 + inp2 (residual may alias
// inp2), out = RMSNorm(residual), rstd saved.
void residual_rmsnorm_forward(float* residual, float* out, float* rstd, const float* inp1, const float* inp2,
                              const float* weight, int N, int C);

// out (N) = inp1 + inp2.
void residual_forward(float* out, const float* inp1, const float* inp2, int N);
// dinp1, dinp2 (N) += dout.
void residual_backward(float* dinp1, float* dinp2, const float* dout, int N);

// Fused softmax + cross-entropy over rows of logits (N,Vp); only the first V columns are real.
// losses (N) = -log softmax(logits)[target]. If dlogits is not NULL it is OVERWRITTEN with
// (softmax - onehot(target)) * dloss in the first V columns and 0 in the padding; dlogits may
// alias logits (the trainer does this to avoid a second (N,Vp) buffer). targets (N).
void crossentropy_forward_backward(float* losses, float* dlogits, const float* logits, const int* targets,
                                   float dloss, int N, int V, int Vp);

// AdamW step on one tensor (llm.c / torch.optim.AdamW semantics, decoupled weight decay):
// g = grad * grad_scale; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// param -= lr * (m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + weight_decay * param). t starts at 1.
void adamw_update(float* params, float* m, float* v, const float* grads, size_t N,
                  float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale, int t);

// out[0] = sum of squares of values (N), accumulated in double. Global-norm clipping is
// sqrt of the sum over all gradients; adamw then gets grad_scale = clip / max(norm, clip).
void global_norm_squared(float* out, const float* values, size_t N);

#ifdef __cplusplus
}
#endif
