// The GPT model: its tensors, forward, backward, optimizer step, decoding and files. ONE graph
// (model/gpt.c), written once, calling a kernel set (model/kernels.h). Follows llm.c's train_gpt2.c:
// pre-LayerNorm blocks, learned token and position embeddings, causal attention, GELU MLP of width
// 4C, final LayerNorm, LM head tied to wte, vocabulary padded to Vp; the token mixer and its options,
// and the block's (RMSNorm, no linear biases, untied head, erf GELU, SwiGLU, the MLP width), come from
// the config (model/config.h; docs/MODEL.md). The tensor layout is derived from the
// registry in model/tensors.c.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/floatx.h"
#include "model/config.h"
#include "model/kernels.h"
#include "model/sink_metric.h"

// The parameter tensors: llm.c's 16 in its checkpoint order, then the mixers' extras; the rows of
// the registry in model/tensors.c say their shapes, init and when they exist (NULL when not).
typedef struct {
    floatX* wte;          // (Vp, C)
    floatX* wpe;          // (maxT, C)     learned positions; none with RoPE or ALiBi
    floatX* ln1w;         // (L, C)
    floatX* ln1b;         // (L, C)        none with RMSNorm (ln=rms), as ln2b and lnfb
    floatX* qkvw;         // (L, 3C, C)
    floatX* qkvb;         // (L, 3C)       none with linbias=0, as attprojb, fcb and fcprojb
    floatX* attprojw;     // (L, C, C)
    floatX* attprojb;     // (L, C)
    floatX* ln2w;         // (L, C)
    floatX* ln2b;         // (L, C)
    floatX* fcw;          // (L, F, C)     F = hidden (4C by default), 2 hidden with SwiGLU: [W_gate; W_up]
    floatX* fcb;          // (L, F)
    floatX* fcprojw;      // (L, C, hidden)
    floatX* fcprojb;      // (L, C)
    floatX* lnfw;         // (C)
    floatX* lnfb;         // (C)
    floatX* gatew;        // (L, G, C)     G1 gate / mLSTM output gate: G = NH (headwise) or C
    floatX* gateb;        // (L, G)
    floatX* qnormw;       // (L, hs)       QK-norm of q, shared by the heads
    floatX* qnormb;       // (L, hs)
    floatX* knormw;       // (L, hs)       QK-norm of k
    floatX* knormb;       // (L, hs)
    floatX* hybrid_normw; // (L, C)        hybrid norm on the mixer output
    floatX* hybrid_normb; // (L, C)
    floatX* ls_mixer;     // (L, C)        LayerScale of the mixer branch
    floatX* ls_mlp;       // (L, C)        LayerScale of the MLP branch
    floatX* mlstm_gatew;  // (L, 2NH, C)   mLSTM input and forget gate pre-activations
    floatX* mlstm_gateb;  // (L, 2NH)
    floatX* mlstm_normw;  // (L, C)        mLSTM per-head norm weight
    floatX* sink_key;     // (L, NH, hs)   the sink slot's key k*
    floatX* sink_value;   // (L, NH, hs)   ... and value v*
    floatX* sink_logit;   // (L, NH)       ... or its logit
    floatX* lm_head;      // (Vp, C)       the LM head when not tied to wte (tie=0)
} ParameterTensors;

