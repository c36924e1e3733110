// Fused softmax + cross-entropy over the vocabulary (the GPT-2 loss head), numerically stable
// (the row max is subtracted before exp). Only the first V of the Vp columns are real (Vp pads
// the vocabulary for fast matmuls); padded columns are never read and get gradient 0. dlogits may
// alias logits, so each row is read fully (max, target logit) before any of it is written.
#include <math.h>

#include "layers/layers.h"

// One row: returns -log softmax(x)[target] over x (V); if dx is not NULL writes
// dx (Vp) = (softmax(x) - onehot(target)) * dloss in the first V columns, 0 in the padding.
static float crossentropy_row(float* dx, const float* x, int target, float dloss, int V, int Vp) {
    float maxv = -INFINITY;
    #pragma omp simd reduction(max:maxv)
    for (int i = 0; i < V; i++) maxv = fmaxf(maxv, x[i]);
    float target_logit = x[target];
    double sum = 0.0;   // up to 50k terms: a float running sum would lose ~1e-5 (the exps are scalar anyway)
    if (dx) {
        for (int i = 0; i < V; i++) {   // dx may be x: element i is read before it is written
            float e = expf(x[i] - maxv);
            dx[i] = e;
            sum += e;
        }
        float scale = (float)(dloss / sum);
        #pragma omp simd
        for (int i = 0; i < V; i++) dx[i] *= scale;
        dx[target] -= dloss;
        for (int i = V; i < Vp; i++) dx[i] = 0.0f;
    } else {
        for (int i = 0; i < V; i++) sum += expf(x[i] - maxv);
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
