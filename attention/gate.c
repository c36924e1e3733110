// The output gate of gated attention, position G1 (Qiu et al. 2025; docs/MODEL.md section 7):
// the SDPA output of each head is multiplied by g = sigmoid(z), z = X W_G (+ b_G) computed by the
// graph from the pre-normalised block input. Headwise: one gate per head, broadcast over its hs
// channels; elementwise: one gate per channel. Backward (docs/MODEL.md 7):
//   dO += dO' * g,   dz += g (1 - g) * dO' * O   (headwise: summed over the head's hs channels).
// g and 1 - g come from sigmoid_pair (common/fastmath.h), which keeps g (1 - g) precise for large |z|.
#include <math.h>
#include <stddef.h>

#include "attention/gate.h"
#include "common/fastmath.h"

// out (N,C) = inp (N,C) * sigmoid(gate_preact (N,G)); G = NH (headwise) or C = NH*hs.
void gate_forward(float* out, const float* inp, const float* gate_preact, int N, int NH, int hs, int headwise) {
    int C = NH * hs;
    if (headwise) {
        #pragma omp parallel for
        for (int n = 0; n < N; n++) {
            for (int h = 0; h < NH; h++) {
                float g, omg;
                sigmoid_pair(gate_preact[(size_t)n * NH + h], &g, &omg);
                const float* x = inp + (size_t)n * C + (size_t)h * hs;
                float* y = out + (size_t)n * C + (size_t)h * hs;
                #pragma omp simd
                for (int c = 0; c < hs; c++) y[c] = x[c] * g;
            }
        }
    } else {
        size_t total = (size_t)N * C;
        #pragma omp parallel for simd
        for (size_t i = 0; i < total; i++) {
            float g, omg;
            sigmoid_pair(gate_preact[i], &g, &omg);
            out[i] = inp[i] * g;
        }
    }
}

// dinp (N,C), dgate_preact (N,G) += from dout (N,C).
void gate_backward(float* dinp, float* dgate_preact, const float* dout, const float* inp, const float* gate_preact,
                   int N, int NH, int hs, int headwise) {
    int C = NH * hs;
    if (headwise) {
        #pragma omp parallel for
        for (int n = 0; n < N; n++) {
            for (int h = 0; h < NH; h++) {
                float g, omg;
                sigmoid_pair(gate_preact[(size_t)n * NH + h], &g, &omg);
                size_t off = (size_t)n * C + (size_t)h * hs;
                const float* x = inp + off;
                const float* dy = dout + off;
                float* dx = dinp + off;
                float dot = 0.0f;
                #pragma omp simd reduction(+:dot)
                for (int c = 0; c < hs; c++) {
                    dot += dy[c] * x[c];
                    dx[c] += dy[c] * g;
                }
                dgate_preact[(size_t)n * NH + h] += g * omg * dot;
            }
        }
    } else {
        size_t total = (size_t)N * C;
        #pragma omp parallel for simd
        for (size_t i = 0; i < total; i++) {
            float g, omg;
            sigmoid_pair(gate_preact[i], &g, &omg);
            dinp[i] += dout[i] * g;
            dgate_preact[i] += g * omg * dout[i] * inp[i];
        }
    }
}
