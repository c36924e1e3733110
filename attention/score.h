// How an attention score becomes a weight: the one type the model graph (model/kernels.h) and both
// kernel sets share, and the one definition of the map that every attention kernel calls, the CPU's
// (attention/softmax_sigmoid.c) directly, the CUDA ones (attention/softmax_sigmoid*.cu) through
// their compile-time policy ScoreMap (attention/softmax_sigmoid.cuh). Equations: docs/MODEL.md
// sections 4-6. The map has two parts:
//  (a) the logit of query position i and key position j from the scaled dot product s = q.k/sqrt(hs)
//      (attn_logit: ALiBi's offset); every term is the identity when its option is off;
//  (b) the weight from the logit x and the row statistic, and the backward's score gradient:
//        softmax:      w = exp(x - LSE),                   dS = w (dP - D)
//        sigmoid:      w = p = sigmoid(x + b),             dS = dP p (1 - p)
//        sigmoid/norm: w = p / Z', Z' = Z + 1e-8,          dS = (dP - D) / Z' p (1 - p)
//      with LSE (softmax) or Z (normalized sigmoid) the row statistic the forward saves, dP = dO . v
//      and D = dO . O.
// A new score modifier is one function here, called from attn_logit, plus its field in AttnScore.
// The functions are host and device code; where the two round differently (fmaf against the CPU's
// contracted FMA, fast_exp against __expf) the body says which is which.
// CUDA files that call the map include common/cuda_common.cuh before this header: the CPU emulation
// of CUDA defines __CUDA_ARCH__ and the device math (expf, logf, exp2f) in its cuda_runtime.h
// (test/cuda/emulate), and the functions here and in common/fastmath.h take the forms that are
// defined where they are first read.
#pragma once
#include <math.h>

#include "common/fastmath.h"

#ifdef __CUDACC__
#define SCORE_HOST_DEVICE __host__ __device__
#else
#define SCORE_HOST_DEVICE
#endif

