// GPT-2: config, parameter and activation layout, forward, backward, optimizer step.
// ONE graph, written once, calling a kernel set (model/kernels.h). Follows llm.c's train_gpt2.c
// layout: pre-LayerNorm blocks, learned token and position embeddings, causal attention,
// GELU MLP of width 4C, final LayerNorm, LM head tied to wte, vocabulary padded to Vp.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/floatx.h"
#include "model/kernels.h"

typedef enum { MIXER_SOFTMAX = 0, MIXER_SIGMOID = 1, MIXER_MLSTM = 2 } MixerKind;
typedef enum { GATE_NONE = 0, GATE_HEAD = 1, GATE_ELEM = 2 } GateKind;
typedef enum { IGATE_EXP = 0, IGATE_SIG = 1 } InputGateKind;

typedef struct {
    int max_seq_len;        // maxT
    int vocab_size;         // V
    int padded_vocab_size;  // Vp, a multiple of 128 so the LM head matmul is aligned
    int num_layers;         // L
    int num_heads;          // NH
    int channels;           // C
    // the token mixer (METHODS.md; all zero = llm.c's GPT-2)
    int mixer;              // MixerKind
    float sigmoid_bias;     // b in sigmoid(q.k/sqrt(d) + b); default -ln(maxT)
    int sigmoid_norm;       // 1: divide each sigmoid row by its sum + 1e-8
    int gate;               // GateKind: G1 gate on the mixer output (mLSTM's output gate is GATE_ELEM)
    int rope;               // 1: RoPE on q and k instead of learned positions (no wpe)
    int qknorm;             // 1: per-head LayerNorm on q and k (before RoPE)
    int hybrid_norm;        // 1: LayerNorm on the mixer output before the residual add
    int layerscale;         // 1: learned per-channel scale on both residual branches (init 1e-4)
    int mlstm_igate;        // InputGateKind: mLSTMexp or mLSTMsig
    int mlstm_chunk;        // chunk size of the chunkwise mLSTM (training path)
} GPTConfig;

// The parameter tensors: llm.c's 16 in its checkpoint order, then the mixers' extras. A tensor
// a config does not use has size 0 (and so takes no bytes in the checkpoint either).
#define NUM_PARAMETER_TENSORS 29
#define NUM_GPT2_TENSORS 16
// Index of each tensor in ParameterTensors order.
enum {
    P_WTE, P_WPE, P_LN1W, P_LN1B, P_QKVW, P_QKVB, P_ATTPROJW, P_ATTPROJB, P_LN2W, P_LN2B, P_FCW, P_FCB, P_FCPROJW,
    P_FCPROJB, P_LNFW, P_LNFB, P_GATEW, P_GATEB, P_QNORMW, P_QNORMB, P_KNORMW, P_KNORMB, P_LNHW, P_LNHB, P_LS1,
    P_LS2, P_IFW, P_IFB, P_HNORMW,
};
typedef struct {
    floatX* wte;      // (Vp, C)
    floatX* wpe;      // (maxT, C); 0 with RoPE
    floatX* ln1w;     // (L, C)
    floatX* ln1b;     // (L, C)
    floatX* qkvw;     // (L, 3C, C)
    floatX* qkvb;     // (L, 3C)
    floatX* attprojw; // (L, C, C)
    floatX* attprojb; // (L, C)
    floatX* ln2w;     // (L, C)
    floatX* ln2b;     // (L, C)
    floatX* fcw;      // (L, 4C, C)
    floatX* fcb;      // (L, 4C)
    floatX* fcprojw;  // (L, C, 4C)
    floatX* fcprojb;  // (L, C)
    floatX* lnfw;     // (C)
    floatX* lnfb;     // (C)
    floatX* gatew;    // (L, G, C)   G1 gate / mLSTM output gate: G = NH (headwise) or C
    floatX* gateb;    // (L, G)
    floatX* qnormw;   // (L, hs)     QK-norm, shared by the heads
    floatX* qnormb;   // (L, hs)
    floatX* knormw;   // (L, hs)
    floatX* knormb;   // (L, hs)
    floatX* lnhw;     // (L, C)      hybrid norm on the mixer output
    floatX* lnhb;     // (L, C)
    floatX* ls1;      // (L, C)      LayerScale of the mixer branch
    floatX* ls2;      // (L, C)      LayerScale of the MLP branch
    floatX* ifw;      // (L, 2NH, C) mLSTM input and forget gate pre-activations
    floatX* ifb;      // (L, 2NH)
    floatX* hnormw;   // (L, C)      mLSTM per-head norm weight
} ParameterTensors;

