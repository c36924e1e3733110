// The attention-sink metrics (model/sink_metric.c; docs/MODEL.md section 13), on host arrays: the
// importance of each key in a head's causal weight matrix, the proxy of unnormalized weights, and
// the report that accumulates them over layers, heads and sequences, with its table and JSON.
// Positions in the code are 0-indexed: key k here is the paper's key k+1.
#pragma once
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

// alpha (T): alpha[k] = sum_{t>=k} A[t][k] / (T - k), the mean weight key k gets from the queries
// that see it. A (T,T) row-major, causal (A[t][k] = 0 for k > t).
void sink_importance(float* alpha, const float* A, int T);
// Each row t of A (T,T) in place to |A[t][j]| / (sum_{j'<=t} |A[t][j']| + SINK_PROXY_EPS), the paper's
// code exactly: the proxy for weights that are not normalized (sigmoid without norm=1, mLSTM). A
// near-dormant row (sum far below the epsilon) stays near zero instead of being blown up to sum 1.
#define SINK_PROXY_EPS 1e-8
void sink_proxy_normalize(float* A, int T);

// What was measured, accumulated over sequences.
typedef struct {
    int L, NH, T, k;             // layers, heads, sequence length, the key of Sink_k (0-indexed)
    float eps;                   // the threshold
    const char* weights;         // what the metric ran on (the mixer's weights or a proxy)
    char probes[256];            // which sequences: the probe set (model/analysis.c), for the output
    long probes_skipped;         // document starts passed over (another end-of-text inside the window)
    int has_slot, has_gate;
    int sequences;               // accumulated so far
    long sink_count, slot_count; // (sequence, layer, head) triples with alpha_k > eps, with the slot's > eps
    double first_token;          // sum over (sequence, layer, head, query) of A[t][0]
    double* alpha;               // (L,NH,T) sum over sequences of alpha
    double* alpha_slot;          // (L,NH) sum over sequences of the slot's alpha
    long* sink_count_layer;      // (L)
    double* massive;             // (L) sum over sequences of ||h_0|| / mean_{t>0} ||h_t||
    double* gate_sum;            // (L) sum of the gate values
    double* gate_small;          // (L) count of gate values below 0.1
    double gate_count;           // gate values per layer, over the sequences
} SinkReport;

void sink_report_init(SinkReport* r, int L, int NH, int T, int k, float eps, const char* weights, int has_slot,
                      int has_gate);
void sink_report_free(SinkReport* r);
// Adds one sequence's head (l, h): its weights A (T,T) (already proxied if needed) and, with a slot,
// the slot's weight of each query slot (T) (NULL without).
void sink_report_add_head(SinkReport* r, int l, int h, const float* A, const float* slot);
// Adds one sequence's residual stream after block l, x (T,C).
void sink_report_add_residual(SinkReport* r, int l, const float* x, int C);
// Adds gate values g (n) of layer l (after the sigmoid).
void sink_report_add_gates(SinkReport* r, int l, const float* g, long n);

// The results in percent / means.
double sink_report_sink(const SinkReport* r);        // Sink_k^eps, %
double sink_report_slot(const SinkReport* r);        // Sink* on the slot, %
double sink_report_first_token(const SinkReport* r); // mean weight on key 0
double sink_report_massive(const SinkReport* r);     // the largest over layers of the mean massive-activation ratio
// A table on out: one line per layer (Sink_k, mean alpha_k, massive-activation ratio, gates), then the totals.
void sink_report_print(const SinkReport* r, FILE* out);
// The report as JSON (docs/SINKS.md lists the fields); `about` is written first as "key": "value" pairs.
void sink_report_write_json(const SinkReport* r, FILE* out, const char* const* about, int num_about);

#ifdef __cplusplus
}
#endif
