// GELU with the tanh approximation (Hendrycks & Gimpel 2016), the GPT-2 MLP nonlinearity, as
// torch.nn.functional.gelu(x, approximate='tanh'): gelu(x) = 0.5 x (1 + tanh(u)),
// u = sqrt(2/pi) (x + 0.044715 x^3). Computed as x * sigmoid(2u), since 0.5 (1 + tanh(u)) =
// sigmoid(2u), with a vectorizable exp: libm's tanhf does not vectorize and costs ~20 ns a call.
// With exact = 1 the erf form (gelu=erf), as torch.nn.functional.gelu(x): gelu(x) = x Phi(x) with
// Phi the standard normal CDF, from the vectorizable normal_cdf of common/fastmath.h.
#include <stdint.h>

#include "common/fastmath.h"
#include "layers/layers.h"

#define GELU_SCALE 0.7978845608028654f   // sqrt(2/pi)
#define GELU_CUBE 0.044715f
#define INV_SQRT_2PI 0.3989422804014327f   // 1/sqrt(2 pi)

// The exact GELU x Phi(x).
static void gelu_erf_forward(float* out, const float* inp, int N) {
    #pragma omp parallel for simd
    for (int i = 0; i < N; i++) out[i] = inp[i] * normal_cdf(inp[i]);
}

// dinp (N) += (Phi(x) + x phi(x)) * dout, phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
static void gelu_erf_backward(float* dinp, const float* inp, const float* dout, int N) {
    #pragma omp parallel for simd
    for (int i = 0; i < N; i++) {
        float x = inp[i];
        dinp[i] += (normal_cdf(x) + x * INV_SQRT_2PI * exp_minus_half_square(x)) * dout[i];
    }
}

// inp (N) -> out (N).
void gelu_forward(float* out, const float* inp, int N, int exact) {
    if (exact) {
        gelu_erf_forward(out, inp, N);
        return;
    }
    #pragma omp parallel for simd
    for (int i = 0; i < N; i++) {
        float x = inp[i];
        float e = fast_exp(-2.0f * GELU_SCALE * (x + GELU_CUBE * x * x * x));   // exp(-2u)
        out[i] = x / (1.0f + e);
    }
}

// dinp (N) += gelu'(inp) * dout, gelu'(x) = s + 2 x s (1 - s) u'(x) with s = sigmoid(2u),
// 1 - s = s exp(-2u) (no cancellation), u'(x) = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
void gelu_backward(float* dinp, const float* inp, const float* dout, int N, int exact) {
    if (exact) {
        gelu_erf_backward(dinp, inp, dout, N);
        return;
    }
    #pragma omp parallel for simd
    for (int i = 0; i < N; i++) {
        float x = inp[i];
        float e = fast_exp(-2.0f * GELU_SCALE * (x + GELU_CUBE * x * x * x));
        float s = 1.0f / (1.0f + e);
        float du = GELU_SCALE * (1.0f + 3.0f * GELU_CUBE * x * x);
        dinp[i] += (s + 2.0f * x * s * s * e * du) * dout[i];
    }
}

// The CPU runs the matmul and the GELU one after the other (the CUDA twin uses cuBLASLt's epilogue).
void matmul_gelu_forward(float* out_gelu, float* pre_gelu, const float* inp, const float* weight, const float* bias,
                         int N, int C, int OC, int exact) {
    matmul_forward(pre_gelu, inp, weight, bias, N, C, OC);
    gelu_forward(out_gelu, pre_gelu, N * OC, exact);
}
