// floatX: the element type of parameters, gradients and activations in kernel memory.
// The CPU build and the CUDA PRECISION=FP32 build: float. The CUDA bf16 build (ATTNLAB_BF16): bf16
// values stored as uint16_t, which the CUDA kernels read as __nv_bfloat16. Statistics (LayerNorm
// mean/rstd, attention LSE), losses, master weights and AdamW moments are always float.
#pragma once
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef ATTNLAB_BF16
typedef uint16_t floatX;
#else
typedef float floatX;
#endif

// float -> floatX (bf16: round to nearest even; NaN stays NaN) and back, on the host.
static inline floatX floatx_from_float(float f) {
#ifdef ATTNLAB_BF16
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);   // quiet NaN
    return (uint16_t)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
#else
    return f;
#endif
}

static inline float float_from_floatx(floatX x) {
#ifdef ATTNLAB_BF16
    uint32_t bits = (uint32_t)x << 16;
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
#else
    return x;
#endif
}

#ifdef __cplusplus
}
#endif
