// Learning-rate schedules (see schedule.h).
#include "model/schedule.h"

#include <math.h>
#include <string.h>

#include "common/check.h"

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
