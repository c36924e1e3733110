// How an attention score becomes a weight: the one type the model graph (model/kernels.h) and both
// kernel sets share. Equations: docs/MODEL.md sections 4-6.
#pragma once
#include <math.h>

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

// The ALiBi slope of head h of NH (docs/MODEL.md section 6): 2^(-8 (h+1) / NH); 0 without ALiBi.
static inline SCORE_HOST_DEVICE float attn_alibi_slope(AttnScore score, int h, int NH) {
    return score.alibi ? exp2f(-8.0f * (float)(h + 1) / (float)NH) : 0.0f;
}

#ifdef __cplusplus
}
#endif
