// Fused softmax + cross-entropy over the vocabulary (the GPT-2 loss head), numerically stable
// (the row max is subtracted before exp). Only the first V of the Vp columns are real (Vp pads
// the vocabulary for fast matmuls); padded columns are never read and get gradient 0. dlogits may
// alias logits: an element is read before it is written, the target logit before the row is.
// The exps use a vectorizable exp; their sum is in double over float chunks (one float running sum
// over 50k terms would lose ~1e-5).
#include <math.h>
#include <stdint.h>

#include "common/fastmath.h"
#include "layers/crossentropy.h"


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

// losses (N), dlogits (N,Vp) or NULL, from logits (N,Vp) and targets (N); see crossentropy.h.
void crossentropy_forward_backward(float* losses, float* dlogits, const float* logits, const int* targets,
                                   float dloss, int N, int V, int Vp) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++)
        losses[n] = crossentropy_row(dlogits ? dlogits + (size_t)n * Vp : NULL, logits + (size_t)n * Vp,
                                     targets[n], dloss, V, Vp);
}
