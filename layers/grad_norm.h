// The sum of squares of a gradient tensor, for global-norm clipping: the norm is the sqrt of the sum
// over all gradients, and AdamW (layers/adamw.h) then gets grad_scale = clip / max(norm, clip).
// grad_norm.c holds the CPU kernel (fp32 values on host memory, OpenMP), grad_norm.cu its CUDA twin:
// the same arguments with the suffix _cuda, device pointers, floatX values (common/floatx.h), out a
// device float. The twin is declared through its function type GlobalNormSquaredFn, which also types
// the kernel table's entry (model/kernels.h). Arguments: outputs first, inputs next, sizes last.
// Both OVERWRITE out[0] with a sum accumulated in double over a fixed split of the values, added in a
// fixed order: the result depends on N only, not on the thread count or the GPU.
#pragma once
#include <stddef.h>

#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

// out[0] from values (N)
void global_norm_squared(float* out, const float* values, size_t N);
typedef void GlobalNormSquaredFn(float* out, const floatX* values, size_t N);
GlobalNormSquaredFn global_norm_squared_cuda;

#ifdef __cplusplus
}
#endif
