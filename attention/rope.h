// Rotary position embedding on the q and k parts of qkv rows (attention/rope.c; docs/MODEL.md
// section 8): CPU fp32 kernels, OpenMP. qkv rows hold [q | k | v] (3C floats), heads of size hs = C/NH
// side by side. The backward ACCUMULATES (+=).
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// RoPE (base 10000, rotate-half / NeoX pairs (j, j + hs/2)) on the q and k parts of qkv rows;
// inp/out (B,T,3C), row t at position pos0 + t; v copied through; out may alias inp. hs must be even.
void rope_forward(float* out, const float* inp, int B, int T, int C, int NH, int pos0);
// dinp (B,T,3C) += R^T dout on the q and k parts, += dout on v. dinp may not alias dout.
void rope_backward(float* dinp, const float* dout, int B, int T, int C, int NH, int pos0);
// The head size C / NH; fails with one line naming fn unless it is whole and even (shared with rope.cu).
int rope_head_size(const char* fn, int C, int NH);

#ifdef __cplusplus
}
#endif
