// The option table: one row per descriptor key, from which descriptor parsing, validation, the
// checkpoint header slots, the model line printed at start, `-e help` and the kernel check are
// derived (see config.h). A new option is a row here (docs/DEVELOPING.md).
#include "model/config.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"

typedef enum { OPT_INT, OPT_FLOAT, OPT_CHOICE } OptionType;

typedef struct {
    const char* key;                           // the descriptor key
    size_t field;                              // offsetof(GPTConfig, ...): a float for OPT_FLOAT, else an int
    OptionType type;
    const char* const* choices;                // OPT_CHOICE: the names of the values 0, 1, ...
    double def, min, max;                      // default and allowed range (OPT_CHOICE: of the index)
    int slot;                                  // its int32 slot in the checkpoint header (a float as its bits)
    void (*derive)(GPTConfig* c);              // sets a default that depends on other keys (NULL: def)
    const char* (*rule)(const GPTConfig* c);   // a rule across keys: NULL when met, else what is wrong
    size_t kernel;                             // offsetof(Kernels, ...) of the kernel it needs (0: none)
    int kernel_when;                           // ... at this value (-1: at any value but the default)
    const char* help;
} ConfigOption;

static const char* const MIXER_NAMES[] = {"softmax", "sigmoid", "mlstm", NULL};
static const char* const GATE_NAMES[] = {"none", "head", "elem", NULL};
static const char* const IGATE_NAMES[] = {"exp", "sig", NULL};
static const char* const SINK_NAMES[] = {"none", "k", "kv", "logit", "one", NULL};
static const char* const BLOCK_NORM_NAMES[] = {"layer", "rms", NULL};
static const char* const GELU_NAMES[] = {"tanh", "erf", NULL};
static const char* const MLP_NAMES[] = {"gelu", "swiglu", NULL};
// linbias and tie: GPT-2's value 1 is the choice at index 0, so the field and its header slot hold 0
// for GPT-2 (files from before these keys, with the slot 0, keep their meaning)
static const char* const ONE_ZERO[] = {"1", "0", NULL};
static const char* const BOS_NAMES[] = {"0", "1", "window", NULL};

int gpt_gate_width(const GPTConfig* c) {
    return c->gate == GATE_HEAD ? c->num_heads : c->gate == GATE_ELEM ? c->channels : 0;
}

int gpt_fc_width(const GPTConfig* c) { return c->mlp == MLP_SWIGLU ? 2 * c->mlp_hidden : c->mlp_hidden; }

AttnScore gpt_attn_score(const GPTConfig* c) {
    return (AttnScore){.sigmoid = c->mixer == MIXER_SIGMOID, .bias = c->sigmoid_bias, .normalize = c->sigmoid_norm,
                       .alibi = c->alibi};
}

// defaults that depend on other keys
// The derived sizes in long: a checkpoint header's V or C may be anything until the ranges are checked,
// after the defaults (a value out of int's range wraps, and the range check names V or C).
static void derive_padded_vocab(GPTConfig* c) {
    c->padded_vocab_size = (int)(((long)c->vocab_size + 127) / 128 * 128);
}
// sigmoid attention: b = -ln(n) with n the training context (docs/MODEL.md section 5)
static void derive_sigmoid_bias(GPTConfig* c) {
    c->sigmoid_bias = c->mixer == MIXER_SIGMOID ? -logf((float)c->max_seq_len) : 0.0f;
}
static void derive_gate(GPTConfig* c) { c->gate = c->mixer == MIXER_MLSTM ? GATE_ELEM : GATE_NONE; }
// GPT-2's 4C; SwiGLU's 8C/3 (the same parameter count as 4C with two input matrices, as LLaMA),
// rounded up to a multiple of 64
static void derive_mlp_hidden(GPTConfig* c) {
    long C = c->channels;
    c->mlp_hidden = (int)(c->mlp == MLP_SWIGLU ? (8 * C / 3 + 63) / 64 * 64 : 4 * C);
}