#ifdef __cplusplus
extern "C" {
#endif

// A score s = q.k/sqrt(hs) (+ the ALiBi offset) of a query and a visible key becomes a weight:
typedef struct {
    int sigmoid;    // 0: softmax over the row; 1: sigmoid(s + bias), no row coupling
    float bias;     // the sigmoid bias b (sigmoid only)
    int normalize;  // sigmoid only: divide the row by its sum + 1e-8 (the sink paper's normalized variant)
    int alibi;      // 1: add -slope_h (i - j) to the score of query position i and key position j
} AttnScore;

// The extra key slot every query of a softmax row sees (docs/MODEL.md section 14): none, a learnable
// key k* with value 0, learnable k* and v*, a learnable logit per head, or the fixed logit 0.
typedef enum { SINK_NONE = 0, SINK_KEY = 1, SINK_KEY_VALUE = 2, SINK_LOGIT = 3, SINK_ONE = 4 } SinkKind;

#define ATTN_SIGMOID_NORM_EPS 1e-8f   // Z' = Z + eps in the normalized sigmoid (docs/MODEL.md 5.3)

// The ALiBi slope of head h of NH (docs/MODEL.md section 6): 2^(-8 (h+1) / NH); 0 without ALiBi.
static inline SCORE_HOST_DEVICE float attn_alibi_slope(AttnScore score, int h, int NH) {
    return score.alibi ? exp2f(-8.0f * (float)(h + 1) / (float)NH) : 0.0f;
}

// The map as head h applies it: the options and the constants they derive per head, computed once
// per head so that the kernels' loops see loop-invariant values.
typedef struct {
    AttnScore score;
    float slope;   // ALiBi's slope_h (attn_alibi_slope), in the units of the kernel's scores
} AttnHead;

static inline SCORE_HOST_DEVICE AttnHead attn_head(AttnScore score, int h, int NH) {
    AttnHead head = {score, attn_alibi_slope(score, h, NH)};
    return head;
}

// ---- (a) the logit

// ALiBi's term: s - slope (i - j). Device code rounds once (fmaf: the GPU's FMA, also in the CPU
// emulation of CUDA); the CPU leaves the fusing to the compiler (-ffp-contract=fast gives the same
// single rounding where the ISA has an FMA), so that its loops vectorize on any instruction set.
static inline SCORE_HOST_DEVICE float attn_alibi(float s, float slope, int i, int j) {
#ifdef __CUDA_ARCH__
    return fmaf(slope, (float)(j - i), s);
#else
    return s - slope * (float)(i - j);
#endif
}

// The logit of query position i and key position j from the scaled score s: the terms of the map
// added to it. Device code skips a term whose switch is off (the switches are constants in the CUDA
// kernels, ScoreMap, so such a term costs nothing there); the CPU adds every term at its off value,
// where it is the identity (slope 0: s exactly for j <= i), so that its vectorized loops have no
// branch. The tensor-core kernels add each term per fragment element (ScoreMap::fragment_logit):
// ATTN_LOGIT_TERMS counts the terms, and the build fails there until a new one has its form.
#define ATTN_LOGIT_TERMS 1   // ALiBi's
static inline SCORE_HOST_DEVICE float attn_logit(AttnHead head, float s, int i, int j) {
#ifdef __CUDA_ARCH__
    return head.score.alibi ? attn_alibi(s, head.slope, i, j) : s;
#else
    return attn_alibi(s, head.slope, i, j);
#endif
}

// ---- (b) the weight and the score gradient

// exp(x - m): with m the row's LSE the softmax weight; with its running max the forward's weight
// before the row is normalized. fast_exp: the CPU's vectorizable exp, __expf in device code.
static inline SCORE_HOST_DEVICE float attn_softmax_weight(float x, float m) { return fast_exp(x - m); }

// The softmax score gradient dS = w (dP - D) (w may come multiplied by the scale of dQ and dK).
static inline SCORE_HOST_DEVICE float attn_softmax_grad(float w, float dp, float D) { return w * (dp - D); }

// The sigmoid weight before any normalization: p = sigmoid(x + b).
static inline SCORE_HOST_DEVICE float attn_sigmoid_weight(AttnHead head, float x) {
    return sigmoid(x + head.score.bias);
}

// The sigmoid of a logit with what its gradient needs: p = sigmoid(x + b) and, on the CPU,
// e = exp(-(x + b)) (device code has no use for e, and the compiler drops it).
typedef struct {
    float p, e;
} AttnSigmoid;

static inline SCORE_HOST_DEVICE AttnSigmoid attn_sigmoid(AttnHead head, float x) {
#ifdef __CUDA_ARCH__
    AttnSigmoid s = {sigmoid(x + head.score.bias), 0.0f};
#else
    float e = fast_exp(-(x + head.score.bias));
    AttnSigmoid s = {1.0f / (1.0f + e), e};
#endif
    return s;
}

// The sigmoid's score gradient g p (1 - p), g the factor before it (dP, or (dP - D) / Z'; the CPU's
// comes multiplied by the scale). The CPU forms p (1 - p) as p^2 e, which keeps its relative
// precision where p is near 1 (docs/MODEL.md 5.2); device code forms p (1 - p).
static inline SCORE_HOST_DEVICE float attn_sigmoid_grad(AttnSigmoid s, float g) {
#ifdef __CUDA_ARCH__
    return g * s.p * (1.0f - s.p);
#else
    return g * s.p * s.p * s.e;
#endif
}

// The normalized sigmoid's divisor Z' = Z + 1e-8 of the row sum Z, and its inverse.
static inline SCORE_HOST_DEVICE float attn_norm_divisor(float z) { return z + ATTN_SIGMOID_NORM_EPS; }
static inline SCORE_HOST_DEVICE float attn_norm_scale(float z) { return 1.0f / attn_norm_divisor(z); }

// What a row of weights is multiplied by once its sum l is known (softmax: l of exp(x - max);
// normalized sigmoid: Z), and the statistic the forward saves for it (m: the row's max logit).
static inline SCORE_HOST_DEVICE float attn_row_scale(AttnScore score, float l) {
    return !score.sigmoid ? 1.0f / l : score.normalize ? attn_norm_scale(l) : 1.0f;
}
static inline SCORE_HOST_DEVICE float attn_row_stat(AttnScore score, float m, float l) {
    return !score.sigmoid ? m + logf(l) : score.normalize ? l : 0.0f;
}

#ifdef __cplusplus
}
#endif
