// Sum of squares of a gradient tensor, for global-norm clipping. Accumulated in double over a
// fixed split into NORM_CHUNKS contiguous chunks whose partial sums are added in chunk order, so
// the result does not depend on the thread count (clipping, hence training, is reproducible).
#include "layers/grad_norm.h"

#define NORM_CHUNKS 64
#define NORM_PARALLEL_MIN 65536   // below this many values threads cost more than they save

// out[0] = sum of squares of values (N).
void global_norm_squared(float* out, const float* values, size_t N) {
    double partial[NORM_CHUNKS];
    size_t chunk = (N + NORM_CHUNKS - 1) / NORM_CHUNKS;
    #pragma omp parallel for if (N >= NORM_PARALLEL_MIN)
    for (int k = 0; k < NORM_CHUNKS; k++) {
        size_t lo = (size_t)k * chunk < N ? (size_t)k * chunk : N;
        size_t hi = lo + chunk < N ? lo + chunk : N;
        double sum = 0.0;
        #pragma omp simd reduction(+:sum)
        for (size_t i = lo; i < hi; i++) sum += (double)values[i] * values[i];
        partial[k] = sum;
    }
    double total = 0.0;
    for (int k = 0; k < NORM_CHUNKS; k++) total += partial[k];
    out[0] = (float)total;
}
