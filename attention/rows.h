// Moving one head's rows between the (N, 3C) / (N, C) tensors, where they lie `stride` floats
// apart, and the CPU kernels' contiguous scratch (rows ld floats apart, zero past column hs).
// A helper inside softmax_sigmoid.c and mlstm.c (static inline C, no kernel of its own and no CUDA
// twin), so not a kernel pair's header.
#pragma once
#include <stddef.h>

// dst (n, ld) = src (n rows `stride` floats apart, hs columns), zero-padded to ld >= hs columns.
static inline void copy_rows(float* restrict dst, int ld, const float* restrict src, int n, size_t stride, int hs) {
    for (int j = 0; j < n; j++)
        for (int c = 0; c < ld; c++) dst[(size_t)j * ld + c] = c < hs ? src[j * stride + c] : 0.0f;
}

// dst (n rows `stride` floats apart, hs columns) += src (n, ld) [:, :hs].
static inline void add_rows(float* restrict dst, size_t stride, const float* restrict src, int ld, int n, int hs) {
    for (int j = 0; j < n; j++)
        for (int c = 0; c < hs; c++) dst[j * stride + c] += src[(size_t)j * ld + c];
}
