// GELU with the tanh approximation (Hendrycks & Gimpel 2016), the GPT-2 MLP nonlinearity, as
// torch.nn.functional.gelu(x, approximate='tanh'): gelu(x) = 0.5 x (1 + tanh(u)),
// u = sqrt(2/pi) (x + 0.044715 x^3), with a vectorizable tanh: libm's tanhf does not vectorize and
// costs ~20 ns a call. With exact = 1 the erf form (gelu=erf), as torch.nn.functional.gelu(x):
// gelu(x) = x Phi(x) with Phi the standard normal CDF, from the vectorizable normal_cdf_gauss of
// common/fastmath.h (one exp per element, forward and backward).
#include <stdint.h>

#include "common/fastmath.h"
#include "layers/gelu.h"

#define GELU_SCALE 0.7978845608028654f   // sqrt(2/pi)
#define GELU_CUBE 0.044715f
#define TANH_CLAMP 7.90531110763549805f  // tanh(u) rounds to +-1 in float beyond it

// tanh(u) as the odd/even rational function p(u) / q(u) of degree 13/6 on |u| <= TANH_CLAMP (the
// minimax fit of Eigen's fast tanh): within 3.4e-7 of tanh (6 ulp), branch-free, one division. Not
// x * sigmoid(2u) through fast_exp: GCC splits off the lanes where exp hits its clamp and divides x
// by the clamp's value there too, whose denormal quotients cost a microcode assist on every vector
// (3x slower than this on AVX2).
static inline float tanh_rational(float u) {
    u = u < -TANH_CLAMP ? -TANH_CLAMP : u;
    u = u > TANH_CLAMP ? TANH_CLAMP : u;
    float u2 = u * u;
    float p = -2.76076847742355e-16f;
    p = p * u2 + 2.00018790482477e-13f;
    p = p * u2 - 8.60467152213735e-11f;
    p = p * u2 + 5.12229709037114e-08f;
    p = p * u2 + 1.48572235717979e-05f;
    p = p * u2 + 6.37261928875436e-04f;
    p = p * u2 + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * u2 + 1.18534705686654e-04f;
    q = q * u2 + 2.26843463243900e-03f;
    q = q * u2 + 4.89352518554385e-03f;
    return u * p / q;
}

#define INV_SQRT_2PI 0.3989422804014327f   // 1/sqrt(2 pi)

// The exact GELU x Phi(x).
static void gelu_erf_forward(float* out, const float* inp, int N) {
    #pragma omp parallel for simd
    for (int i = 0; i < N; i++) out[i] = inp[i] * normal_cdf(inp[i]);
}

// dinp (N) += (Phi(x) + x phi(x)) * dout, phi(x) = exp(-x^2 / 2) / sqrt(2 pi): the exp that Phi's
// tail is built from, so one exp per element.
static void gelu_erf_backward(float* dinp, const float* inp, const float* dout, int N) {
    #pragma omp parallel for simd
    for (int i = 0; i < N; i++) {
        float x = inp[i], gauss, cdf = normal_cdf_gauss(x, &gauss);
        dinp[i] += (cdf + x * INV_SQRT_2PI * gauss) * dout[i];
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
        float t = tanh_rational(GELU_SCALE * (x + GELU_CUBE * x * x * x));
        out[i] = 0.5f * x * (1.0f + t);
    }
}

// dinp (N) += gelu'(inp) * dout, gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t) (1 + t) u'(x) with t = tanh(u),
// u'(x) = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
void gelu_backward(float* dinp, const float* inp, const float* dout, int N, int exact) {
    if (exact) {
        gelu_erf_backward(dinp, inp, dout, N);
        return;
    }
    #pragma omp parallel for simd
    for (int i = 0; i < N; i++) {
        float x = inp[i];
        float t = tanh_rational(GELU_SCALE * (x + GELU_CUBE * x * x * x));
        float du = GELU_SCALE * (1.0f + 3.0f * GELU_CUBE * x * x);
        float half_1pt = 0.5f * (1.0f + t);
        dinp[i] += (half_1pt + x * half_1pt * (1.0f - t) * du) * dout[i];
    }
}
