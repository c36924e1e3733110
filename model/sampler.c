// Token sampling: temperature, top-k, top-p (see sampler.h).
#include "model/sampler.h"

#include <math.h>
#include <stdlib.h>

#include "common/check.h"

typedef struct { float prob; int id; } Candidate;

static int by_prob_desc(const void* a, const void* b) {
    float pa = ((const Candidate*)a)->prob, pb = ((const Candidate*)b)->prob;
    return (pa < pb) - (pa > pb);
}

static int argmax(const float* x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    return best;
}

int sample_token(const float* logits, int V, float temperature, int top_k, float top_p, Rng* rng) {
    if (temperature <= 0.0f) return argmax(logits, V);
    Candidate* c = malloc_check(sizeof(Candidate) * V);
    float maxv = logits[argmax(logits, V)];
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        c[i].id = i;
        c[i].prob = expf((logits[i] - maxv) / temperature);
        sum += c[i].prob;
    }
    int n = V;
    if (top_k > 0 || top_p < 1.0f) {
        qsort(c, V, sizeof(Candidate), by_prob_desc);
        if (top_k > 0 && top_k < n) n = top_k;
        double kept = 0.0;
        for (int i = 0; i < n; i++) {
            kept += c[i].prob / sum;
            if (kept >= top_p) { n = i + 1; break; }
        }
        sum = 0.0;
        for (int i = 0; i < n; i++) sum += c[i].prob;
    }
    double r = rng_f32(rng) * sum, acc = 0.0;
    int pick = c[n - 1].id;
    for (int i = 0; i < n; i++) {
        acc += c[i].prob;
        if (r < acc) { pick = c[i].id; break; }
    }
    free(c);
    return pick;
}