// rules across keys
static const char* heads_divide_channels(const GPTConfig* c) {
    return c->channels % c->num_heads ? "channels C must be divisible by the heads H" : NULL;
}
static const char* padded_vocab_not_smaller(const GPTConfig* c) {
    return c->padded_vocab_size < c->vocab_size ? "the padded vocabulary Vp must be at least V" : NULL;
}
static const char* bias_is_sigmoid(const GPTConfig* c) {
    return c->sigmoid_bias != 0.0f && c->mixer != MIXER_SIGMOID ? "bias applies to mixer=sigmoid only" : NULL;
}
static const char* norm_is_sigmoid(const GPTConfig* c) {
    return c->sigmoid_norm && c->mixer != MIXER_SIGMOID ? "norm=1 applies to mixer=sigmoid only" : NULL;
}
static const char* mlstm_gate_is_elem(const GPTConfig* c) {
    return c->mixer == MIXER_MLSTM && c->gate != GATE_ELEM
               ? "mlstm has an elementwise output gate: gate must be elem" : NULL;
}
static const char* rope_fits(const GPTConfig* c) {
    if (!c->rope) return NULL;
    if (c->mixer == MIXER_MLSTM) return "rope applies to the attention mixers, not mlstm";
    return (c->channels / c->num_heads) % 2 ? "RoPE needs an even head size C/H" : NULL;
}
static const char* alibi_fits(const GPTConfig* c) {
    if (!c->alibi) return NULL;
    if (c->mixer == MIXER_MLSTM) return "alibi applies to the attention mixers, not mlstm";
    return c->rope ? "alibi and rope are two position encodings: choose one" : NULL;
}
static const char* sink_is_softmax(const GPTConfig* c) {
    return c->sink != SINK_NONE && c->mixer != MIXER_SOFTMAX ? "sink applies to mixer=softmax only" : NULL;
}
static const char* bos_window_fits(const GPTConfig* c) {
    return c->bos == BOS_WINDOW && c->max_seq_len < 2 ? "bos=window needs T >= 2 (the BOS and a token)" : NULL;
}
static const char* qknorm_fits(const GPTConfig* c) {
    return c->qknorm && c->mixer == MIXER_MLSTM ? "qknorm applies to the attention mixers, not mlstm" : NULL;
}
static const char* igate_is_mlstm(const GPTConfig* c) {
    return c->mlstm_igate != IGATE_EXP && c->mixer != MIXER_MLSTM ? "igate applies to mixer=mlstm only" : NULL;
}
static const char* chunk_is_mlstm(const GPTConfig* c) {
    return c->mlstm_chunk != 64 && c->mixer != MIXER_MLSTM ? "chunk applies to mixer=mlstm only" : NULL;
}

static const char* gelu_is_gelu_mlp(const GPTConfig* c) {
    return c->gelu != GELU_TANH && c->mlp != MLP_GELU ? "gelu applies to mlp=gelu only" : NULL;
}

#define FIELD(f) offsetof(GPTConfig, f)
#define KERNEL(f) offsetof(Kernels, f)
#define INT_MAX_D 2147483647.0

