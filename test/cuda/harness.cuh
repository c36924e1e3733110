// test_cuda's harness: every CUDA kernel against its CPU twin on random inputs (never zeros),
// output buffers poisoned with NaN before each call, bounds by precision. Each test file defines
// int test_<group>(void) returning its number of failures; test_cuda.cu runs them all.
#pragma once
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/cuda_common.cuh"
#include "common/rng.h"

// Relative error bounds (max |got - ref| / max |ref|), stated by the issue: the fp32 build is tight,
// the bf16 build loose. NaN never passes.
#ifdef ATTNLAB_BF16
#define TOL_ELEMENTWISE 1e-2
#define TOL_REDUCTION 1e-2
#else
#define TOL_ELEMENTWISE 1e-5
#define TOL_REDUCTION 1e-4
#endif
// fp32 arithmetic on the same inputs on both sides (AdamW's moments and master weights): tight in
// both builds.
#define TOL_FP32_MATH 1e-5

// The device buffers of one test case, freed when it ends.
struct DeviceBuffers {
    std::vector<void*> ptrs;
    template <typename T> T* operator()(T* p) {
        ptrs.push_back(p);
        return p;
    }
    ~DeviceBuffers() {
        for (void* p : ptrs) cuda_check(cudaFree(p));
    }
};

// A check's name, printf-style.
__attribute__((format(printf, 1, 2))) static inline std::string fmt(const char* format, ...) {
    char buf[256];
    va_list args;
    va_start(args, format);
    vsnprintf(buf, sizeof(buf), format, args);
    va_end(args);
    return buf;
}

// Host random floats N(0, scale^2) from a fixed seed (common/rng.h, the product's RNG); never all zeros.
static inline std::vector<float> host_random(size_t n, float scale, uint64_t seed) {
    std::vector<float> x(n);
    Rng rng;
    rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) x[i] = scale * rng_normal(&rng);
    return x;
}

// The host values as the device holds them (rounded to bf16 in the bf16 build), so the CPU twin
// sees exactly the device's inputs.
static inline void round_to_floatx(std::vector<float>& x) {
    for (float& v : x) v = float_from_floatx(floatx_from_float(v));
}

// Exactly n elements (at least one), so that a write one element past the end leaves the
// allocation (the CPU emulation's allocations end at an unmapped page).
template <typename T> static T* device_alloc(size_t n) {
    T* p = nullptr;
    cuda_check(cudaMalloc(&p, (n > 0 ? n : 1) * sizeof(T)));
    return p;
}

// floatX device copy of host floats.
static inline floatX* to_device(const std::vector<float>& x) {
    std::vector<floatX> xs(x.size());
    for (size_t i = 0; i < x.size(); i++) xs[i] = floatx_from_float(x[i]);
    floatX* d = device_alloc<floatX>(x.size());
    cuda_check(cudaMemcpy(d, xs.data(), xs.size() * sizeof(floatX), cudaMemcpyHostToDevice));
    return d;
}

static inline float* to_device_float(const std::vector<float>& x) {
    float* d = device_alloc<float>(x.size());
    cuda_check(cudaMemcpy(d, x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice));
    return d;
}

static inline int* to_device_int(const std::vector<int>& x) {
    int* d = device_alloc<int>(x.size());
    cuda_check(cudaMemcpy(d, x.data(), x.size() * sizeof(int), cudaMemcpyHostToDevice));
    return d;
}

static inline std::vector<float> from_device(const floatX* d, size_t n) {
    std::vector<floatX> xs(n);
    cuda_check(cudaMemcpy(xs.data(), d, n * sizeof(floatX), cudaMemcpyDeviceToHost));
    std::vector<float> x(n);
    for (size_t i = 0; i < n; i++) x[i] = float_from_floatx(xs[i]);
    return x;
}

static inline std::vector<float> from_device_float(const float* d, size_t n) {
    std::vector<float> x(n);
    cuda_check(cudaMemcpy(x.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost));
    return x;
}

// Fills a device buffer with NaN (all bits set is a NaN in fp32 and in bf16).
static inline void poison(void* d, size_t bytes) { cuda_check(cudaMemset(d, 0xFF, bytes)); }

// max |got - ref| / max |ref|; infinity if got holds a NaN or an infinity.
static inline double rel_err(const std::vector<float>& got, const std::vector<float>& ref) {
    double num = 0.0, den = 1e-30;
    for (size_t i = 0; i < ref.size(); i++) {
        if (!std::isfinite(got[i])) return INFINITY;
        num = fmax(num, fabs((double)got[i] - ref[i]));
        den = fmax(den, fabs((double)ref[i]));
    }
    return num / den;
}

// How many checks have run (all test files together; test/cuda/main.cu defines it).
int& checks_counter();
static inline int checks_run() { return checks_counter(); }

// Prints one line per check; returns 1 on failure.
static inline int check(const char* what, double err, double bound) {
    checks_counter()++;
    int bad = !(err <= bound);
    printf("%s %-60s rel err %.2e (bound %.0e)\n", bad ? "FAIL" : "ok  ", what, err, bound);
    return bad;
}
