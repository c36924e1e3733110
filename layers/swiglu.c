// SwiGLU (Shazeer 2020, "GLU Variants Improve Transformer"), the MLP activation of LLaMA: the fc
// layer computes [gate | up] in one matmul (fcw stacks W_gate over W_up), and the activation is
// silu(gate) * up, silu(g) = g sigmoid(g). Backward: dgate = dout up silu'(g), silu'(g) =
// s (1 + g (1 - s)) with s = sigmoid(g); dup = dout silu(g).
#include <stdint.h>

#include "common/fastmath.h"
#include "layers/swiglu.h"

// s = sigmoid(g) and 1 - s = sigmoid(-g), both from exp(-|g|) without a subtraction (as sigmoid_pair
// of common/fastmath.h), selected by the sign bit so the loops vectorize.
static inline void sigmoid_and_complement(float g, float* s, float* one_minus_s) {
    float e = exp_minus_abs(g), big = 1.0f / (1.0f + e), small = e * big;
    uint32_t negative = 0u - (float_bits(g) >> 31);
    *s = select_bits(negative, small, big);
    *one_minus_s = select_bits(negative, big, small);
}

// inp (N, 2*hidden) -> out (N,hidden).
void swiglu_forward(float* out, const float* inp, int N, int hidden) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float* gate = inp + (size_t)n * 2 * hidden;
        const float* up = gate + hidden;
        float* o = out + (size_t)n * hidden;
        #pragma omp simd
        for (int j = 0; j < hidden; j++) {
            float s, one_minus_s;
            sigmoid_and_complement(gate[j], &s, &one_minus_s);
            o[j] = gate[j] * s * up[j];
        }
    }
}

// dinp (N, 2*hidden) += from dout (N,hidden).
void swiglu_backward(float* dinp, const float* inp, const float* dout, int N, int hidden) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float* gate = inp + (size_t)n * 2 * hidden;
        const float* up = gate + hidden;
        const float* dy = dout + (size_t)n * hidden;
        float* dgate = dinp + (size_t)n * 2 * hidden;
        float* dup = dgate + hidden;
        #pragma omp simd
        for (int j = 0; j < hidden; j++) {
            float g = gate[j], s, one_minus_s;
            sigmoid_and_complement(g, &s, &one_minus_s);
            dgate[j] += dy[j] * up[j] * s * (1.0f + g * one_minus_s);
            dup[j] += dy[j] * g * s;
        }
    }
}