static const ConfigOption OPTIONS[] = {
    // key, field, type, choices, default, min, max, slot, derive, rule, kernel, kernel_when, help
    {"L", FIELD(num_layers), OPT_INT, NULL, 12, 1, 4096, 4, NULL, NULL, 0, 0, "layers"},
    {"C", FIELD(channels), OPT_INT, NULL, 768, 1, 65536, 6, NULL, NULL, 0, 0, "channels (model width)"},
    {"H", FIELD(num_heads), OPT_INT, NULL, 12, 1, 65536, 5, NULL, heads_divide_channels, 0, 0, "heads"},
    {"T", FIELD(max_seq_len), OPT_INT, NULL, 1024, 1, 1 << 20, 2, NULL, NULL, 0, 0, "maximum sequence length"},
    {"V", FIELD(vocab_size), OPT_INT, NULL, 50257, 1, 65536, 3, NULL, NULL, 0, 0,
     "vocabulary size (shards hold uint16 tokens)"},
    {"Vp", FIELD(padded_vocab_size), OPT_INT, NULL, 50304, 1, INT_MAX_D, 7, derive_padded_vocab,
     padded_vocab_not_smaller, 0, 0, "padded vocabulary (default: V rounded up to a multiple of 128)"},
    {"mixer", FIELD(mixer), OPT_CHOICE, MIXER_NAMES, MIXER_SOFTMAX, 0, 2, 18, NULL, NULL,
     KERNEL(mlstm_chunkwise_forward), MIXER_MLSTM, "the token mixer (docs/MODEL.md sections 4, 5, 11)"},
    {"bias", FIELD(sigmoid_bias), OPT_FLOAT, NULL, 0, -1e30, 1e30, 19, derive_sigmoid_bias, bias_is_sigmoid, 0, 0,
     "sigmoid bias b, constant also when decoding (default for sigmoid: -ln(T))"},
    {"norm", FIELD(sigmoid_norm), OPT_INT, NULL, 0, 0, 1, 20, NULL, norm_is_sigmoid, 0, 0,
     "1: divide each sigmoid row by its sum + 1e-8"},
    {"gate", FIELD(gate), OPT_CHOICE, GATE_NAMES, GATE_NONE, 0, 2, 21, derive_gate, mlstm_gate_is_elem,
     KERNEL(gate_forward), -1, "G1 output gate sigmoid(x W_g + b_g) per head or per channel (default for mlstm: elem)"},
    {"rope", FIELD(rope), OPT_INT, NULL, 0, 0, 1, 22, NULL, rope_fits, KERNEL(rope_forward), -1,
     "1: RoPE on q and k instead of learned positions"},
    {"qknorm", FIELD(qknorm), OPT_INT, NULL, 0, 0, 1, 23, NULL, qknorm_fits, KERNEL(qknorm_forward), -1,
     "1: per-head LayerNorm on q and k, before RoPE"},
    {"hybrid", FIELD(hybrid_norm), OPT_INT, NULL, 0, 0, 1, 24, NULL, NULL, 0, 0,
     "1: LayerNorm on the mixer output before the residual add"},
    {"layerscale", FIELD(layerscale), OPT_INT, NULL, 0, 0, 1, 25, NULL, NULL, KERNEL(layerscale_forward), -1,
     "1: learned per-channel scale (init 1e-4) on both residual branches"},
    {"igate", FIELD(mlstm_igate), OPT_CHOICE, IGATE_NAMES, IGATE_EXP, 0, 1, 26, NULL, igate_is_mlstm, 0, 0,
     "mLSTM input gate: exponential with stabilizer, or sigmoid"},
    {"alibi", FIELD(alibi), OPT_INT, NULL, 0, 0, 1, 28, NULL, alibi_fits, 0, 0,
     "1: ALiBi, a per-head distance penalty on the scores, instead of learned positions"},
    {"chunk", FIELD(mlstm_chunk), OPT_INT, NULL, 64, 1, 1 << 20, 27, NULL, chunk_is_mlstm, 0, 0,
     "mLSTM chunk size of the chunkwise training form"},
    {"sink", FIELD(sink), OPT_CHOICE, SINK_NAMES, SINK_NONE, 0, 4, 29, NULL, sink_is_softmax,
     KERNEL(attention_sink_forward), -1,
     "an extra key slot of softmax: learnable k* (v* = 0), k* and v*, a per-head logit, or the logit 0"},
    {"bos", FIELD(bos), OPT_CHOICE, BOS_NAMES, BOS_OFF, 0, 2, 30, NULL, bos_window_fits, 0, 0,
     "1: sequences at document starts, from their end-of-text token; window: the end-of-text token as BOS, "
     "then T-1 tokens from anywhere (docs/SINKS.md)"},
    {"ln", FIELD(block_norm), OPT_CHOICE, BLOCK_NORM_NAMES, NORM_LAYER, 0, 1, 31, NULL, NULL, KERNEL(rmsnorm_forward),
     NORM_RMS, "the norm of ln1, ln2, lnf: LayerNorm, or RMSNorm (weight only)"},
    {"linbias", FIELD(no_linear_bias), OPT_CHOICE, ONE_ZERO, 0, 0, 1, 32, NULL, NULL, 0, 0,
     "0: no biases in the qkv, attproj, fc and fcproj layers"},
    {"tie", FIELD(untied_head), OPT_CHOICE, ONE_ZERO, 0, 0, 1, 33, NULL, NULL, 0, 0,
     "0: an LM head of its own (lm_head) instead of wte"},
    {"gelu", FIELD(gelu), OPT_CHOICE, GELU_NAMES, GELU_TANH, 0, 1, 34, NULL, gelu_is_gelu_mlp, 0, 0,
     "the MLP's GELU: tanh approximation, or exact 0.5 x (1 + erf(x / sqrt 2))"},
    {"mlp", FIELD(mlp), OPT_CHOICE, MLP_NAMES, MLP_GELU, 0, 1, 35, NULL, NULL, KERNEL(swiglu_forward), MLP_SWIGLU,
     "the MLP: GELU, or SwiGLU W_down (silu(x W_gate) * (x W_up))"},
    {"hidden", FIELD(mlp_hidden), OPT_INT, NULL, 3072, 1, 1 << 20, 36, derive_mlp_hidden, NULL, 0, 0,
     "MLP width (default 4C; swiglu: 8C/3 rounded up to a multiple of 64)"},
};
#define NUM_OPTIONS (int)(sizeof(OPTIONS) / sizeof(OPTIONS[0]))

