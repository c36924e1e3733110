// How an attention score becomes a weight: the one type the model graph (model/kernels.h) and both
// kernel sets share. Equations: docs/MODEL.md sections 4-6.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// A score s = q.k/sqrt(hs) of a query and a visible key becomes a weight:
typedef struct {
    int sigmoid;    // 0: softmax over the row; 1: sigmoid(s + bias), no row coupling
    float bias;     // the sigmoid bias b (sigmoid only)
    int normalize;  // sigmoid only: divide the row by its sum + 1e-8 (the sink paper's normalized variant)
} AttnScore;

#ifdef __cplusplus
}
#endif
