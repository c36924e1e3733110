// The model's configuration: sizes and the token mixer with its options (docs/MODEL.md). Every
// field is a row of the option table in model/config.c, which derives from it the descriptor
// parsing ("L=4,C=128,...,mixer=sigmoid"), the validation, the checkpoint header slots, the model
// line printed at start and `-e help`. Adding an option: docs/DEVELOPING.md.
#pragma once
#include <stdio.h>

#include "model/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { MIXER_SOFTMAX = 0, MIXER_SIGMOID = 1, MIXER_MLSTM = 2 } MixerKind;
typedef enum { GATE_NONE = 0, GATE_HEAD = 1, GATE_ELEM = 2 } GateKind;
typedef enum { IGATE_EXP = 0, IGATE_SIG = 1 } InputGateKind;
typedef enum { NORM_LAYER = 0, NORM_RMS = 1 } BlockNormKind;
typedef enum { GELU_TANH = 0, GELU_ERF = 1 } GeluKind;
typedef enum { MLP_GELU = 0, MLP_SWIGLU = 1 } MlpKind;
// the data layout (data/shards.h's DataLayout has the same values): fixed windows, documents, BOS windows
typedef enum { BOS_OFF = 0, BOS_DOCUMENTS = 1, BOS_WINDOW = 2 } BosKind;

typedef struct {
    int max_seq_len;        // T: maxT
    int vocab_size;         // V
    int padded_vocab_size;  // Vp, a multiple of 128 by default so the LM head matmul is aligned
    int num_layers;         // L
    int num_heads;          // H: NH
    int channels;           // C
    // the token mixer (all at their defaults: llm.c's GPT-2)
    int mixer;              // MixerKind
    float sigmoid_bias;     // b in sigmoid(q.k/sqrt(d) + b); default -ln(maxT)
    int sigmoid_norm;       // 1: divide each sigmoid row by its sum + 1e-8
    int gate;               // GateKind: G1 gate on the mixer output (mLSTM's output gate is GATE_ELEM)
    int rope;               // 1: RoPE on q and k instead of learned positions (no wpe)
    int alibi;              // 1: ALiBi's distance penalty on the scores instead of learned positions (no wpe)
    int qknorm;             // 1: per-head LayerNorm on q and k (before RoPE)
    int hybrid_norm;        // 1: LayerNorm on the mixer output before the residual add
    int layerscale;         // 1: learned per-channel scale on both residual branches (init 1e-4)
    int mlstm_igate;        // InputGateKind: mLSTMexp or mLSTMsig
    int mlstm_chunk;        // chunk size of the chunkwise mLSTM (training path)
    int sink;               // SinkKind: an extra key slot of softmax attention
    int bos;                // BosKind: how training sequences start (a document's end-of-text token, or a BOS)
    // the block (all at their defaults: GPT-2's; the sink paper's block is ln=rms,linbias=0,tie=0,gelu=erf)
    int block_norm;         // BlockNormKind of ln1, ln2 and lnf (the hybrid norm and QK-norm stay LayerNorm)
    int no_linear_bias;     // 1: no biases in the qkv, attproj, fc and fcproj layers (key linbias=0)
    int untied_head;        // 1: the LM head is a matrix of its own, lm_head, not wte (key tie=0)
    int gelu;               // GeluKind of the GELU MLP
    int mlp;                // MlpKind
    int mlp_hidden;         // the MLP width: default 4C (gelu), 8C/3 rounded up to a multiple of 64 (swiglu)
} GPTConfig;

// Parses a model descriptor: "d12" / "gpt2:d12" (llm.c's GPT-2 family, maxT 1024, V 50257) or
// "L=4,C=128,H=4,T=256,V=257", either followed by mixer keys (",mixer=sigmoid,gate=elem").
// Validates the result; fails with one line on an unknown key or a bad value.
GPTConfig gpt_config_from_descriptor(const char* descriptor);
// Checks every option's range and rule; fails naming `what` (a file or a descriptor).
void gpt_config_validate(const GPTConfig* c, const char* what);
// A descriptor that gives this config: the sizes, then each option that is not at its default.
void gpt_config_describe(const GPTConfig* c, char* out, size_t n);
// Every descriptor key with its values, default and meaning (`-e help`).
void gpt_config_help(FILE* out);
// Fails with one line if the kernel set lacks a kernel the config needs (the CUDA set, say).
void gpt_config_check_kernels(const GPTConfig* c, const Kernels* k);

// The checkpoint header (256 int32; docs/FORMATS.md): slots 2-7 hold llm.c's sizes (all llm.c reads);
// the mixer options go in slots 18.. behind attnlab's marker and settings version in slots 16-17,
// which every file attnlab writes has. A file without the marker (llm.c's) is GPT-2. Reading fails
// on a slot this build does not know, naming `path`.
void gpt_config_write_header(int* header, const GPTConfig* c);
GPTConfig gpt_config_read_header(const int* header, const char* path);
// The header's attnlab settings version: 0 without the marker (llm.c's file), else 1 or 2 (2: the file
// checksum covers the whole file and is required; model/checkpoint.c).
int gpt_config_header_version(const int* header);

// The G1 gate's width: NH (headwise), C (elementwise) or 0 (none).
int gpt_gate_width(const GPTConfig* c);
// The fc layer's output width: the MLP width, twice it for SwiGLU (its gate and up halves).
int gpt_fc_width(const GPTConfig* c);
// How the attention kernels turn the config's scores into weights.
AttnScore gpt_attn_score(const GPTConfig* c);

#ifdef __cplusplus
}
#endif