// Saved forward activations (for the backward), for a batch of B x T: floatX tensors and float
// statistics, per layer (L, ...) or once; NULL when the config has no such tensor (model/tensors.c).
typedef struct {
    floatX* encoded;        // (B, T, C)
    floatX* ln1;            // (L, B, T, C)
    float* ln1_mean;        // (L, B, T)      none with RMSNorm, as ln2_mean and lnf_mean
    float* ln1_rstd;        // (L, B, T)
    floatX* qkv_pre;        // (L, B, T, 3C)  the qkv projection before QK-norm
    float* qk_mean;         // (L, B, T, 2NH) QK-norm statistics
    float* qk_rstd;         // (L, B, T, 2NH)
    floatX* qkv;            // (L, B, T, 3C)  q, k, v as the mixer sees them
    floatX* mlstm_gates;    // (L, B, T, 2NH) mLSTM input / forget gate pre-activations
    floatX* mlstm_h;        // (L, B, T, C)   mLSTM cell output before the head norm
    float* mlstm_norm_mean; // (L, B, T, NH)  mLSTM head norm statistics
    float* mlstm_norm_rstd; // (L, B, T, NH)
    float* att_rowstat;     // (L, B, NH, T)  attention: softmax log-sum-exp / normalized sigmoid row sum
    float* mlstm_n;         // (L, B, NH, T)  mLSTM normalizer
    float* mlstm_m;         // (L, B, NH, T)  mLSTM stabilizer
    floatX* mix_out;        // (L, B, T, C)   the mixer's output (mLSTM: after the head norm), before the gate
    floatX* gate_pre;       // (L, B, T, G)   gate pre-activations
    floatX* gated;          // (L, B, T, C)   mix_out * sigmoid(gate_pre)
    floatX* attproj;        // (L, B, T, C)
    floatX* hybrid_norm;    // (L, B, T, C)   hybrid norm of attproj
    float* hybrid_mean;     // (L, B, T)
    float* hybrid_rstd;     // (L, B, T)
    floatX* residual2;      // (L, B, T, C)
    floatX* ln2;            // (L, B, T, C)
    float* ln2_mean;        // (L, B, T)
    float* ln2_rstd;        // (L, B, T)
    floatX* fch;            // (L, B, T, F)   the fc layer's output (F = hidden, or 2 hidden with SwiGLU)
    floatX* fch_gelu;       // (L, B, T, hidden) the MLP's activation: GELU, or SwiGLU's silu(gate) * up
    floatX* fcproj;         // (L, B, T, C)
    floatX* residual3;      // (L, B, T, C)
    floatX* lnf;            // (B, T, C)
    float* lnf_mean;        // (B, T)
    float* lnf_rstd;        // (B, T)
} ActivationTensors;

// Gradients of activations: one layer's worth, reused from the last layer to the first.
typedef struct {
    floatX* dresidual;      // (B, T, C)   gradient of the residual stream, accumulated through the blocks
    floatX* dln;            // (B, T, C)   gradient of a LayerNorm output
    floatX* dbranch;        // (B, T, C)   gradient inside a residual branch (LayerScale)
    floatX* dattproj;       // (B, T, C)   gradient of attproj under the hybrid norm
    floatX* dgated;         // (B, T, C)   gradient of the gate's output (mLSTM: then of the cell output h)
    floatX* dmix_out;       // (B, T, C)
    floatX* dgate_pre;      // (B, T, G)
    floatX* dqkv;           // (B, T, 3C)  gradient of the mixer's q, k, v
    floatX* dqkv_pre;       // (B, T, 3C)  ... before RoPE / QK-norm
    floatX* dmlstm_gates;   // (B, T, 2NH) mLSTM gate pre-activations
    floatX* dfch_gelu;      // (B, T, hidden)
    floatX* dfch;           // (B, T, F)
} GradScratch;

typedef struct {
    GPTConfig config;
    const Kernels* k;
    size_t num_parameters;
    ParameterTensors params, grads;   // views into params_memory / grads_memory
    floatX* params_memory;
    floatX* grads_memory;             // allocated at the first backward
    float* master_memory;             // fp32 master weights when floatX is not float (else NULL)
    float* m_memory;                  // AdamW moments of the parameters [opt_lo, opt_hi), allocated at the
    float* v_memory;                  // first update
    size_t opt_lo, opt_hi;            // the parameters this model's AdamW updates: all, or a ZeRO-1 shard
    // activations, sized for batches up to (max_B, max_T) by the first forward that needs them
    int max_B, max_T;
    int B, T;                         // the last forward's batch (the backward's)
    ActivationTensors acts;
    void* acts_memory;
    GradScratch scratch;
    void* scratch_memory;
    floatX* logits;                   // (B, T, Vp); becomes dlogits in the backward
    float* losses;                    // (B, T)
    int* inputs;                      // (B, T) kernel memory
    int* targets;                     // (B, T)
    floatX* kv_cache;                 // (L, maxT, 3C): the qkv rows of a decoded sequence (B = 1)
    float* mlstm_state;               // (L, NH, hs*hs + hs + 1): mLSTM C, n, m of a decoded sequence
    // streaming decoding (gpt_stream_begin): kv_cache rows 0..sinks-1 hold the first tokens, rows
    // sinks..sinks+window-1 a ring of the last ones (before RoPE); stream_rows is one layer's cache
    // in cache order, as the attention reads it (rotated by cache index with RoPE)
    int stream_sinks, stream_window;
    long stream_fed;                  // tokens fed since gpt_stream_begin
    floatX* stream_rows;              // (sinks + window, 3C)
    float* losses_host;               // (B, T)
    float* logits_host;               // (Vp): the last decoded position
    float* step_losses;               // (micros, B, T) kernel memory: gpt_forward_micro's losses
    float* step_losses_host;          // the same on the host, for gpt_step_loss
    size_t step_losses_count;         // elements allocated in each
    int step_micros, step_N;          // the micro-batches of the step so far and their B*T
    float mean_loss;                  // of the last forward with targets (NAN after gpt_forward_micro: on the device)
    // Called by gpt_backward once layer l's parameter gradients are final (from layer L-1 down to 0),
    // when set: where data parallelism starts reducing them while the layers below run backward.
    void (*on_layer_grads)(void* ctx, int layer);
    void* on_layer_grads_ctx;
} GPT;

