// The scalar helpers every kernel shares, C and CUDA: exp, sigmoid and the normal CDF. On the CPU a vectorizable
// exp (libm's expf and tanhf do not vectorize and cost ~20 ns a call, which would dominate softmax,
// sigmoid, GELU and cross-entropy); in device code the hardware's fast exp and divide, and the CUDA
// math library's normcdff (the CPU emulation of CUDA defines __CUDA_ARCH__ and emulates those
// functions within their documented errors, test/cuda/emulate/emulate_math.cpp).
#pragma once
#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define FASTMATH_DEVICE __host__ __device__
#else
#define FASTMATH_DEVICE
#endif

// exp(x) for x in [-87, 88], to about 1 ulp (cephes expf: Cody-Waite reduction, degree-6
// polynomial): fast_exp without its clamps. No comparison, so loops over it vectorize also where the
// compiler keeps a float comparison as a branch (GCC 12 with its default -ftrapping-math does).
static inline FASTMATH_DEVICE float exp_in_range(float x) {
#ifdef __CUDA_ARCH__
    return __expf(x);
#else
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

// exp(x) to about 1 ulp, clamped to [-87, 88] (exp(-87) = 1.6e-38, exp(88) = 1.7e38); a NaN stays
// NaN. Plain arithmetic, so loops over it vectorize.
static inline FASTMATH_DEVICE float fast_exp(float x) {
#ifdef __CUDA_ARCH__
    return __expf(x);   // at most 2 + floor(1.16 |x|) ulp (CUDA math docs); very negative x gives 0
#else
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    return exp_in_range(x);
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

// The bits of a float, and back; and a if mask is all ones, b if it is 0: selections by integer
// operations, which vectorize where float comparisons would stay branches (see exp_in_range).
static inline FASTMATH_DEVICE uint32_t float_bits(float x) {
    union { float f; uint32_t u; } v = {.f = x};
    return v.u;
}
static inline FASTMATH_DEVICE float bits_float(uint32_t u) {
    union { uint32_t u; float f; } v = {.u = u};
    return v.f;
}
static inline FASTMATH_DEVICE float select_bits(uint32_t mask, float a, float b) {
    return bits_float((float_bits(a) & mask) | (float_bits(b) & ~mask));
}

// exp(-|x|) with |x| capped at 87 (exp(-87) = 1.6e-38; a NaN gives that too) by an integer min of
// its bits: fast_exp(-|x|) for loops that must vectorize.
static inline FASTMATH_DEVICE float exp_minus_abs(float x) {
    uint32_t abs_bits = float_bits(x) & 0x7fffffffu, cap = 0x42ae0000u;   // 87.0f
    return exp_in_range(-bits_float(abs_bits < cap ? abs_bits : cap));
}

// exp(-x^2 / 2) to about 2 ulp for every x: x^2 as its rounded value plus the rounding error (an fma),
// so the error of x^2 (which grows with |x|) does not reach the exponent. |x| is capped at 13
// (exp(-84.5) = 2e-37 for anything beyond) by an integer min of its bits; a NaN gives 2e-37.
static inline FASTMATH_DEVICE float exp_minus_half_square(float x) {
    uint32_t abs_bits = float_bits(x) & 0x7fffffffu, cap = 0x41500000u;   // 13.0f
    float a = bits_float(abs_bits < cap ? abs_bits : cap);
    float square = a * a, error = fmaf(a, a, -square);
    return exp_in_range(-0.5f * square) * (1.0f - 0.5f * error);
}

// The standard normal CDF Phi(x) = 0.5 erfc(-x / sqrt 2), for the exact GELU x Phi(x), and in
// *gauss exp(-x^2 / 2), which its derivative Phi(x) + x phi(x) needs too: Phi's tail is built from
// it, so the pair costs one exp. On the CPU, with z = |x| / sqrt 2 and t = 1 / (1 + z/2):
// Phi(-|x|) = 0.5 erfc(z) = t R(t) exp(-x^2 / 2), R a polynomial of degree 8 in t (0.5 erfc(z) e^{z^2}
// / t is smooth in t; a Lawson-weighted least-squares fit over the t of |x| <= 13, [0.18, 1],
// relative error 7e-8), taken as is for x < 0 and subtracted from 1 for x >= 0: both tails keep
// their relative precision, and one form covers every x (no second form near 0 to select from).
// Branch-free, so loops over it vectorize. Measured in fp32 against double erfc over [-13, 13] in
// steps of 1e-5: at most 4.6e-7 relative for x < 0, 3.6e-7 for x >= 0 (below x = -13, where
// Phi < 1e-38, it gives about 1e-38 or less: the cap of exp_minus_half_square). In device code the
// CUDA math library's normcdff (at most 5 ulp).
static inline FASTMATH_DEVICE float normal_cdf_gauss(float x, float* gauss) {
#ifdef __CUDA_ARCH__
    *gauss = exp_minus_half_square(x);
    return normcdff(x);
#else
    float t = 1.0f / (1.0f + bits_float(float_bits(x) & 0x7fffffffu) * 0.35355339059327376f);   // z/2
    float r = -2.887835376e-02f;
    r = r * t + 1.391445455e-01f;
    r = r * t - 2.372242917e-01f;
    r = r * t + 1.319044226e-01f;
    r = r * t - 8.524719845e-03f;
    r = r * t + 9.937332328e-02f;
    r = r * t + 1.220349483e-01f;
    r = r * t + 1.411233509e-01f;
    r = r * t + 1.410467569e-01f;
    float e = exp_minus_half_square(x);
    *gauss = e;
    float tail = t * r * e;   // Phi(-|x|)
    return select_bits(0u - (float_bits(x) >> 31), tail, 1.0f - tail);
#endif
}

// Phi(x) alone.
static inline FASTMATH_DEVICE float normal_cdf(float x) {
    float gauss;
    return normal_cdf_gauss(x, &gauss);
}
