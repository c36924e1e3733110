// The attention-sink analysis of a model (gpt.h; docs/MODEL.md section 13): the sequences go through
// the ordinary forward in batches; then, layer by layer, a kernel materializes the T x T weights of
// every head (small T: 64 by default) from the saved q, k, v and row statistics, and the metrics of
// model/sink_metric.c accumulate them with the residual stream and the gates. The same code serves
// `infer -sa` and the trainer's `-sa` (train.c).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "data/shards.h"
#include "common/fastmath.h"
#include "model/gpt.h"
#include "model/tensors.h"

#define ANALYSIS_BATCH 16   // sequences per forward

// What the metric runs on: the weights themselves when rows are normalized, else a proxy.
static const char* weights_kind(const GPTConfig* c) {
    if (c->mixer == MIXER_MLSTM) return "mLSTM gated score matrix, normalized magnitude |C~| / sum |C~|";
    if (c->mixer == MIXER_SIGMOID && !c->sigmoid_norm) return "sigmoid weights, proxy |w| / sum |w|";
    if (c->mixer == MIXER_SIGMOID) return "normalized sigmoid weights";
    return c->sink != SINK_NONE ? "softmax weights over the keys and the sink slot" : "softmax weights";
}

// Host buffers of one batch: the weights (B,NH,T,T), the slot's weight per query (T), a layer's
// residual stream (B,T,C) or gates (B,T,G).
typedef struct {
    float *weights, *slot, *rows;
} AnalysisBuffers;

// Layer l's weights of the B sequences of the last forward into the report.
static void add_layer_weights(GPT* m, SinkReport* r, float* device_weights, AnalysisBuffers* w, int l, int B, int T) {
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    int C = c->channels, NH = c->num_heads;
    ActivationTensors a = gpt_layer_acts(m, l);
    if (c->mixer == MIXER_MLSTM)
        k->mlstm_score_matrix(device_weights, a.qkv, a.mlstm_gates, B, T, C, NH, c->mlstm_igate == IGATE_SIG);
    else
        k->attention_weights(device_weights, a.qkv, a.att_rowstat, B, T, C, NH, gpt_attn_score(c));
    k->download(w->weights, device_weights, (size_t)B * NH * T * T * sizeof(float));
    int proxy = c->mixer == MIXER_MLSTM || (c->mixer == MIXER_SIGMOID && !c->sigmoid_norm);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float* A = w->weights + ((size_t)b * NH + h) * T * T;
            if (proxy) sink_proxy_normalize(A, T);
            for (int t = 0; c->sink != SINK_NONE && t < T; t++) {   // the rest of each softmax row
                double keys = 0.0;
                for (int j = 0; j <= t; j++) keys += A[(size_t)t * T + j];
                w->slot[t] = (float)(1.0 - keys);
            }
            sink_report_add_head(r, l, h, A, c->sink != SINK_NONE ? w->slot : NULL);
        }
    }
}

// Layer l's residual stream after the block, and its gates, of the B sequences of the last forward.
static void add_layer_activations(GPT* m, SinkReport* r, AnalysisBuffers* w, int l, int B, int T) {
    const GPTConfig* c = &m->config;
    int C = c->channels, G = gpt_gate_width(c);
    ActivationTensors a = gpt_layer_acts(m, l);
    gpt_download_floats(m, w->rows, a.residual3, (size_t)B * T * C);
    for (int b = 0; b < B; b++) sink_report_add_residual(r, l, w->rows + (size_t)b * T * C, C);
    if (!G) return;
    size_t n = (size_t)B * T * G;
    gpt_download_floats(m, w->rows, a.gate_pre, n);
    for (size_t i = 0; i < n; i++) w->rows[i] = sigmoid(w->rows[i]);
    sink_report_add_gates(r, l, w->rows, (long)n);
}

// Fails with one line on settings the analysis cannot run with, before any work.
static void check_settings(const GPT* m, int N, int T, int k) {
    const GPTConfig* c = &m->config;
    if (N < 1) fail("sink analysis: %d sequences asked; give at least one", N);
    if (T < 2 || T > c->max_seq_len) fail("sink analysis: T=%d must be in 2..%d (the model's maximum)", T, c->max_seq_len);
    if (k < 0 || k >= T) fail("sink analysis: key %d is not a position of T=%d", k + 1, T);
    if (!(c->mixer == MIXER_MLSTM ? (const void*)m->k->mlstm_score_matrix : (const void*)m->k->attention_weights))
        fail("the %s kernel set cannot materialize this mixer's weights yet; use the CPU build (infer)", m->k->name);
}

