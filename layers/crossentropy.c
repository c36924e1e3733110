// Fused softmax + cross-entropy over the vocabulary (the GPT-2 loss head), numerically stable
// (the row max is subtracted before exp). Only the first V of the Vp columns are real (Vp pads
// the vocabulary for fast matmuls); padded columns are never read and get gradient 0. dlogits may
// alias logits: an element is read before it is written, the target logit before the row is.
// The exps use a vectorizable exp; their sum is in double over float chunks (one float running sum
// over 50k terms would lose ~1e-5).
#include <math.h>
#include <stdint.h>

#include "layers/layers.h"

// exp(x) to about 1 ulp, clamped to [-87, 88] (exp(-87) = 1.6e-38, exp(88) = 1.7e38), NaN stays NaN;
// plain arithmetic (cephes expf) so that loops over it vectorize. Same as in attention/softmax.c.
static inline float fast_exp(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    // x = k ln2 + r with k = round(x / ln2): adding 1.5 * 2^23 leaves k in the low mantissa bits.
    union { float f; uint32_t u; } k_bits = {.f = 1.44269504088896341f * x + 12582912.0f};
    float k = k_bits.f - 12582912.0f;
    float r = x - k * 0.693359375f + k * 2.12194440e-4f;
    float poly = 1.9875691500e-4f;
    poly = poly * r + 1.3981999507e-3f;
    poly = poly * r + 8.3334519073e-3f;
    poly = poly * r + 4.1665795894e-2f;
    poly = poly * r + 1.6666665459e-1f;
    poly = poly * r + 5.0000001201e-1f;
    union { uint32_t u; float f; } two_k = {.u = (k_bits.u - 0x4B400000u + 127u) << 23};   // 2^k
    return (poly * r * r + r + 1.0f) * two_k.f;
}

#define SUM_CHUNK 1024   // exps summed in float (vectorized) per chunk, chunks summed in double

// Returns sum_i exp(x[i] - maxv) over x (n); writes the exps to out (n) unless it is NULL (out may be x).
static double sum_exp(float* out, const float* x, float maxv, int n) {
    double sum = 0.0;
    for (int i0 = 0; i0 < n; i0 += SUM_CHUNK) {
        int i1 = i0 + SUM_CHUNK < n ? i0 + SUM_CHUNK : n;
        float chunk = 0.0f;
        if (out) {
            #pragma omp simd reduction(+:chunk)
            for (int i = i0; i < i1; i++) {
                out[i] = fast_exp(x[i] - maxv);
                chunk += out[i];
            }
        } else {
            #pragma omp simd reduction(+:chunk)
            for (int i = i0; i < i1; i++) chunk += fast_exp(x[i] - maxv);
        }
        sum += chunk;
    }
    return sum;
}

// One row: returns -log softmax(x)[target] over x (V); if dx is not NULL writes
// dx (Vp) = (softmax(x) - onehot(target)) * dloss in the first V columns, 0 in the padding.
static float crossentropy_row(float* dx, const float* x, int target, float dloss, int V, int Vp) {
    float maxv = -INFINITY;
    #pragma omp simd reduction(max:maxv)
    for (int i = 0; i < V; i++) maxv = x[i] > maxv ? x[i] : maxv;
    float target_logit = x[target];   // read before dx, which may be x, is written
    double sum = sum_exp(dx, x, maxv, V);
    if (dx) {
        float scale = (float)(dloss / sum);
        #pragma omp simd
        for (int i = 0; i < V; i++) dx[i] *= scale;
        dx[target] -= dloss;
        for (int i = V; i < Vp; i++) dx[i] = 0.0f;
    }
    return (float)log(sum) - (target_logit - maxv);
}

// losses (N), dlogits (N,Vp) or NULL, from logits (N,Vp) and targets (N); see layers.h.
void crossentropy_forward_backward(float* losses, float* dlogits, const float* logits, const int* targets,
                                   float dloss, int N, int V, int Vp) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++)
        losses[n] = crossentropy_row(dlogits ? dlogits + (size_t)n * Vp : NULL, logits + (size_t)n * Vp,
                                     targets[n], dloss, V, Vp);
}
