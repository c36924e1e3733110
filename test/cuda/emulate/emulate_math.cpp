// The CPU emulation's device math (declared in cuda_runtime.h here): each function returns the exact
// value (computed in double) moved by a deviation within the maximum error the CUDA C++ Programming
// Guide documents for it (appendix "Mathematical Functions": the tables of single-precision standard
// functions and of single-precision intrinsic functions), so that a test passing here passes with
// any result the hardware is documented to give, not only with glibc's (nearly correctly rounded)
// ones. The deviation is a function of the arguments and EMU_MATH_SEED only (a kernel stays
// bitwise deterministic), of one sign per function and seed, and spread over [0, bound]: errors of
// one sign add up in a sum, the worst case for a test's bound. A result that is a float exactly
// (exp(0) = 1, log(1) = 0, exp2(-1) = 0.5) stays exact. EMU_MATH_SEED=0: exact results throughout.
//
// The intrinsics follow the hardware's construction where it is documented: __expf(x) is
// ex2.approx(x * log2(e)) with the product rounded to float (that rounding is why its bound grows
// with |x|), __exp10f likewise, __powf(x, y) is ex2.approx(y * lg2.approx(x)); ex2.approx within 2
// ulp; results in the subnormal range are flushed to sign-preserving zero; __fdividef(x, y) returns
// 0 (NaN for an infinite x) for 2^126 < |y| < 2^128. __expf and __exp10f are then held within their
// documented bounds of the exact value.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cuda_runtime.h"

