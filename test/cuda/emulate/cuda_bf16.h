// The CPU emulation's bf16 (see cuda_runtime.h here): storage and round-to-nearest-even conversion
// exactly as the hardware's __float2bfloat16_rn, arithmetic through float.
#pragma once
#include <cstdint>
#include <cstring>

#include "cuda_runtime.h"

static inline uint16_t emu_bf16_bits(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);   // NaN stays NaN
    return (uint16_t)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}
static inline float emu_bf16_value(uint16_t x) {
    uint32_t bits = (uint32_t)x << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

struct __nv_bfloat16 {
    uint16_t x;
    __nv_bfloat16() = default;
    __nv_bfloat16(float f) : x(emu_bf16_bits(f)) {}
    operator float() const { return emu_bf16_value(x); }
};
struct alignas(4) __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
// The bf16 whose bits are `bits`.
static inline __nv_bfloat16 emu_bf16_from_bits(uint32_t bits) {
    __nv_bfloat16 v;
    v.x = (uint16_t)bits;
    return v;
}
static inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
static inline float __bfloat162float(__nv_bfloat16 x) { return (float)x; }
static inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return {__nv_bfloat16(a), __nv_bfloat16(b)}; }
static inline float2 __bfloat1622float2(__nv_bfloat162 v) { return {(float)v.x, (float)v.y}; }