void gpt_sink_analysis(GPT* m, const int* tokens, int N, int T, int k, float eps, SinkReport* r) {
    const GPTConfig* c = &m->config;
    int L = c->num_layers, NH = c->num_heads, C = c->channels;
    check_settings(m, N, T, k);
    sink_report_init(r, L, NH, T, k, eps, weights_kind(c), c->sink != SINK_NONE, gpt_gate_width(c) > 0);
    snprintf(r->probes, sizeof(r->probes), "the sequences given");
    int B = N < ANALYSIS_BATCH ? N : ANALYSIS_BATCH;
    size_t rows = (size_t)B * T * (C > gpt_gate_width(c) ? C : gpt_gate_width(c));
    AnalysisBuffers w = {malloc_check((size_t)B * NH * T * T * sizeof(float)), malloc_check(T * sizeof(float)),
                         malloc_check(rows * sizeof(float))};
    float* device_weights = m->k->alloc((size_t)B * NH * T * T * sizeof(float));
    for (int n0 = 0; n0 < N; n0 += B) {
        int batch = N - n0 < B ? N - n0 : B;
        gpt_forward(m, tokens + (size_t)n0 * T, NULL, batch, T);
        for (int l = 0; l < L; l++) {
            add_layer_weights(m, r, device_weights, &w, l, batch, T);
            add_layer_activations(m, r, &w, l, batch, T);
        }
        r->sequences += batch;
    }
    m->k->release(device_weights);
    free(w.weights);
    free(w.slot);
    free(w.rows);
}

// The line-ending tokens of a byte-level vocabulary without a tokenizer file (V = 257: byte 10).
static unsigned char* byte_line_ends(int V) {
    if (V != 257)
        fail("sink analysis: a bos=window model is probed at line starts, and finding line ends in a vocabulary of "
             "V=%d needs its tokenizer: give -tk FILE", V);
    unsigned char* line_end = calloc_check((size_t)V, 1);
    line_end['\n'] = 1;
    return line_end;
}

// bos=window: the BOS and then T-1 tokens from each of the first N line starts (not overlapping).
// The BOS (eot), when the model was trained with one, then tokens from a line start, T in all.
static void line_start_probes(GPT* m, const char* pattern, int eot, const unsigned char* line_end, int N, int T,
                              int* tokens, char* about, size_t about_size) {
    int V = m->config.vocab_size, bos = m->config.bos != BOS_OFF, len = T - bos;
    unsigned char* bytes = line_end ? NULL : byte_line_ends(V);
    int* spans = malloc_check((size_t)N * len * sizeof(int));
    size_t found = shard_line_starts(pattern, line_end ? line_end : bytes, V, len, N, spans);
    if (found < (size_t)N)
        fail("%s: %zu line starts with %d tokens after them (windows not overlapping), %d asked; lower the sequence "
             "count or T, or give more data", pattern, found, len, N);
    for (int n = 0; n < N; n++) {
        if (bos) tokens[(size_t)n * T] = eot;
        for (int t = 0; t < len; t++) tokens[(size_t)n * T + bos + t] = spans[(size_t)n * len + t];
    }
    snprintf(about, about_size, "line starts: %s%d tokens from a line start (windows not overlapping, end-of-text "
             "tokens inside kept)", bos ? "the BOS, then " : "", len);
    free(spans);
    free(bytes);
}

// With a BOS (bos=1, window): the end-of-text token and T-1 tokens after it; bos=0: the T tokens after
// it. Starts whose window holds another end-of-text token are passed over; returns how many.
static size_t document_start_probes(GPT* m, const char* pattern, int eot, int N, int T, int* tokens, char* about,
                                    size_t about_size) {
    int bos = m->config.bos != BOS_OFF, with_eot = T + !bos;   // without BOS the EOT is read, then dropped
    int* spans = malloc_check((size_t)N * with_eot * sizeof(int));
    size_t skipped = 0, found = shard_document_starts(pattern, eot, m->config.vocab_size, with_eot, N, spans, &skipped);
    if (found < (size_t)N)
        fail("%s: %zu document starts with %d tokens after them and no other end-of-text among them (%zu more "
             "passed over), %d asked; lower the sequence count or T, or give more data", pattern, found, T - bos,
             skipped, N);
    for (int n = 0; n < N; n++)
        for (int t = 0; t < T; t++) tokens[(size_t)n * T + t] = spans[(size_t)n * with_eot + !bos + t];
    snprintf(about, about_size, "document starts: %s%d tokens, no other end-of-text among them (%zu start%s "
             "passed over)", bos ? "the end-of-text token, then the document's first " : "a document's first ",
             T - bos, skipped, skipped == 1 ? "" : "s");
    free(spans);
    return skipped;
}

ProbeSet gpt_probe_set(const char* name, const char* flag) {
    static const char* const names[] = {"auto", "doc", "line"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, names[i])) return (ProbeSet)i;
    fail("%s %s: unknown probe set (known: auto doc line)", flag, name);
}

void gpt_sink_analysis_shards(GPT* m, const char* pattern, int eot, const unsigned char* line_end, ProbeSet probes,
                              int N, int T, int k, float eps, SinkReport* r) {
    check_settings(m, N, T, k);
    int* tokens = malloc_check((size_t)N * T * sizeof(int));
    char about[sizeof(r->probes)];
    size_t skipped = 0;
    if (probes == PROBES_AUTO) probes = m->config.bos == BOS_WINDOW ? PROBES_LINES : PROBES_DOCUMENTS;
    if (probes == PROBES_LINES) line_start_probes(m, pattern, eot, line_end, N, T, tokens, about, sizeof(about));
    else skipped = document_start_probes(m, pattern, eot, N, T, tokens, about, sizeof(about));
    gpt_sink_analysis(m, tokens, N, T, k, eps, r);   // initializes r
    memcpy(r->probes, about, sizeof(about));
    r->probes_skipped = (long)skipped;
    free(tokens);
}
