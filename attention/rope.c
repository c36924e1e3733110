// Rotary position embedding (RoPE, Su et al. 2021; docs/MODEL.md sections 8 and 5.1: applied to q and
// k after QK-norm, before the scores), rotate-half / GPT-NeoX convention, base 10000: within each
// head of size hs, channel j pairs with channel j + hs/2 and the pair rotates by the angle
// pos * 10000^(-2j/hs):  x1' = x1 cos - x2 sin,  x2' = x2 cos + x1 sin.
// The backward applies the transposed rotation (the angle negated). The angles and their sin/cos
// are computed in double once per call into a (T, hs/2) table, so large positions (pos0 in the
// thousands, KV-cache decoding) keep full float accuracy; the table is shared by the B rows, the
// q and k parts and all heads.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention/rope.h"
#include "common/check.h"

#define ROPE_BASE 10000.0

int rope_head_size(const char* fn, int C, int NH) {
    if (NH <= 0 || C % NH != 0)
        fail("%s: n_embd %d is not a multiple of n_head %d; choose n_embd divisible by n_head", fn, C, NH);
    int hs = C / NH;
    if (hs % 2 != 0)
        fail("%s: head size %d (n_embd %d / n_head %d) is odd, but RoPE rotates channel pairs "
             "(j, j + hs/2); choose n_embd / n_head even", fn, hs, C, NH);
    return hs;
}

// cos_sin (T, 2, half): cos then sin of (pos0 + t) * ROPE_BASE^(-2j/hs), j < half = hs/2.
static float* rope_table(int T, int hs, int pos0) {
    int half = hs / 2;
    float* table = malloc_check((size_t)T * 2 * half * sizeof(float));
    double* inv_freq = malloc_check((size_t)half * sizeof(double));
    for (int j = 0; j < half; j++) inv_freq[j] = pow(ROPE_BASE, -2.0 * j / hs);
    #pragma omp parallel for if ((size_t)T * half >= 4096)
    for (int t = 0; t < T; t++) {
        float* cs = table + (size_t)t * 2 * half;
        double pos = (double)pos0 + t;
        for (int j = 0; j < half; j++) {
            double angle = pos * inv_freq[j];
            cs[j] = (float)cos(angle);
            cs[half + j] = (float)sin(angle);
        }
    }
    free(inv_freq);
    return table;
}

// out (B,T,3C) = R(sign * angle) inp on the q and k parts, v passed through; with accumulate, out +=
// instead of =. The forward is R (sign +1, out may alias inp), the backward R^T = R(-angle), added.
static void rope_rotate(float* out, const float* inp, int B, int T, int C, int NH, int pos0, float sign,
                        int accumulate, const char* fn) {
    int hs = rope_head_size(fn, C, NH), half = hs / 2;
    float* table = rope_table(T, hs, pos0);
    #pragma omp parallel for
    for (int row = 0; row < B * T; row++) {
        const float* cs = table + (size_t)(row % T) * 2 * half;
        const float* sn = cs + half;
        const float* x = inp + (size_t)row * 3 * C;
        float* y = out + (size_t)row * 3 * C;
        for (int head = 0; head < 2 * NH; head++) {          // q heads then k heads
            const float* x1 = x + (size_t)head * hs;
            const float* x2 = x1 + half;
            float* y1 = y + (size_t)head * hs;
            float* y2 = y1 + half;
            #pragma omp simd
            for (int j = 0; j < half; j++) {
                float a = x1[j], b = x2[j], s = sign * sn[j];
                float r1 = a * cs[j] - b * s, r2 = b * cs[j] + a * s;
                y1[j] = accumulate ? y1[j] + r1 : r1;
                y2[j] = accumulate ? y2[j] + r2 : r2;
            }
        }
        if (accumulate) {
            #pragma omp simd
            for (int c = 2 * C; c < 3 * C; c++) y[c] += x[c];
        } else if (y != x) {
            memcpy(y + 2 * C, x + 2 * C, (size_t)C * sizeof(float));
        }
    }
    free(table);
}

// inp/out (B,T,3C): q and k parts rotated, v copied; out may alias inp.
void rope_forward(float* out, const float* inp, int B, int T, int C, int NH, int pos0) {
    rope_rotate(out, inp, B, T, C, NH, pos0, 1.0f, 0, "rope_forward");
}

// dinp (B,T,3C) += R^T dout on q and k, += dout on v.
void rope_backward(float* dinp, const float* dout, int B, int T, int C, int NH, int pos0) {
    rope_rotate(dinp, dout, B, T, C, NH, pos0, -1.0f, 1, "rope_backward");
}
