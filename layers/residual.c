// Residual connection: the sum of two streams, and its backward that passes dout to both.
#include "layers/residual.h"

// out (N) = inp1 + inp2.
void residual_forward(float* out, const float* inp1, const float* inp2, int N) {
    #pragma omp parallel for simd
    for (int i = 0; i < N; i++) out[i] = inp1[i] + inp2[i];
}

// dinp1, dinp2 (N) += dout.
void residual_backward(float* dinp1, float* dinp2, const float* dout, int N) {
    #pragma omp parallel for simd
    for (int i = 0; i < N; i++) {
        dinp1[i] += dout[i];
        dinp2[i] += dout[i];
    }
}
