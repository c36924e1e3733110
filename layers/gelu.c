// GELU with the tanh approximation (Hendrycks & Gimpel 2016), the GPT-2 MLP nonlinearity, as
// torch.nn.functional.gelu(x, approximate='tanh'): gelu(x) = 0.5 x (1 + tanh(u)),
// u = sqrt(2/pi) (x + 0.044715 x^3). Computed as x * sigmoid(2u), since 0.5 (1 + tanh(u)) =
// sigmoid(2u), with a vectorizable exp: libm's tanhf does not vectorize and costs ~20 ns a call.
#include <stdint.h>

#include "layers/layers.h"

#define GELU_SCALE 0.7978845608028654f   // sqrt(2/pi)
#define GELU_CUBE 0.044715f

// exp(x) to about 1 ulp, clamped to [-87, 88] (exp(-87) = 1.6e-38, exp(88) = 1.7e38), NaN stays NaN;
// plain arithmetic (cephes expf) so that loops over it vectorize. Same as in attention/softmax.c.
static inline float fast_exp(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    // x = k ln2 + r with k = round(x / ln2): adding 1.5 * 2^23 leaves k in the low mantissa bits.
    union { float f; uint32_t u; } k_bits = {.f = 1.44269504088896341f * x + 12582912.0f};
    float k = k_bits.f - 12582912.0f;
    float r = x - k * 0.693359375f + k * 2.12194440e-4f;
    float poly = 1.9875691500e-4f;
    poly = poly * r + 1.3981999507e-3f;
    poly = poly * r + 8.3334519073e-3f;
    poly = poly * r + 4.1665795894e-2f;
    poly = poly * r + 1.6666665459e-1f;
    poly = poly * r + 5.0000001201e-1f;
    union { uint32_t u; float f; } two_k = {.u = (k_bits.u - 0x4B400000u + 127u) << 23};   // 2^k
    return (poly * r * r + r + 1.0f) * two_k.f;
}

// inp (N) -> out (N).
void gelu_forward(float* out, const float* inp, int N) {
    #pragma omp parallel for simd
    for (int i = 0; i < N; i++) {
        float x = inp[i];
        float e = fast_exp(-2.0f * GELU_SCALE * (x + GELU_CUBE * x * x * x));   // exp(-2u)
        out[i] = x / (1.0f + e);
    }
}

// dinp (N) += gelu'(inp) * dout, gelu'(x) = s + 2 x s (1 - s) u'(x) with s = sigmoid(2u),
// 1 - s = s exp(-2u) (no cancellation), u'(x) = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
void gelu_backward(float* dinp, const float* inp, const float* dout, int N) {
    #pragma omp parallel for simd
    for (int i = 0; i < N; i++) {
        float x = inp[i];
        float e = fast_exp(-2.0f * GELU_SCALE * (x + GELU_CUBE * x * x * x));
        float s = 1.0f / (1.0f + e);
        float du = GELU_SCALE * (1.0f + 3.0f * GELU_CUBE * x * x);
        dinp[i] += (s + 2.0f * x * s * s * e * du) * dout[i];
    }
}
