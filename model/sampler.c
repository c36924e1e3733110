// Token sampling (temperature, top-k, top-p) and learning-rate schedules (see sampler.h).
#include "model/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

void learning_rate_check(const char* s) {
    if (strcmp(s, "cosine") && strcmp(s, "linear") && strcmp(s, "constant") && strcmp(s, "wsd"))
        fail("-k %s: unknown learning-rate schedule (cosine, linear, constant, wsd)", s);
}

float learning_rate(const char* schedule, float max_lr, int warmup, int num_steps, float final_frac, int step) {
    float min_lr = max_lr * final_frac;
    if (step < warmup) return max_lr * (step + 1) / warmup;
    if (!strcmp(schedule, "constant")) return max_lr;
    float decay = num_steps > warmup ? (float)(step - warmup) / (num_steps - warmup) : 1.0f;
    if (decay > 1.0f) decay = 1.0f;
    if (!strcmp(schedule, "cosine")) return min_lr + 0.5f * (1.0f + cosf((float)M_PI * decay)) * (max_lr - min_lr);
    if (!strcmp(schedule, "linear")) return max_lr - decay * (max_lr - min_lr);
    int decay_start = warmup + (int)(0.8f * (num_steps - warmup));   // wsd
    if (step < decay_start) return max_lr;
    float cooldown = (float)(step - decay_start) / (num_steps - decay_start);
    return min_lr + (1.0f - sqrtf(cooldown)) * (max_lr - min_lr);
}