// Header slots: llm.c's sizes in 2-7; attnlab's marker and version, then the mixer options. Version 2:
// the file's checksum (model/checkpoint.c) covers the whole file and must be there; version 1 files
// (older attnlab, scripts/ref/ref_gpt2.py) read the same, their checksum covers the tensors, if any.
#define ATTNLAB_MARKER 0x4c4e5441   // "ATNL"
#define ATTNLAB_VERSION 2
#define MARKER_SLOT 16
#define FIRST_MIXER_SLOT 18

static int is_mixer_option(const ConfigOption* o) { return o->slot >= FIRST_MIXER_SLOT; }

static double get_value(const GPTConfig* c, const ConfigOption* o) {
    const char* at = (const char*)c + o->field;
    if (o->type == OPT_FLOAT) return *(const float*)at;
    return *(const int*)at;
}

static void set_value(GPTConfig* c, const ConfigOption* o, double v) {
    char* at = (char*)c + o->field;
    if (o->type == OPT_FLOAT) *(float*)at = (float)v;
    else *(int*)at = (int)v;
}

// "a b c" of a choice option, into out.
static void list_choices(const ConfigOption* o, char* out, size_t n) {
    out[0] = '\0';
    for (int i = 0; o->choices[i]; i++)
        snprintf(out + strlen(out), n - strlen(out), "%s%s", i ? " " : "", o->choices[i]);
}

static void format_value(const GPTConfig* c, const ConfigOption* o, char* out, size_t n) {
    double v = get_value(c, o);
    if (o->type == OPT_CHOICE) snprintf(out, n, "%s", o->choices[(int)v]);
    else if (o->type == OPT_FLOAT) snprintf(out, n, "%.9g", v);   // exact for a float
    else snprintf(out, n, "%d", (int)v);
}

static GPTConfig defaults(void) {
    GPTConfig c;
    memset(&c, 0, sizeof(c));
    for (int i = 0; i < NUM_OPTIONS; i++) set_value(&c, &OPTIONS[i], OPTIONS[i].def);
    return c;
}

// The options not given (given[i] 0) take their default: derived from the other keys, or the row's.
static void fill_defaults(GPTConfig* c, const int* given) {
    for (int i = 0; i < NUM_OPTIONS; i++) {
        if (given[i]) continue;
        if (OPTIONS[i].derive) OPTIONS[i].derive(c);
        else set_value(c, &OPTIONS[i], OPTIONS[i].def);
    }
}

static const ConfigOption* find_option(const char* key) {
    for (int i = 0; i < NUM_OPTIONS; i++)
        if (!strcmp(OPTIONS[i].key, key)) return &OPTIONS[i];
    return NULL;
}

static void parse_value(GPTConfig* c, const ConfigOption* o, const char* value, const char* descriptor) {
    char* end;
    if (o->type == OPT_CHOICE) {
        for (int i = 0; o->choices[i]; i++)
            if (!strcmp(value, o->choices[i])) return set_value(c, o, i);
        char known[256];
        list_choices(o, known, sizeof(known));
        fail("-e %s: unknown %s '%s' (known: %s)", descriptor, o->key, value, known);
    }
    double v = o->type == OPT_FLOAT ? strtod(value, &end) : (double)strtol(value, &end, 10);
    if (end == value || *end != '\0' || !isfinite(v))
        fail("-e %s: %s=%s is not %s", descriptor, o->key, value, o->type == OPT_FLOAT ? "a number" : "an integer");
    if (v < o->min || v > o->max)
        fail("-e %s: %s=%s is out of range [%.9g, %.9g]", descriptor, o->key, value, o->min, o->max);
    set_value(c, o, v);
}

