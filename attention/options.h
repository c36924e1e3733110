// Attention-side options around the token mixer (METHODS.md sections 0, 1.2, 3): the output gate
// of gated attention G1, rotary position embedding and per-head QK-norm. CPU fp32 kernels, OpenMP.
// qkv rows hold [q | k | v] (3C floats) per position, heads of size hs = C/NH side by side,
// as in attention.h. Every backward ACCUMULATES (+=) into its gradient outputs.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// Gated attention G1 (METHODS.md 3.1): out (N,C) = inp (N,C) * sigmoid(gate_preact), C = NH*hs.
// gate_preact (N,G): headwise (G = NH, one scalar per head broadcast over its hs channels) or
// elementwise (G = C). out may not alias inp.
void gate_forward(float* out, const float* inp, const float* gate_preact, int N, int NH, int hs, int headwise);
// dinp (N,C), dgate_preact (N,G) += from dout (N,C) (METHODS.md 3.3).
void gate_backward(float* dinp, float* dgate_preact, const float* dout, const float* inp, const float* gate_preact,
                   int N, int NH, int hs, int headwise);

// RoPE (base 10000, rotate-half / NeoX pairs (j, j + hs/2)) on the q and k parts of qkv rows;
// inp/out (B,T,3C), row t at position pos0 + t; v copied through; out may alias inp. hs must be even.
void rope_forward(float* out, const float* inp, int B, int T, int C, int NH, int pos0);
// dinp (B,T,3C) += R^T dout on the q and k parts, += dout on v. dinp may not alias dout.
void rope_backward(float* dinp, const float* dout, int B, int T, int C, int NH, int pos0);

// QK-norm (METHODS.md 1.2): LayerNorm (eps 1e-5) over the hs features of each head of q and of k,
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
