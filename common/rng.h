// A small seeded RNG (xorshift64*), so runs are reproducible and the state fits in a checkpoint.
#pragma once
#include <math.h>
#include <stdint.h>

typedef struct { uint64_t state; } Rng;

static inline void rng_seed(Rng* r, uint64_t seed) {
    // splitmix64 of the seed, so nearby seeds give unrelated streams; state must be non-zero
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    r->state = (z ^ (z >> 31)) | 1;
}
static inline uint32_t rng_u32(Rng* r) {
    r->state ^= r->state >> 12;
    r->state ^= r->state << 25;
    r->state ^= r->state >> 27;
    return (uint32_t)((r->state * 0x2545F4914F6CDD1Dull) >> 32);
}
// uniform in [0, 1)
static inline float rng_f32(Rng* r) { return (rng_u32(r) >> 8) / 16777216.0f; }
// standard normal (Box-Muller)
static inline float rng_normal(Rng* r) {
    float u1 = (rng_u32(r) + 1.0f) / 4294967296.0f, u2 = rng_f32(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}
// a uniform random permutation of 0..n-1 (Fisher-Yates)
static inline void rng_permutation(Rng* r, int* perm, int n) {
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rng_u32(r) % (uint32_t)(i + 1));
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}