static void set_gpt2_family(GPTConfig* c, const char* depth_text, const char* descriptor) {
    static const int table[][3] = {  // depth, channels, heads (llm.c's GPT-2 family)
        {6, 384, 6}, {12, 768, 12}, {24, 1024, 16}, {36, 1280, 20}, {48, 1600, 25}, {60, 1920, 30},
    };
    char* end;
    long depth = strtol(depth_text, &end, 10);
    for (size_t i = 0; *end == '\0' && i < sizeof(table) / sizeof(table[0]); i++) {
        if (table[i][0] == depth) {
            c->num_layers = table[i][0];
            c->channels = table[i][1];
            c->num_heads = table[i][2];
            c->max_seq_len = 1024;
            c->vocab_size = 50257;
            return;
        }
    }
    fail("-e %s: unknown GPT-2 depth '%s' (known: d6 d12 d24 d36 d48 d60)", descriptor, depth_text);
}

GPTConfig gpt_config_from_descriptor(const char* descriptor) {
    if (strlen(descriptor) >= 1024) fail("-e: the descriptor is longer than 1023 characters");
    if (descriptor[0] == '\0') fail("-e: empty model descriptor (see -e help)");
    GPTConfig c = defaults();
    int given[NUM_OPTIONS] = {0};
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", descriptor);
    char* rest = NULL;   // strtok_r: the ranks of a run parse descriptors in threads
    for (char* item = strtok_r(buf, ",", &rest); item; item = strtok_r(NULL, ",", &rest)) {
        const char* family = strncmp(item, "gpt2:", 5) == 0 ? item + 5 : item;
        char* eq = strchr(item, '=');
        if (!eq && family[0] == 'd' && family[1] >= '0' && family[1] <= '9') {
            set_gpt2_family(&c, family + 1, descriptor);
            continue;
        }
        if (!eq) fail("-e %s: '%s' is neither a file nor key=value (see -e help)", descriptor, item);
        *eq = '\0';
        const ConfigOption* o = find_option(item);
        if (!o) fail("-e %s: unknown key '%s' (see -e help)", descriptor, item);
        parse_value(&c, o, eq + 1, descriptor);
        given[o - OPTIONS] = 1;
    }
    fill_defaults(&c, given);
    gpt_config_validate(&c, descriptor);
    return c;
}

void gpt_config_validate(const GPTConfig* c, const char* what) {
    for (int i = 0; i < NUM_OPTIONS; i++) {
        const ConfigOption* o = &OPTIONS[i];
        double v = get_value(c, o);
        char text[64];
        if (!(v >= o->min && v <= o->max)) {   // also catches NaN
            if (o->type == OPT_CHOICE) fail("%s: %s holds %d, not a known value", what, o->key, (int)v);
            format_value(c, o, text, sizeof(text));
            fail("%s: %s=%s is out of range [%.9g, %.9g]", what, o->key, text, o->min, o->max);
        }
    }
    for (int i = 0; i < NUM_OPTIONS; i++) {
        const char* problem = OPTIONS[i].rule ? OPTIONS[i].rule(c) : NULL;
        if (problem) {
            char model[1024];
            gpt_config_describe(c, model, sizeof(model));
            fail("%s: %s (model %s)", what, problem, model);
        }
    }
}

// The value key i would take if a descriptor left it out, given the rest of c.
static double default_value(const GPTConfig* c, const ConfigOption* o) {
    if (!o->derive) return o->def;
    GPTConfig derived = *c;
    o->derive(&derived);
    return get_value(&derived, o);
}

void gpt_config_describe(const GPTConfig* c, char* out, size_t n) {
    out[0] = '\0';
    for (int i = 0; i < NUM_OPTIONS; i++) {
        const ConfigOption* o = &OPTIONS[i];
        int optional = is_mixer_option(o) || o->derive;   // L C H T V always; the rest when not what omitting gives
        if (optional && get_value(c, o) == default_value(c, o)) continue;
        char text[64];
        format_value(c, o, text, sizeof(text));
        snprintf(out + strlen(out), n - strlen(out), "%s%s=%s", out[0] ? "," : "", o->key, text);
    }
}