// The number of parameters of a config (nothing allocated).
size_t gpt_num_parameters(const GPTConfig* config);
// Allocates parameters for a config (uninitialized); fails if the kernel set cannot run it.
void gpt_build(GPT* model, const GPTConfig* config, const Kernels* k);
// The init of the weight matrices, embeddings and LM head (docs/MODEL.md section 3). GPT2: llm.c's
// N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)). NEOX: GPT-NeoX's small init N(0, sqrt(2/5C))
// and residual projections N(0, 1/(L sqrt(C))), as TinyLlama (the sink paper's code) has it.
typedef enum { INIT_SCHEME_GPT2 = 0, INIT_SCHEME_NEOX = 1 } InitScheme;
// A scheme by name (gpt2, neox); fails with one line naming the flag on another.
InitScheme gpt_init_scheme(const char* name, const char* flag);
// Each parameter tensor's init from the registry: the scheme's for the weight matrices, embeddings
// and LM head; norms 1/0, biases 0 and the mixers' own whatever the scheme.
void gpt_init_random(GPT* model, uint64_t seed, InitScheme scheme);
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
// The training form of gpt_forward (targets required): the same forward and losses, without waiting for
// them: the losses of micro-batch `micro` (0, 1, ... of the step's `micros`) stay in kernel memory, and
// gpt_step_loss brings the whole step's at once and returns the mean over the micro-batches of their
// mean losses (as the sum of gpt_forward(...) / micros gives, bit for bit). A backward may follow each.
void gpt_forward_micro(GPT* model, const int* inputs, const int* targets, int B, int T, int micro, int micros);
double gpt_step_loss(GPT* model);
void gpt_zero_grad(GPT* model);
// Backward of the last forward (which must have had targets), over its B x T; dloss = weight of each token's loss,
// 1/(B*T*grad_accum_steps) for a mean over the global batch. Accumulates into the parameter grads.
void gpt_backward(GPT* model, float dloss);
// The slices of the parameters (offsets and counts in elements, into params_memory or grads_memory)
// that layer l owns, or with l = -1 those of no layer (embeddings, final norm): returns how many, at
// most GPT_MAX_PARAM_SLICES.
enum { GPT_MAX_PARAM_SLICES = 64 };
int gpt_layer_param_slices(const GPT* model, int l, size_t* offsets, size_t* counts);
// Global-norm clipping (clip <= 0: none) and AdamW, with weight decay on the 2-D tensors only (as
// llm.c) or, with decay_all, on every parameter. step counts from 1. Returns the gradient norm
// before clipping.
float gpt_update(GPT* model, float lr, float beta1, float beta2, float eps, float weight_decay, int decay_all,
                 float grad_clip, int step);
// The update in its parts, for data parallelism (train.c): the squared norm of the gradients in
// [lo, hi); the parameters the AdamW step updates and keeps moments for ([0, num_parameters) unless
// set, before the first update, to a ZeRO-1 shard); the AdamW step itself with its gradient scale.
float gpt_grad_norm_squared(GPT* model, size_t lo, size_t hi);
void gpt_set_optimizer_shard(GPT* model, size_t lo, size_t hi);
void gpt_adamw_step(GPT* model, float lr, float beta1, float beta2, float eps, float weight_decay, int decay_all,
                    float grad_scale, int step);
// Incremental decoding of one sequence (B = 1) with the KV cache: feeds the T tokens at positions
// pos0 .. pos0+T-1 (earlier positions must already be in the cache) and returns the logits of the
// last one (host pointer into model->logits on the CPU; Vp floats, first V real).
const float* gpt_decode(GPT* model, const int* tokens, int T, int pos0);

// Streaming decoding past maxT with constant memory (StreamingLLM; docs/STREAMING.md, docs/MODEL.md
// section 12): the KV cache keeps the q, k, v rows of the first `sinks` tokens and of the last
// `window` tokens (sinks + window <= maxT), evicting the oldest of the window, and positions are taken
// within the cache: RoPE rotates the cached rows by their cache index at every step, ALiBi measures
// distances within the cache. mLSTM streams with its recurrent state (sinks and window do not apply;
// past maxT its learned positions stay at the last one, wpe[maxT-1]). A model with learned positions
// and attention cannot stream: gpt_stream_refusal says why (NULL: it can, with these sizes).
const char* gpt_stream_refusal(const GPTConfig* config, int sinks, int window);
// Starts a new stream (fails with gpt_stream_refusal's line); allocates everything the stream needs,
// so that gpt_stream_decode allocates nothing that it keeps.
void gpt_stream_begin(GPT* model, int sinks, int window);
// Feeds the stream's next token and returns its logits (as gpt_decode).
const float* gpt_stream_decode(GPT* model, int token);

