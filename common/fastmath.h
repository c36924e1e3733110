// The scalar helpers every kernel shares, C and CUDA: exp and sigmoid. On the CPU a vectorizable
// exp (libm's expf and tanhf do not vectorize and cost ~20 ns a call, which would dominate softmax,
// sigmoid, GELU and cross-entropy); in device code the hardware's fast exp and divide (the CPU
// emulation of CUDA, which does not define __CUDA_ARCH__, runs the CPU versions).
#pragma once
#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define FASTMATH_DEVICE __host__ __device__
#else
#define FASTMATH_DEVICE
#endif

// exp(x) to about 1 ulp (cephes expf: Cody-Waite reduction, degree-6 polynomial), clamped to
// [-87, 88] (exp(-87) = 1.6e-38, exp(88) = 1.7e38); a NaN stays NaN. Plain arithmetic, so loops
// over it vectorize.
static inline FASTMATH_DEVICE float fast_exp(float x) {
#ifdef __CUDA_ARCH__
    return __expf(x);   // at most 2 + floor(1.16 |x|) ulp (CUDA math docs); very negative x gives 0
#else
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
#endif
}

// sigmoid(x) = 1 / (1 + exp(-x)); very negative x gives exactly 0 (1 / inf, or exp clamped at 88).
static inline FASTMATH_DEVICE float sigmoid(float x) {
#ifdef __CUDA_ARCH__
    return __fdividef(1.0f, 1.0f + __expf(-x));
#else
    return 1.0f / (1.0f + fast_exp(-x));
#endif
}

// g = sigmoid(z) and its complement 1 - g = sigmoid(-z), both from exp(-|z|) without a subtraction,
// so g (1 - g) keeps full relative precision for large |z| where 1 - g would cancel.
static inline FASTMATH_DEVICE void sigmoid_pair(float z, float* g, float* one_minus_g) {
    float e = fast_exp(-fabsf(z));
    float big = 1.0f / (1.0f + e), small = e / (1.0f + e);
    *g = z >= 0.0f ? big : small;
    *one_minus_g = z >= 0.0f ? small : big;
}