namespace emu {
namespace {

enum Function {
    EX2_APPROX, FAST_LOG, FAST_LOG2, FAST_LOG10, FAST_SIN, FAST_COS, FAST_DIVIDE, RSQRT, EXP, EXP2, EXP10, LOG,
    LOG2, LOG10, SIN, COS, TANH, POW, NORMCDF
};

uint64_t seed() {
    static const uint64_t s = [] {
        const char* e = getenv("EMU_MATH_SEED");
        return e ? strtoull(e, nullptr, 10) : 1ull;
    }();
    return s;
}

uint64_t mix(uint64_t x) {   // splitmix64's finalizer
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

// The signed deviation, as a fraction of the bound, for function fn at arguments (a, b).
double deviation(Function fn, float a, float b) {
    const uint64_t s = mix(seed() * 0x2545F4914F6CDD1Dull + (uint64_t)fn);
    const double side = (s & 1) ? 1.0 : -1.0;
    const uint64_t h = mix(s ^ ((uint64_t)bits(a) << 32 | bits(b)));
    return side * (double)(h >> 11) * 0x1p-53;
}

// One unit in the last place of the float grid at |v|.
double ulp(double v) {
    v = std::fabs(v);
    if (v < 0x1p-126) return 0x1p-149;
    int e;
    std::frexp(v, &e);   // v = m 2^e, m in [0.5, 1)
    return std::ldexp(1.0, e - 24);
}

// A float within max_error of exact. Exact is returned as is where it is a float itself (exp(0),
// log(1), exp2 of an integer: the hardware's approximations are exact there too), and with seed 0.
float deviate(double exact, double max_error, Function fn, float a, float b = 0.0f) {
    if (!std::isfinite(exact) || (double)(float)exact == exact || seed() == 0) return (float)exact;
    float r = (float)(exact + deviation(fn, a, b) * max_error);
    // (float) rounds to nearest, which may step past the bound: then one step back toward exact
    if (std::fabs((double)r - exact) > max_error) r = std::nextafter(r, (float)exact);
    if ((r < 0.0f) != (exact < 0.0)) r = std::copysign(0.0f, (float)exact);
    return r;
}

// Within `ulps` of exact: r itself, or the float nearest to exact's bound on r's side.
float hold_within(float r, double exact, double ulps) {
    if (!std::isfinite(exact) || !std::isfinite(r) || r == 0.0f) return r;
    const double bound = ulps * ulp(exact);
    if (std::fabs((double)r - exact) <= bound) return r;
    float held = (float)(r > exact ? exact + bound : exact - bound);
    if (std::fabs((double)held - exact) > bound) held = std::nextafter(held, (float)exact);
    return held;
}

const double TWO_POW_MINUS_21_41 = std::exp2(-21.41);   // __logf's, __sinf's absolute error

// Subnormals flushed to sign-preserving zero (the .ftz of the approximate instructions).
float ftz(float v) { return std::fabs(v) < 0x1p-126f ? std::copysign(0.0f, v) : v; }

// ex2.approx.ftz.f32: 2^y within 2 ulp, subnormal inputs and results flushed.
float ex2_approx(float y) {
    y = ftz(y);
    if (std::isnan(y)) return y;
    const double exact = std::exp2((double)y);
    return ftz(deviate(exact, 2.0 * ulp(exact), EX2_APPROX, y));
}

// A logarithm intrinsic: absolute error `absolute` for x in [0.5, 2], else `ulps` ulp.
float fast_logarithm(double exact, float x, double absolute, double ulps, Function fn) {
    const double bound = x >= 0.5f && x <= 2.0f ? absolute : ulps * ulp(exact);
    return deviate(exact, bound, fn, x);
}

}   // namespace

float fast_exp(float x) {
    x = ftz(x);
    return hold_within(ex2_approx(x * 1.44269504f), std::exp((double)x), 2.0 + std::floor(1.16 * std::fabs(x)));
}
float fast_exp10(float x) {
    x = ftz(x);
    return hold_within(ex2_approx(x * 3.32192809f), std::pow(10.0, (double)x), 2.0 + std::floor(2.95 * std::fabs(x)));
}
float fast_log(float x) { return fast_logarithm(std::log((double)ftz(x)), ftz(x), TWO_POW_MINUS_21_41, 3.0, FAST_LOG); }
float fast_log2(float x) { return fast_logarithm(std::log2((double)ftz(x)), ftz(x), 0x1p-22, 2.0, FAST_LOG2); }
float fast_log10(float x) { return fast_logarithm(std::log10((double)ftz(x)), ftz(x), 0x1p-24, 3.0, FAST_LOG10); }
float fast_sin(float x) { return ftz(deviate(std::sin((double)ftz(x)), TWO_POW_MINUS_21_41, FAST_SIN, x)); }
float fast_cos(float x) { return ftz(deviate(std::cos((double)ftz(x)), TWO_POW_MINUS_21_41, FAST_COS, x)); }
float fast_pow(float x, float y) { return ex2_approx(y * fast_log2(x)); }
float fast_divide(float x, float y) {
    const float ay = std::fabs(y);
    if (ay > 0x1p126f && ay < INFINITY)
        return std::isinf(x) ? NAN : std::copysign(0.0f, x) * std::copysign(1.0f, y);
    const double exact = (double)x / (double)y;
    return deviate(exact, 2.0 * ulp(exact), FAST_DIVIDE, x, y);
}

float device_rsqrtf(float x) {
    const double exact = 1.0 / std::sqrt((double)x);
    return deviate(exact, 2.0 * ulp(exact), RSQRT, x);
}
float device_expf(float x) {
    const double exact = std::exp((double)x);
    return deviate(exact, 2.0 * ulp(exact), EXP, x);
}
float device_exp2f(float x) {
    const double exact = std::exp2((double)x);
    return deviate(exact, 2.0 * ulp(exact), EXP2, x);
}
float device_exp10f(float x) {
    const double exact = std::pow(10.0, (double)x);
    return deviate(exact, 2.0 * ulp(exact), EXP10, x);
}
float device_logf(float x) {
    const double exact = std::log((double)x);
    return deviate(exact, 1.0 * ulp(exact), LOG, x);
}
float device_log2f(float x) {
    const double exact = std::log2((double)x);
    return deviate(exact, 1.0 * ulp(exact), LOG2, x);
}
float device_log10f(float x) {
    const double exact = std::log10((double)x);
    return deviate(exact, 2.0 * ulp(exact), LOG10, x);
}
float device_sinf(float x) {
    const double exact = std::sin((double)x);
    return deviate(exact, 2.0 * ulp(exact), SIN, x);
}
float device_cosf(float x) {
    const double exact = std::cos((double)x);
    return deviate(exact, 2.0 * ulp(exact), COS, x);
}
float device_tanhf(float x) {
    const double exact = std::tanh((double)x);
    return deviate(exact, 2.0 * ulp(exact), TANH, x);
}
float device_powf(float x, float y) {
    const double exact = std::pow((double)x, (double)y);
    return deviate(exact, 4.0 * ulp(exact), POW, x, y);
}
float device_normcdff(float x) {
    const double exact = 0.5 * std::erfc(-(double)x / std::sqrt(2.0));
    return deviate(exact, 5.0 * ulp(exact), NORMCDF, x);
}

}   // namespace emu
