// Checked CUDA calls (see cuda_common.cuh).
#include "common/cuda_common.cuh"

extern "C" {
#include "common/check.h"
}

void cuda_check_at(cudaError_t err, const char* file, int line) {
    if (err != cudaSuccess) fail("CUDA: %s (%s:%d)", cudaGetErrorString(err), file, line);
}
