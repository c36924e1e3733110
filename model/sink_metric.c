// The attention-sink metrics (see sink_metric.h). Gu et al., "When Attention Sink Emerges in Language
// Models", arXiv 2410.10781: per sequence, layer and head the importance alpha_k of key k; a head
// has a sink on k when alpha_k > eps; Sink_k^eps is the share of (layer, head) pairs with a sink,
// per sequence, averaged over sequences (docs/MODEL.md section 13).
#include "model/sink_metric.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"

void sink_importance(float* alpha, const float* A, int T) {
    for (int k = 0; k < T; k++) {
        double sum = 0.0;
        for (int t = k; t < T; t++) sum += A[(size_t)t * T + k];
        alpha[k] = (float)(sum / (T - k));
    }
}

void sink_proxy_normalize(float* A, int T) {
    for (int t = 0; t < T; t++) {
        float* row = A + (size_t)t * T;
        double sum = 0.0;
        for (int j = 0; j <= t; j++) sum += fabsf(row[j]);
        for (int j = 0; j <= t; j++) row[j] = (float)(fabsf(row[j]) / (sum + SINK_PROXY_EPS));
    }
}

void sink_report_init(SinkReport* r, int L, int NH, int T, int k, float eps, const char* weights, int has_slot,
                      int has_gate) {
    memset(r, 0, sizeof(*r));
    r->L = L, r->NH = NH, r->T = T, r->k = k, r->eps = eps;
    r->weights = weights, r->has_slot = has_slot, r->has_gate = has_gate;
    r->alpha = calloc_check((size_t)L * NH * T, sizeof(double));
    r->alpha_slot = calloc_check((size_t)L * NH, sizeof(double));
    r->sink_count_layer = calloc_check(L, sizeof(long));
    r->massive = calloc_check(L, sizeof(double));
    r->gate_sum = calloc_check(L, sizeof(double));
    r->gate_small = calloc_check(L, sizeof(double));
}

void sink_report_free(SinkReport* r) {
    free(r->alpha);
    free(r->alpha_slot);
    free(r->sink_count_layer);
    free(r->massive);
    free(r->gate_sum);
    free(r->gate_small);
}

void sink_report_add_head(SinkReport* r, int l, int h, const float* A, const float* slot) {
    int T = r->T;
    float* alpha = malloc_check(T * sizeof(float));
    sink_importance(alpha, A, T);
    double* sum = r->alpha + ((size_t)l * r->NH + h) * T;
    for (int k = 0; k < T; k++) sum[k] += alpha[k];
    if (alpha[r->k] > r->eps) r->sink_count++, r->sink_count_layer[l]++;
    for (int t = 0; t < T; t++) r->first_token += A[(size_t)t * T];
    if (slot) {   // every query sees the slot: its importance is the mean over all T queries
        double slot_alpha = 0.0;
        for (int t = 0; t < T; t++) slot_alpha += slot[t];
        slot_alpha /= T;
        r->alpha_slot[(size_t)l * r->NH + h] += slot_alpha;
        if (slot_alpha > r->eps) r->slot_count++;
    }
    free(alpha);
}

static double norm2(const float* x, int C) {
    double sum = 0.0;
    for (int c = 0; c < C; c++) sum += (double)x[c] * x[c];
    return sqrt(sum);
}

void sink_report_add_residual(SinkReport* r, int l, const float* x, int C) {
    double others = 0.0;
    for (int t = 1; t < r->T; t++) others += norm2(x + (size_t)t * C, C);
    others /= r->T - 1;
    r->massive[l] += norm2(x, C) / others;
}

void sink_report_add_gates(SinkReport* r, int l, const float* g, long n) {
    for (long i = 0; i < n; i++) {
        r->gate_sum[l] += g[i];
        r->gate_small[l] += g[i] < 0.1f;
    }
    if (l == 0) r->gate_count += n;
}

static double heads_seen(const SinkReport* r) { return (double)r->sequences * r->L * r->NH; }
double sink_report_sink(const SinkReport* r) { return 100.0 * r->sink_count / heads_seen(r); }
double sink_report_slot(const SinkReport* r) { return 100.0 * r->slot_count / heads_seen(r); }
double sink_report_first_token(const SinkReport* r) { return r->first_token / (heads_seen(r) * r->T); }
double sink_report_massive(const SinkReport* r) {
    double most = 0.0;
    for (int l = 0; l < r->L; l++)
        if (r->massive[l] / r->sequences > most) most = r->massive[l] / r->sequences;
    return most;
}

// The mean over heads of alpha_k of layer l.
static double layer_alpha(const SinkReport* r, int l, int k) {
    double sum = 0.0;
    for (int h = 0; h < r->NH; h++) sum += r->alpha[((size_t)l * r->NH + h) * r->T + k];
    return sum / ((double)r->NH * r->sequences);
}

