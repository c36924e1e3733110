// GPT-2: config, parameter and activation layout, forward, backward, optimizer step.
// ONE graph, written once, calling a kernel set (model/kernels.h). Follows llm.c's train_gpt2.c
// layout: pre-LayerNorm blocks, learned token and position embeddings, causal attention,
// GELU MLP of width 4C, final LayerNorm, LM head tied to wte, vocabulary padded to Vp.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "model/kernels.h"

typedef struct {
    int max_seq_len;        // maxT
    int vocab_size;         // V
    int padded_vocab_size;  // Vp, a multiple of 128 so the LM head matmul is aligned
    int num_layers;         // L
    int num_heads;          // NH
    int channels;           // C
} GPTConfig;

// The 16 parameter tensors, in llm.c's checkpoint order.
#define NUM_PARAMETER_TENSORS 16
typedef struct {
    float* wte;      // (Vp, C)
    float* wpe;      // (maxT, C)
    float* ln1w;     // (L, C)
    float* ln1b;     // (L, C)
    float* qkvw;     // (L, 3C, C)
    float* qkvb;     // (L, 3C)
    float* attprojw; // (L, C, C)
    float* attprojb; // (L, C)
    float* ln2w;     // (L, C)
    float* ln2b;     // (L, C)
    float* fcw;      // (L, 4C, C)
    float* fcb;      // (L, 4C)
    float* fcprojw;  // (L, C, 4C)
    float* fcprojb;  // (L, C)
    float* lnfw;     // (C)
    float* lnfb;     // (C)
} ParameterTensors;

// Saved forward activations (for the backward), for a batch of B x T.
#define NUM_ACTIVATION_TENSORS 19
typedef struct {
    float* encoded;   // (B, T, C)
    float* ln1;       // (L, B, T, C)
    float* ln1_mean;  // (L, B, T)
    float* ln1_rstd;  // (L, B, T)
    float* qkv;       // (L, B, T, 3C)
    float* atty;      // (L, B, T, C)   attention output, before the projection
    float* att_lse;   // (L, B, NH, T)  log-sum-exp of each score row
    float* attproj;   // (L, B, T, C)
    float* residual2; // (L, B, T, C)
    float* ln2;       // (L, B, T, C)
    float* ln2_mean;  // (L, B, T)
    float* ln2_rstd;  // (L, B, T)
    float* fch;       // (L, B, T, 4C)
    float* fch_gelu;  // (L, B, T, 4C)
    float* fcproj;    // (L, B, T, C)
    float* residual3; // (L, B, T, C)
    float* lnf;       // (B, T, C)
    float* lnf_mean;  // (B, T)
    float* lnf_rstd;  // (B, T)
} ActivationTensors;

// Gradients of activations: one layer's worth, reused from the last layer to the first.
typedef struct {
    float* dresidual; // (B, T, C)   gradient of the residual stream, accumulated through the blocks
    float* dln;       // (B, T, C)   gradient of a LayerNorm output
    float* datty;     // (B, T, C)
    float* dqkv;      // (B, T, 3C)
    float* dfch_gelu; // (B, T, 4C)
    float* dfch;      // (B, T, 4C)
} GradScratch;

typedef struct {
    GPTConfig config;
    const Kernels* k;
    size_t param_sizes[NUM_PARAMETER_TENSORS];
    size_t num_parameters;
    ParameterTensors params, grads;   // views into params_memory / grads_memory
    float* params_memory;
    float* grads_memory;              // allocated at the first backward
    float* m_memory;                  // AdamW moments, allocated at the first update
    float* v_memory;
    // activations, sized for (batch_size, seq_len) at the first forward that needs them
    int batch_size, seq_len;
    ActivationTensors acts;
    float* acts_memory;
    GradScratch scratch;
    float* scratch_memory;
    float* logits;                    // (B, T, Vp); becomes dlogits in the backward
    float* losses;                    // (B, T)
    int* inputs;                      // (B, T) kernel memory
    int* targets;                     // (B, T)
    float* kv_cache;                  // (L, maxT, 3C): the qkv rows of a decoded sequence (B = 1)
    float* losses_host;               // (B, T)
    float* logits_host;               // (Vp): the last decoded position
    float mean_loss;                  // of the last forward with targets
} GPT;

// Parses a model descriptor: "d12" / "gpt2:d12" (llm.c's GPT-2 family, maxT 1024, V 50257) or
// "L=4,C=128,H=4,T=256,V=257[,Vp=384]". Fails with one line on an unknown key or a bad value.
GPTConfig gpt_config_from_descriptor(const char* descriptor);
// Checks a config (H divides C, all sizes positive, Vp >= V); fails naming `what` (a file or descriptor).
void gpt_config_validate(const GPTConfig* c, const char* what);
// Allocates parameters for a config (uninitialized).
void gpt_build(GPT* model, const GPTConfig* config, const Kernels* k);
// llm.c's init: N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)), LayerNorm 1/0, biases 0.
void gpt_init_random(GPT* model, uint64_t seed);
void gpt_free(GPT* model);

// Sizes the activations for batches up to (B, T) ahead of time (else the first forward does).
void gpt_reserve(GPT* model, int B, int T);

// Forward over inputs (B,T) (host ids). With targets (host, may be NULL) computes the losses and
// returns their mean (else returns -1). Logits stay in model->logits.
float gpt_forward(GPT* model, const int* inputs, const int* targets, int B, int T);
void gpt_zero_grad(GPT* model);
// Backward of the last forward (which must have had targets); dloss = weight of each token's loss,
// 1/(B*T*grad_accum_steps) for a mean over the global batch. Accumulates into the parameter grads.
void gpt_backward(GPT* model, float dloss);
// Global-norm clipping (clip <= 0: none) and AdamW (weight decay on 2-D tensors only, as llm.c).
// step counts from 1. Returns the gradient norm before clipping.
float gpt_update(GPT* model, float lr, float beta1, float beta2, float eps, float weight_decay,
                 float grad_clip, int step);
// Incremental decoding of one sequence (B = 1) with the KV cache: feeds the T tokens at positions
// pos0 .. pos0+T-1 (earlier positions must already be in the cache) and returns the logits of the
// last one (host pointer into model->logits on the CPU; Vp floats, first V real).
const float* gpt_decode(GPT* model, const int* tokens, int T, int pos0);

// Checkpoints (model/checkpoint.c): llm.c's model file (version 3 fp32 written; 3 and 5 read).
void gpt_load_checkpoint(GPT* model, const char* path, const Kernels* k);
void gpt_save_checkpoint(const GPT* model, const char* path);
// Parameter tensors that get weight decay (the 2-D ones).
int gpt_param_decays(int tensor_index);

// Training state for resuming (model/checkpoint.c): everything besides the parameters that an
// uninterrupted run would have in memory. File: 256 int32 header (magic 20240527, version 1,
// step, loader epoch / shard / sample, RNG state, parameter count), then AdamW m and v (fp32).
typedef struct {
    int step;                        // steps completed
    int epoch, shard_pos, sample_pos; // the train loader's position
    uint64_t rng_state;              // the sampling RNG
} TrainState;
void gpt_save_state(const GPT* model, const TrainState* state, const char* path);
void gpt_load_state(GPT* model, TrainState* state, const char* path);