// Saved forward activations (for the backward), for a batch of B x T: floatX tensors and float
// statistics. Tensors a config does not use have size 0.
#define NUM_ACTIVATION_TENSORS 32
typedef struct {
    floatX* encoded;   // (B, T, C)
    floatX* ln1;       // (L, B, T, C)
    float* ln1_mean;  // (L, B, T)
    float* ln1_rstd;  // (L, B, T)
    floatX* qkv_pre;   // (L, B, T, 3C)  qkv projection before QK-norm (QK-norm only)
    float* qk_mean;   // (L, B, T, 2NH) QK-norm statistics
    float* qk_rstd;   // (L, B, T, 2NH)
    floatX* qkv;       // (L, B, T, 3C)  q, k, v as the mixer sees them
    floatX* mix_gates; // (L, B, T, 2NH) mLSTM input/forget pre-activations
    floatX* mix_h;     // (L, B, T, C)   mLSTM cell output before the head norm
    float* hn_mean;   // (L, B, T, NH)  mLSTM head norm statistics
    float* hn_rstd;   // (L, B, T, NH)
    float* att_stat;  // (L, B, NH, T)  softmax LSE / sigmoid row sum / mLSTM normaliser
    float* att_m;     // (L, B, NH, T)  mLSTM stabiliser
    floatX* atty;      // (L, B, T, C)   mixer output (after the mLSTM head norm), before the gate
    floatX* gate_pre;  // (L, B, T, G)   gate pre-activations
    floatX* gated;     // (L, B, T, C)   atty * sigmoid(gate_pre)
    floatX* attproj;   // (L, B, T, C)
    floatX* lnh;       // (L, B, T, C)   hybrid norm of attproj
    float* lnh_mean;  // (L, B, T)
    float* lnh_rstd;  // (L, B, T)
    floatX* residual2; // (L, B, T, C)
    floatX* ln2;       // (L, B, T, C)
    float* ln2_mean;  // (L, B, T)
    float* ln2_rstd;  // (L, B, T)
    floatX* fch;       // (L, B, T, 4C)
    floatX* fch_gelu;  // (L, B, T, 4C)
    floatX* fcproj;    // (L, B, T, C)
    floatX* residual3; // (L, B, T, C)
    floatX* lnf;       // (B, T, C)
    float* lnf_mean;  // (B, T)
    float* lnf_rstd;  // (B, T)
} ActivationTensors;

// Gradients of activations: one layer's worth, reused from the last layer to the first.
#define NUM_SCRATCH_TENSORS 12
typedef struct {
    floatX* dresidual; // (B, T, C)   gradient of the residual stream, accumulated through the blocks
    floatX* dln;       // (B, T, C)   gradient of a LayerNorm output
    floatX* dbranch;   // (B, T, C)   gradient inside a residual branch (LayerScale / hybrid norm)
    floatX* dattproj;  // (B, T, C)
    floatX* dgated;    // (B, T, C)
    floatX* datty;     // (B, T, C)
    floatX* dgate_pre; // (B, T, G)
    floatX* dqkv;      // (B, T, 3C)  gradient of the mixer's q, k, v
    floatX* dqkv_pre;  // (B, T, 3C)  ... before RoPE / QK-norm
    floatX* dgates;    // (B, T, 2NH) mLSTM gate pre-activations
    floatX* dfch_gelu; // (B, T, 4C)
    floatX* dfch;      // (B, T, 4C)
} GradScratch;

typedef struct {
    GPTConfig config;
    const Kernels* k;
    size_t param_sizes[NUM_PARAMETER_TENSORS];
    size_t num_parameters;
    ParameterTensors params, grads;   // views into params_memory / grads_memory
    floatX* params_memory;
    floatX* grads_memory;             // allocated at the first backward
    float* master_memory;             // fp32 master weights when floatX is not float (else NULL)
    float* m_memory;                  // AdamW moments, allocated at the first update
    float* v_memory;
    // activations, sized for (batch_size, seq_len) at the first forward that needs them
    int batch_size, seq_len;
    ActivationTensors acts;
    void* acts_memory;
    GradScratch scratch;
    floatX* scratch_memory;
    floatX* logits;                   // (B, T, Vp); becomes dlogits in the backward
    float* losses;                    // (B, T)
    int* inputs;                      // (B, T) kernel memory
    int* targets;                     // (B, T)
    floatX* kv_cache;                 // (L, maxT, 3C): the qkv rows of a decoded sequence (B = 1)
    float* mlstm_state;               // (L, NH, hs*hs + hs + 1): mLSTM C, n, m of a decoded sequence
    float* losses_host;               // (B, T)
    float* logits_host;               // (Vp): the last decoded position
    float mean_loss;                  // of the last forward with targets
} GPT;

// Parses a model descriptor: "d12" / "gpt2:d12" (llm.c's GPT-2 family, maxT 1024, V 50257) or
// "L=4,C=128,H=4,T=256,V=257[,Vp=384]", either followed by mixer keys (",mixer=sigmoid,gate=elem";
// README lists them). Fails with one line on an unknown key or a bad value.
GPTConfig gpt_config_from_descriptor(const char* descriptor);
// Checks a config (H divides C, all sizes positive, Vp >= V); fails naming `what` (a file or descriptor).
void gpt_config_validate(const GPTConfig* c, const char* what);
// Allocates parameters for a config (uninitialized).
void gpt_build(GPT* model, const GPTConfig* config, const Kernels* k);
// llm.c's init: N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)), LayerNorm 1/0, biases 0.
void gpt_init_random(GPT* model, uint64_t seed);
void gpt_free(GPT* model);

// Parameters from / to host floats (the fp32 master weights when floatX is not float).
void gpt_set_parameters(GPT* model, const float* host);
void gpt_get_parameters(const GPT* model, float* host);
// The parameter gradients (num_parameters) as host floats.
void gpt_get_gradients(const GPT* model, float* host);
// Row `row` of the logits of the last forward, as Vp host floats (the first V are real).
void gpt_get_logits(const GPT* model, size_t row, float* out);

// What training at (B, T) takes, in bytes (decode: the KV cache or mLSTM state that sampling adds);
// `allocated` is the part of `total` the model holds already (the parameters and master weights
// once loaded), so `total - allocated` is what is still to come.
typedef struct {
    size_t params, grads, master, optimizer, activations, grad_scratch, logits, decode, total, allocated;
} MemoryPlan;
MemoryPlan gpt_memory_plan(const GPT* model, int B, int T, bool sampling);

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