// The attention-sink analysis (model/analysis.c; docs/MODEL.md section 13) of N sequences of T >= 2
// tokens (host ids, N x T): forwards them in batches and accumulates every layer's and head's weights
// (or their proxy), residual stream and gates into r (initialized here; free with sink_report_free).
// k is the 0-indexed key of Sink_k; eps its threshold. The model is not changed.
void gpt_sink_analysis(GPT* model, const int* tokens, int N, int T, int k, float eps, SinkReport* r);
// The probe sets of the analysis on shards (docs/SINKS.md): where its sequences start.
typedef enum { PROBES_AUTO = 0, PROBES_DOCUMENTS = 1, PROBES_LINES = 2 } ProbeSet;
// "auto", "doc" or "line" (the -sp flag of train_gpt2 and infer); fails with one line naming `flag`.
ProbeSet gpt_probe_set(const char* name, const char* flag);
// The same on the first N probe sequences of T tokens of the shards of pattern (docs/SINKS.md). A
// model trained with a BOS (bos=1 or window) sees the end-of-text token eot first, then T-1 tokens;
// a model without (bos=0) T tokens. They start at document starts (PROBES_DOCUMENTS: after an
// end-of-text token; starts whose window holds another end-of-text token are passed over) or at line
// starts (PROBES_LINES: after a token line_end marks, vocab_size flags, NULL: byte 10 when V = 257;
// windows not overlapping, end-of-text tokens inside kept); PROBES_AUTO is line starts for bos=window
// and document starts otherwise. Fails with one line when the shards hold fewer than N such sequences.
void gpt_sink_analysis_shards(GPT* model, const char* pattern, int eot, const unsigned char* line_end,
                              ProbeSet probes, int N, int T, int k, float eps, SinkReport* r);

// Checkpoints (model/checkpoint.c): llm.c's model file (version 3 fp32 written; 3 and 5 read), with
// the checksum of the whole file in header slots 14-15 (docs/FORMATS.md: required in the files attnlab
// writes, absent in llm.c's). Both return that checksum.
// Loading fails with one line on a truncated, corrupt or foreign file, or on NaN / infinite values;
// saving refuses NaN / infinite parameters (a diverged run never overwrites a good checkpoint).
uint64_t gpt_load_checkpoint(GPT* model, const char* path, const Kernels* k);
uint64_t gpt_save_checkpoint(const GPT* model, const char* path);
// The config a checkpoint file holds (its header only).
GPTConfig gpt_checkpoint_config(const char* path);

// Training state for resuming (model/checkpoint.c; docs/FORMATS.md): everything besides the
// parameters that an uninterrupted run would have in memory, and what a resumed run must not change.
typedef struct {
    int step;                         // steps completed
    int epoch, shard_pos, sample_pos; // the train loader's position
    uint64_t rng_state;               // the sampling RNG
    int B, T, total_batch, seed;      // the run's settings (-b -t -d -S)
    int ranks;                        // data-parallel ranks (-ng): a loader position means R x B sequences
    uint64_t model_checksum;          // of the model file of the same step: the pair belongs together
    uint64_t data_checksum;           // of the train shards' glob (-i)
} TrainState;
// The state with the AdamW moments m, v of all num_parameters (kernel memory: the model's own, or
// gathered from the ranks' ZeRO-1 shards).
void gpt_save_state(const GPT* model, const TrainState* state, const float* m, const float* v, const char* path);
// Loads the state and the moments of the model's optimizer shard (all of them unless set).
void gpt_load_state(GPT* model, TrainState* state, const char* path);
// The state's fields, before any model exists (the whole file is checked, the moments are not kept).
TrainState gpt_read_state(const char* path);
// The step of the newest checkpoint in dir whose model and state files are both complete, agree with
// their checksums and belong together (-1: none); the ones it passes over get a note on stderr.
int gpt_latest_checkpoint(const char* dir);
// Removes the temporaries (*.tmp) an interrupted write left in dir.
void gpt_remove_temporaries(const char* dir);
// Deletes all but the newest `keep` checkpoint pairs (model_N.bin, state_N.bin) in dir.
void gpt_prune_checkpoints(const char* dir, int keep);
