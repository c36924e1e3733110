// Entry points for the Python tests (test/clib.py): whole-model calls on an opaque GPT handle,
// so a test can compare losses, gradients, updates and decoding against PyTorch.
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "data/shards.h"
#include "model/gpt.h"

GPT* capi_load(const char* path) {
    GPT* m = malloc_check(sizeof(GPT));
    gpt_load_checkpoint(m, path, default_kernels());
    return m;
}

GPT* capi_random_init(const char* descriptor, int seed, const char* init) {
    GPT* m = malloc_check(sizeof(GPT));
    GPTConfig c = gpt_config_from_descriptor(descriptor);
    gpt_build(m, &c, default_kernels());
    gpt_init_random(m, (uint64_t)seed, gpt_init_scheme(init, "init"));
    return m;
}

GPT* capi_random(const char* descriptor, int seed) { return capi_random_init(descriptor, seed, "gpt2"); }

void capi_save(GPT* m, const char* path) { gpt_save_checkpoint(m, path); }
void capi_free(GPT* m) { gpt_free(m); free(m); }
size_t capi_num_parameters(GPT* m) { return m->num_parameters; }
float* capi_params(GPT* m) { return m->params_memory; }
float* capi_grads(GPT* m) { return m->grads_memory; }

// Zero grads, forward, backward of the mean loss over the B*T tokens; returns the loss.
float capi_forward_backward(GPT* m, const int* inputs, const int* targets, int B, int T) {
    gpt_zero_grad(m);
    float loss = gpt_forward(m, inputs, targets, B, T);
    gpt_backward(m, 1.0f / (B * T));
    return loss;
}

// The steps of capi_forward_backward one by one, for tests of what happens between them.
void capi_zero_grad(GPT* m) { gpt_zero_grad(m); }
float capi_forward(GPT* m, const int* inputs, const int* targets, int B, int T) {
    return gpt_forward(m, inputs, targets, B, T);
}
void capi_backward(GPT* m, float dloss) { gpt_backward(m, dloss); }

float capi_update(GPT* m, float lr, float beta1, float beta2, float eps, float wd, int decay_all, float clip,
                  int step) {
    return gpt_update(m, lr, beta1, beta2, eps, wd, decay_all, clip, step);
}

// Full forward; copies the logits (B,T,Vp) to out.
void capi_forward_logits(GPT* m, const int* inputs, int B, int T, float* out) {
    gpt_forward(m, inputs, NULL, B, T);
    memcpy(out, m->logits, sizeof(float) * B * T * m->config.padded_vocab_size);
}

// Incremental decode of T tokens at pos0 with the KV cache; copies the last logits (Vp) to out.
void capi_decode(GPT* m, const int* tokens, int T, int pos0, float* out) {
    memcpy(out, gpt_decode(m, tokens, T, pos0), sizeof(float) * m->config.padded_vocab_size);
}

// Streaming decoding (gpt_stream_begin, gpt_stream_decode): each token's logits (Vp) to out.
const char* capi_stream_why(GPT* m, int sinks, int window) { return gpt_stream_refusal(&m->config, sinks, window); }
void capi_stream_begin(GPT* m, int sinks, int window) { gpt_stream_begin(m, sinks, window); }
void capi_stream_decode(GPT* m, int token, float* out) {
    memcpy(out, gpt_stream_decode(m, token), sizeof(float) * m->config.padded_vocab_size);
}

// The data loader on an opaque handle, for test/data/test_loader.py (dataloader_seek and
// shard_document_starts are called directly).
DataLoader* capi_loader(const char* pattern, int B, int T, int rank, int num_ranks, int shuffle, int seed,
                        int vocab_size, int layout, int bos_token) {
    DataLoader* dl = malloc_check(sizeof(DataLoader));
    dataloader_init(dl, pattern, B, T, rank, num_ranks, shuffle, (uint64_t)seed, vocab_size, layout, bos_token);
    return dl;
}