void sink_report_print(const SinkReport* r, FILE* out) {
    int k1 = r->k + 1;
    fprintf(out, "attention sinks over %d sequences of T=%d, key %d, eps %g (weights: %s)\n", r->sequences, r->T, k1,
            r->eps, r->weights);
    if (r->probes[0]) fprintf(out, "probe set: %s\n", r->probes);
    fprintf(out, "layer | Sink_%d %% | mean alpha_%d | massive act.%s\n", k1, k1,
            r->has_gate ? " | gate mean | gates < 0.1" : "");
    for (int l = 0; l < r->L; l++) {
        fprintf(out, "%5d | %8.2f | %12.4f | %12.2f", l, 100.0 * r->sink_count_layer[l] / ((double)r->sequences * r->NH),
                layer_alpha(r, l, r->k), r->massive[l] / r->sequences);
        if (r->has_gate)
            fprintf(out, " | %9.4f | %10.2f%%", r->gate_sum[l] / r->gate_count, 100.0 * r->gate_small[l] / r->gate_count);
        fprintf(out, "\n");
    }
    fprintf(out, "Sink_%d^%g = %.2f%%   first-token attention %.4f", k1, r->eps, sink_report_sink(r),
            sink_report_first_token(r));
    if (r->has_slot) fprintf(out, "   Sink* (slot) = %.2f%%", sink_report_slot(r));
    fprintf(out, "\n");
}

// A JSON array of n doubles, each scaled.
static void json_array(FILE* out, const double* x, size_t n, double scale) {
    fprintf(out, "[");
    for (size_t i = 0; i < n; i++) fprintf(out, "%s%.6g", i ? ", " : "", x[i] * scale);
    fprintf(out, "]");
}

// The per-layer array of numerators / denominators, or null.
static void json_layers(FILE* out, const char* name, const double* x, int L, double denominator, int present) {
    fprintf(out, ",\n  \"%s\": ", name);
    if (!present) fprintf(out, "null");
    else json_array(out, x, L, 1.0 / denominator);
}

void sink_report_write_json(const SinkReport* r, FILE* out, const char* const* about, int num_about) {
    fprintf(out, "{\n");
    for (int i = 0; i + 1 < 2 * num_about; i += 2) fprintf(out, "  \"%s\": \"%s\",\n", about[i], about[i + 1]);
    fprintf(out, "  \"layers\": %d, \"heads\": %d, \"T\": %d, \"k\": %d, \"eps\": %g, \"sequences\": %d,\n", r->L,
            r->NH, r->T, r->k + 1, r->eps, r->sequences);
    fprintf(out, "  \"probes\": \"%s\", \"probes_skipped\": %ld,\n", r->probes, r->probes_skipped);
    fprintf(out, "  \"weights\": \"%s\",\n  \"sink_percent\": %.4f,\n  \"first_token_attention\": %.6f,\n",
            r->weights, sink_report_sink(r), sink_report_first_token(r));
    if (r->has_slot) fprintf(out, "  \"slot_percent\": %.4f,\n", sink_report_slot(r));
    else fprintf(out, "  \"slot_percent\": null,\n");
    fprintf(out, "  \"alpha\": [");   // [layer][head][key], means over the sequences
    for (int l = 0; l < r->L; l++) {
        fprintf(out, "%s\n    [", l ? "," : "");
        for (int h = 0; h < r->NH; h++) {
            fprintf(out, "%s", h ? ", " : "");
            json_array(out, r->alpha + ((size_t)l * r->NH + h) * r->T, r->T, 1.0 / r->sequences);
        }
        fprintf(out, "]");
    }
    fprintf(out, "\n  ]");
    fprintf(out, ",\n  \"alpha_slot\": ");
    if (!r->has_slot) fprintf(out, "null");
    else {
        fprintf(out, "[");
        for (int l = 0; l < r->L; l++) {
            fprintf(out, "%s", l ? ", " : "");
            json_array(out, r->alpha_slot + (size_t)l * r->NH, r->NH, 1.0 / r->sequences);
        }
        fprintf(out, "]");
    }
    double* per_layer = malloc_check(r->L * sizeof(double));
    for (int l = 0; l < r->L; l++) per_layer[l] = (double)r->sink_count_layer[l];
    json_layers(out, "sink_percent_per_layer", per_layer, r->L, (double)r->sequences * r->NH / 100.0, 1);
    free(per_layer);
    json_layers(out, "massive_activation", r->massive, r->L, r->sequences, 1);
    json_layers(out, "gate_mean", r->gate_sum, r->L, r->gate_count, r->has_gate);
    json_layers(out, "gate_below_0.1", r->gate_small, r->L, r->gate_count, r->has_gate);
    fprintf(out, "\n}\n");
}
