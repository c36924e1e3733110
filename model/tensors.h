// The tensor registry (model/tensors.c): one table per group of tensors (parameters, saved
// activations, backward scratch) with each tensor's name, shape as a function of the config (and of
// B, T), element type, weight decay, init and when it exists. Sizes, offsets, alignment, the named
// views of gpt.h, per-layer views, init, the parameter count, the checkpoint's tensor order and the
// per-tensor ranges of the optimizer are all derived from it. Internal to model/.
#pragma once
#include <stddef.h>

#include "model/gpt.h"

#ifdef __cplusplus
extern "C" {
#endif

// One parameter tensor's place in params_memory (and grads, master weights, AdamW moments).
typedef struct {
    const char* name;
    size_t offset, numel;   // in elements; numel 0 when the config has no such tensor
    int decays;             // AdamW weight decay applies (the 2-D tensors)
} ParamRange;

int gpt_num_param_tensors(void);
ParamRange gpt_param_range(const GPT* model, int i);

// The tensors of layer l: each per-layer pointer moved to its layer's slice, the others unchanged.
ParameterTensors gpt_layer_params(const GPT* model, const ParameterTensors* all, int l);
ActivationTensors gpt_layer_acts(const GPT* model, int l);

// host (n floats) = src (n floatX in kernel memory).
void gpt_download_floats(const GPT* model, float* host, const floatX* src, size_t n);

// Allocates the activations and scratch for batches up to (B, T) (reallocating only to grow).
void gpt_ensure_activations(GPT* model, int B, int T);
// Allocates the gradients (zeroed) at the first call.
void gpt_ensure_grads(GPT* model);
// Allocates the KV cache or mLSTM state for decoding at the first call.
void gpt_ensure_decode_state(GPT* model);
// Bytes of the decoding state: the KV cache (L, maxT, 3C) floatX, or the mLSTM C, n, m (L, NH, hs*hs + hs + 1) fp32.
size_t gpt_decode_state_bytes(const GPTConfig* c);

#ifdef __cplusplus
}
#endif