// The next batch's inputs and targets (B,T).
void capi_loader_next(DataLoader* dl, int* inputs, int* targets) {
    dataloader_next_batch(dl);
    memcpy(inputs, dl->inputs, sizeof(int) * dl->B * dl->T);
    memcpy(targets, dl->targets, sizeof(int) * dl->B * dl->T);
}

// epoch, shard_pos, sample_pos, num_batches, num_sequences, num_tokens, dataloader_epoch_tokens,
// distinct_tokens, window_shift.
void capi_loader_info(const DataLoader* dl, long* out) {
    long info[] = {dl->epoch, dl->shard_pos, dl->sample_pos, dl->num_batches, (long)dl->num_sequences,
                   (long)dl->num_tokens, (long)dataloader_epoch_tokens(dl), (long)dl->distinct_tokens,
                   dl->window_shift};
    memcpy(out, info, sizeof(info));
}

void capi_loader_free(DataLoader* dl) { dataloader_free(dl); free(dl); }

// The sink report (model/sink_metric.h) for the metric tests: built, fed and read through these.
SinkReport* capi_sink_report_new(int L, int NH, int T, int k, float eps, int has_slot, int has_gate) {
    SinkReport* r = malloc_check(sizeof(SinkReport));
    sink_report_init(r, L, NH, T, k, eps, "test", has_slot, has_gate);
    return r;
}
void capi_sink_add_head(SinkReport* r, int l, int h, const float* A, const float* slot) {
    sink_report_add_head(r, l, h, A, slot);
}
void capi_sink_add_residual(SinkReport* r, int l, const float* x, int C) { sink_report_add_residual(r, l, x, C); }
void capi_sink_add_gates(SinkReport* r, int l, const float* g, long n) { sink_report_add_gates(r, l, g, n); }
void capi_sink_end_sequences(SinkReport* r, int n) { r->sequences += n; }
// out: Sink_k %, Sink* %, first-token attention; alpha (L,NH,T) and the per-layer massive-activation
// ratio, gate mean and share below 0.1 (L each), as means over the sequences.
void capi_sink_results(const SinkReport* r, double* out, double* alpha, double* massive, double* gate_mean,
                       double* gate_small) {
    out[0] = sink_report_sink(r), out[1] = sink_report_slot(r), out[2] = sink_report_first_token(r);
    for (size_t i = 0; i < (size_t)r->L * r->NH * r->T; i++) alpha[i] = r->alpha[i] / r->sequences;
    for (int l = 0; l < r->L; l++) {
        massive[l] = r->massive[l] / r->sequences;
        gate_mean[l] = r->has_gate ? r->gate_sum[l] / r->gate_count : 0.0;
        gate_small[l] = r->has_gate ? r->gate_small[l] / r->gate_count : 0.0;
    }
}
void capi_sink_free(SinkReport* r) { sink_report_free(r); free(r); }
SinkReport* capi_sink_analysis(GPT* m, const int* tokens, int N, int T, int k, float eps) {
    SinkReport* r = malloc_check(sizeof(SinkReport));
    gpt_sink_analysis(m, tokens, N, T, k, eps, r);
    return r;
}
// The analysis on the probe set of the shards of pattern (line_end: V flags, or NULL; probes: "auto",
// "doc" or "line").
SinkReport* capi_sink_analysis_shards(GPT* m, const char* pattern, int eot, const unsigned char* line_end,
                                      const char* probes, int N, int T, int k, float eps) {
    SinkReport* r = malloc_check(sizeof(SinkReport));
    gpt_sink_analysis_shards(m, pattern, eot, line_end, gpt_probe_set(probes, "probes"), N, T, k, eps, r);
    return r;
}
// The probe set's description; *skipped gets the document starts passed over.
const char* capi_sink_probes(const SinkReport* r, long* skipped) {
    *skipped = r->probes_skipped;
    return r->probes;
}
