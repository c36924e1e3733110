// GELU with the tanh approximation (Hendrycks & Gimpel 2016), the GPT-2 MLP nonlinearity,
// exactly as torch.nn.functional.gelu(x, approximate='tanh'):
// gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
#include <math.h>

#include "layers/layers.h"

#define GELU_SCALE 0.7978845608028654f   // sqrt(2/pi)
#define GELU_CUBE 0.044715f

// inp (N) -> out (N).
void gelu_forward(float* out, const float* inp, int N) {
    #pragma omp parallel for simd
    for (int i = 0; i < N; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(GELU_SCALE * (x + GELU_CUBE * x * x * x)));
    }
}

// dinp (N) += gelu'(inp) * dout.
void gelu_backward(float* dinp, const float* inp, const float* dout, int N) {
    #pragma omp parallel for simd
    for (int i = 0; i < N; i++) {
        float x = inp[i];
        float th = tanhf(GELU_SCALE * (x + GELU_CUBE * x * x * x));
        float dth = (1.0f - th * th) * GELU_SCALE * (1.0f + 3.0f * GELU_CUBE * x * x);
        dinp[i] += (0.5f * (1.0f + th) + 0.5f * x * dth) * dout[i];
    }
}
