// The output gate of gated attention G1 (attention/gate.c; docs/MODEL.md section 7): CPU fp32 kernels,
// OpenMP. The backward ACCUMULATES (+=) into its gradient outputs.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// Gated attention G1 (docs/MODEL.md 7): out (N,C) = inp (N,C) * sigmoid(gate_preact), C = NH*hs.
// gate_preact (N,G): headwise (G = NH, one scalar per head broadcast over its hs channels) or
// elementwise (G = C). out may not alias inp.
void gate_forward(float* out, const float* inp, const float* gate_preact, int N, int NH, int hs, int headwise);
// dinp (N,C), dgate_preact (N,G) += from dout (N,C) (docs/MODEL.md 7).
void gate_backward(float* dinp, float* dgate_preact, const float* dout, const float* inp, const float* gate_preact,
                   int N, int NH, int hs, int headwise);

#ifdef __cplusplus
}
#endif
