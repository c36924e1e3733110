// Entry points for the Python tests (test/clib.py): whole-model calls on an opaque GPT handle,
// so a test can compare losses, gradients, updates and decoding against PyTorch.
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "model/gpt.h"

GPT* capi_load(const char* path) {
    GPT* m = malloc_check(sizeof(GPT));
    gpt_load_checkpoint(m, path, default_kernels());
    return m;
}

GPT* capi_random(const char* descriptor, int seed) {
    GPT* m = malloc_check(sizeof(GPT));
    GPTConfig c = gpt_config_from_descriptor(descriptor);
    gpt_build(m, &c, default_kernels());
    gpt_init_random(m, (uint64_t)seed);
    return m;
}

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

float capi_update(GPT* m, float lr, float beta1, float beta2, float eps, float wd, float clip, int step) {
    return gpt_update(m, lr, beta1, beta2, eps, wd, clip, step);
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
