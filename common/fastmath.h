// A vectorizable exp for the kernels' inner loops: libm's expf and tanhf do not vectorize and
// cost ~20 ns a call, which would dominate softmax, sigmoid, GELU and cross-entropy.
#pragma once
#include <stdint.h>

// exp(x) to about 1 ulp (cephes expf: Cody-Waite reduction, degree-6 polynomial), clamped to
// [-87, 88] (exp(-87) = 1.6e-38, exp(88) = 1.7e38); a NaN stays NaN. Plain arithmetic, so loops
// over it vectorize.
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
