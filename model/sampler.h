// Picking the next token from logits (train.c's samples and infer.c).
#pragma once
#include "common/rng.h"

// Samples a token id from logits (V): temperature <= 0 is argmax; top_k <= 0 and top_p >= 1 are off.
int sample_token(const float* logits, int V, float temperature, int top_k, float top_p, Rng* rng);