void gpt_config_help(FILE* out) {
    fprintf(out, "model descriptor keys (-e \"L=4,C=128,H=4,T=256,V=257,mixer=sigmoid\", or d6..d60 for GPT-2):\n");
    GPTConfig c = defaults();
    for (int i = 0; i < NUM_OPTIONS; i++) {
        const ConfigOption* o = &OPTIONS[i];
        char values[256], def[64];
        if (o->type == OPT_CHOICE) list_choices(o, values, sizeof(values));
        else if (o->type == OPT_FLOAT) snprintf(values, sizeof(values), "a number");
        else snprintf(values, sizeof(values), "%.0f..%.0f", o->min, o->max);
        format_value(&c, o, def, sizeof(def));
        fprintf(out, "  %-10s %-22s default %-8s %s\n", o->key, values, def, o->help);
    }
}

void gpt_config_check_kernels(const GPTConfig* c, const Kernels* k) {
    for (int i = 0; i < NUM_OPTIONS; i++) {
        const ConfigOption* o = &OPTIONS[i];
        if (!o->kernel) continue;
        double v = get_value(c, o);
        int needed = o->kernel_when < 0 ? v != o->def : (int)v == o->kernel_when;
        const void* kernel = *(const void* const*)((const char*)k + o->kernel);
        if (needed && !kernel) {
            char text[64];
            format_value(c, o, text, sizeof(text));
            fail("the %s kernel set has no kernels for %s=%s yet; use the CPU build for this model", k->name,
                 o->key, text);
        }
    }
}

// A setting that cannot be 0 reads a slot of 0 as its default (chunk, hidden: files from before it);
// one whose default also depends on other keys (hidden: 4C, or SwiGLU's width) is written as 0 at
// that default, so adding it left the files of the settings before it byte for byte the same.
static int zero_slot_is_default(const ConfigOption* o) { return is_mixer_option(o) && o->min > 0; }
static int writes_default_as_zero(const ConfigOption* o) { return zero_slot_is_default(o) && o->derive; }

void gpt_config_write_header(int* header, const GPTConfig* c) {
    for (int i = 0; i < NUM_OPTIONS; i++) {
        const ConfigOption* o = &OPTIONS[i];
        if (o->type == OPT_FLOAT) memcpy(&header[o->slot], (const char*)c + o->field, sizeof(float));
        else if (writes_default_as_zero(o) && get_value(c, o) == default_value(c, o)) header[o->slot] = 0;
        else header[o->slot] = *(const int*)((const char*)c + o->field);
    }
    header[MARKER_SLOT] = ATTNLAB_MARKER;   // always: it tells attnlab's files from llm.c's (no checksum)
    header[MARKER_SLOT + 1] = ATTNLAB_VERSION;
}

int gpt_config_header_version(const int* header) { return header[MARKER_SLOT] ? header[MARKER_SLOT + 1] : 0; }

GPTConfig gpt_config_read_header(const int* header, const char* path) {
    int marked = header[MARKER_SLOT] != 0, known[256] = {0};
    if (marked && header[MARKER_SLOT] != ATTNLAB_MARKER)
        fail("%s: header slot %d holds %d, not attnlab's marker", path, MARKER_SLOT, header[MARKER_SLOT]);
    if (marked && (header[MARKER_SLOT + 1] < 1 || header[MARKER_SLOT + 1] > ATTNLAB_VERSION))
        fail("%s: attnlab settings version %d is not supported (1 to %d)", path, header[MARKER_SLOT + 1],
             ATTNLAB_VERSION);
    GPTConfig c = defaults();
    int given[NUM_OPTIONS] = {0};
    for (int i = 0; i < NUM_OPTIONS; i++) {
        const ConfigOption* o = &OPTIONS[i];
        if (is_mixer_option(o) && !marked) continue;   // llm.c's GPT-2: the defaults
        if (o->type == OPT_FLOAT) memcpy((char*)&c + o->field, &header[o->slot], sizeof(float));
        else *(int*)((char*)&c + o->field) = header[o->slot];
        known[o->slot] = 1;
        given[i] = !(zero_slot_is_default(o) && header[o->slot] == 0);
    }
    fill_defaults(&c, given);
    for (int i = MARKER_SLOT + 2 * marked; i < 256; i++)
        if (!known[i] && header[i] != 0)
            fail("%s: header slot %d is set (%d): the file holds settings this build does not know", path, i,
                 header[i]);
    gpt_config_validate(&c, path);
    return c;
}
