// The tensor registry (see tensors.h): one row per tensor, and everything that follows from the
// rows: sizes, offsets, the named views of gpt.h, per-layer views, init, the parameter count, the
// checkpoint order (the order of PARAMS), memory planning, and the host copies of parameters,
// gradients and logits. A tensor the config does not use has no bytes and a NULL view.
#include "model/tensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/rng.h"

// The sizes a shape is made of.
typedef enum { D_1, D_C, D_3C, D_HIDDEN, D_FC, D_NH, D_2NH, D_HS, D_G, D_VP, D_MAXT } Dim;

static size_t dim_size(Dim d, const GPTConfig* c) {
    size_t C = c->channels, NH = c->num_heads;
    switch (d) {
    case D_1: return 1;
    case D_C: return C;
    case D_3C: return 3 * C;
    case D_HIDDEN: return (size_t)c->mlp_hidden;          // the MLP width (4C by default)
    case D_FC: return (size_t)gpt_fc_width(c);            // the fc layer's output: hidden, 2 hidden (SwiGLU)
    case D_NH: return NH;
    case D_2NH: return 2 * NH;
    case D_HS: return C / NH;
    case D_G: return (size_t)gpt_gate_width(c);
    case D_VP: return (size_t)c->padded_vocab_size;
    case D_MAXT: return (size_t)c->max_seq_len;
    }
    return 0;
}

// When a tensor exists.
static int has_wpe(const GPTConfig* c) { return !c->rope && !c->alibi; }
static int has_gate(const GPTConfig* c) { return c->gate != GATE_NONE; }
static int has_qknorm(const GPTConfig* c) { return c->qknorm; }
static int has_hybrid_norm(const GPTConfig* c) { return c->hybrid_norm; }
static int has_layerscale(const GPTConfig* c) { return c->layerscale; }
static int is_mlstm(const GPTConfig* c) { return c->mixer == MIXER_MLSTM; }
static int is_attention(const GPTConfig* c) { return c->mixer != MIXER_MLSTM; }
static int has_sink_key(const GPTConfig* c) { return c->sink == SINK_KEY || c->sink == SINK_KEY_VALUE; }
static int has_sink_value(const GPTConfig* c) { return c->sink == SINK_KEY_VALUE; }
static int has_sink_logit(const GPTConfig* c) { return c->sink == SINK_LOGIT; }
static int has_qkv_pre_grad(const GPTConfig* c) { return c->rope || c->qknorm; }
static int is_layernorm(const GPTConfig* c) { return c->block_norm == NORM_LAYER; }   // ln1, ln2, lnf: bias, mean
static int has_linear_bias(const GPTConfig* c) { return !c->no_linear_bias; }
static int is_untied(const GPTConfig* c) { return c->untied_head; }

// docs/MODEL.md section 3. NORMAL_VOCAB: N(0, 0.02) on the V real rows, the padding rows 0.
typedef enum {
    INIT_ZERO, INIT_ONES, INIT_NORMAL, INIT_NORMAL_VOCAB, INIT_NORMAL_RESIDUAL, INIT_LAYERSCALE, INIT_MLSTM_GATE_BIAS
} Init;

typedef struct {
    const char* name;
    size_t field;                          // offsetof(ParameterTensors, ...)
    int per_layer;                         // L copies of the shape, stacked
    Dim rows, cols;                        // the shape (of one layer's copy)
    int decays;                            // AdamW weight decay (the 2-D tensors, as llm.c)
    int (*present)(const GPTConfig* c);    // NULL: always
    Init init;                             // random draws happen in this table's order
} ParamSpec;

#define P(f) offsetof(ParameterTensors, f)
static const ParamSpec PARAMS[] = {   // llm.c's 16 first: this is the checkpoint's tensor order
    {"wte", P(wte), 0, D_VP, D_C, 1, NULL, INIT_NORMAL_VOCAB},
    {"wpe", P(wpe), 0, D_MAXT, D_C, 1, has_wpe, INIT_NORMAL},
    {"ln1w", P(ln1w), 1, D_C, D_1, 0, NULL, INIT_ONES},
    {"ln1b", P(ln1b), 1, D_C, D_1, 0, is_layernorm, INIT_ZERO},
    {"qkvw", P(qkvw), 1, D_3C, D_C, 1, NULL, INIT_NORMAL},
    {"qkvb", P(qkvb), 1, D_3C, D_1, 0, has_linear_bias, INIT_ZERO},
    {"attprojw", P(attprojw), 1, D_C, D_C, 1, NULL, INIT_NORMAL_RESIDUAL},
    {"attprojb", P(attprojb), 1, D_C, D_1, 0, has_linear_bias, INIT_ZERO},
    {"ln2w", P(ln2w), 1, D_C, D_1, 0, NULL, INIT_ONES},
    {"ln2b", P(ln2b), 1, D_C, D_1, 0, is_layernorm, INIT_ZERO},
    {"fcw", P(fcw), 1, D_FC, D_C, 1, NULL, INIT_NORMAL},
    {"fcb", P(fcb), 1, D_FC, D_1, 0, has_linear_bias, INIT_ZERO},
    {"fcprojw", P(fcprojw), 1, D_C, D_HIDDEN, 1, NULL, INIT_NORMAL_RESIDUAL},
    {"fcprojb", P(fcprojb), 1, D_C, D_1, 0, has_linear_bias, INIT_ZERO},
    {"lnfw", P(lnfw), 0, D_C, D_1, 0, NULL, INIT_ONES},
    {"lnfb", P(lnfb), 0, D_C, D_1, 0, is_layernorm, INIT_ZERO},
    {"gatew", P(gatew), 1, D_G, D_C, 1, has_gate, INIT_NORMAL},
    {"gateb", P(gateb), 1, D_G, D_1, 0, has_gate, INIT_ZERO},
    {"qnormw", P(qnormw), 1, D_HS, D_1, 0, has_qknorm, INIT_ONES},
    {"qnormb", P(qnormb), 1, D_HS, D_1, 0, has_qknorm, INIT_ZERO},
    {"knormw", P(knormw), 1, D_HS, D_1, 0, has_qknorm, INIT_ONES},
    {"knormb", P(knormb), 1, D_HS, D_1, 0, has_qknorm, INIT_ZERO},
    {"hybrid_normw", P(hybrid_normw), 1, D_C, D_1, 0, has_hybrid_norm, INIT_ONES},
    {"hybrid_normb", P(hybrid_normb), 1, D_C, D_1, 0, has_hybrid_norm, INIT_ZERO},
    {"ls_mixer", P(ls_mixer), 1, D_C, D_1, 0, has_layerscale, INIT_LAYERSCALE},
    {"ls_mlp", P(ls_mlp), 1, D_C, D_1, 0, has_layerscale, INIT_LAYERSCALE},
    {"mlstm_gatew", P(mlstm_gatew), 1, D_2NH, D_C, 1, is_mlstm, INIT_ZERO},
    {"mlstm_gateb", P(mlstm_gateb), 1, D_2NH, D_1, 0, is_mlstm, INIT_MLSTM_GATE_BIAS},
    {"mlstm_normw", P(mlstm_normw), 1, D_C, D_1, 0, is_mlstm, INIT_ONES},
    {"sink_key", P(sink_key), 1, D_NH, D_HS, 1, has_sink_key, INIT_NORMAL},
    {"sink_value", P(sink_value), 1, D_NH, D_HS, 1, has_sink_value, INIT_NORMAL},
    {"sink_logit", P(sink_logit), 1, D_NH, D_1, 0, has_sink_logit, INIT_ZERO},
    {"lm_head", P(lm_head), 0, D_VP, D_C, 1, is_untied, INIT_NORMAL_VOCAB},
};
#undef P
#define NUM_PARAMS (int)(sizeof(PARAMS) / sizeof(PARAMS[0]))

// Saved activations: B*T rows of `width` elements, per layer or once; floatX, or float statistics.
typedef struct {
    const char* name;
    size_t field;                          // offsetof(ActivationTensors, ...) or offsetof(GradScratch, ...)
    int per_layer;
    Dim width;
    int is_stat;
    int (*present)(const GPTConfig* c);    // NULL: always
} ActSpec;

#define A(f) offsetof(ActivationTensors, f)
static const ActSpec ACTS[] = {
    {"encoded", A(encoded), 0, D_C, 0, NULL},
    {"ln1", A(ln1), 1, D_C, 0, NULL},
    {"ln1_mean", A(ln1_mean), 1, D_1, 1, is_layernorm},
    {"ln1_rstd", A(ln1_rstd), 1, D_1, 1, NULL},
    {"qkv_pre", A(qkv_pre), 1, D_3C, 0, has_qknorm},
    {"qk_mean", A(qk_mean), 1, D_2NH, 1, has_qknorm},
    {"qk_rstd", A(qk_rstd), 1, D_2NH, 1, has_qknorm},
    {"qkv", A(qkv), 1, D_3C, 0, NULL},
    {"mlstm_gates", A(mlstm_gates), 1, D_2NH, 0, is_mlstm},
    {"mlstm_h", A(mlstm_h), 1, D_C, 0, is_mlstm},
    {"mlstm_norm_mean", A(mlstm_norm_mean), 1, D_NH, 1, is_mlstm},
    {"mlstm_norm_rstd", A(mlstm_norm_rstd), 1, D_NH, 1, is_mlstm},
    {"att_rowstat", A(att_rowstat), 1, D_NH, 1, is_attention},
    {"mlstm_n", A(mlstm_n), 1, D_NH, 1, is_mlstm},
    {"mlstm_m", A(mlstm_m), 1, D_NH, 1, is_mlstm},
    {"mix_out", A(mix_out), 1, D_C, 0, NULL},
    {"gate_pre", A(gate_pre), 1, D_G, 0, has_gate},
    {"gated", A(gated), 1, D_C, 0, has_gate},
    {"attproj", A(attproj), 1, D_C, 0, NULL},
    {"hybrid_norm", A(hybrid_norm), 1, D_C, 0, has_hybrid_norm},
    {"hybrid_mean", A(hybrid_mean), 1, D_1, 1, has_hybrid_norm},
    {"hybrid_rstd", A(hybrid_rstd), 1, D_1, 1, has_hybrid_norm},
    {"residual2", A(residual2), 1, D_C, 0, NULL},
    {"ln2", A(ln2), 1, D_C, 0, NULL},
    {"ln2_mean", A(ln2_mean), 1, D_1, 1, is_layernorm},
    {"ln2_rstd", A(ln2_rstd), 1, D_1, 1, NULL},
    {"fch", A(fch), 1, D_FC, 0, NULL},
    {"fch_gelu", A(fch_gelu), 1, D_HIDDEN, 0, NULL},
    {"fcproj", A(fcproj), 1, D_C, 0, NULL},
    {"residual3", A(residual3), 1, D_C, 0, NULL},
    {"lnf", A(lnf), 0, D_C, 0, NULL},
    {"lnf_mean", A(lnf_mean), 0, D_1, 1, is_layernorm},
    {"lnf_rstd", A(lnf_rstd), 0, D_1, 1, NULL},
};
#undef A
#define NUM_ACTS (int)(sizeof(ACTS) / sizeof(ACTS[0]))

#define S(f) offsetof(GradScratch, f)
static const ActSpec SCRATCH[] = {   // one layer's worth, floatX
    {"dresidual", S(dresidual), 0, D_C, 0, NULL},
    {"dln", S(dln), 0, D_C, 0, NULL},
    {"dbranch", S(dbranch), 0, D_C, 0, has_layerscale},
    {"dattproj", S(dattproj), 0, D_C, 0, has_hybrid_norm},
    {"dgated", S(dgated), 0, D_C, 0, has_gate},
    {"dmix_out", S(dmix_out), 0, D_C, 0, NULL},
    {"dgate_pre", S(dgate_pre), 0, D_G, 0, has_gate},
    {"dqkv", S(dqkv), 0, D_3C, 0, NULL},
    {"dqkv_pre", S(dqkv_pre), 0, D_3C, 0, has_qkv_pre_grad},
    {"dmlstm_gates", S(dmlstm_gates), 0, D_2NH, 0, is_mlstm},
    {"dfch_gelu", S(dfch_gelu), 0, D_HIDDEN, 0, NULL},
    {"dfch", S(dfch), 0, D_FC, 0, NULL},
};
#undef S
#define NUM_SCRATCH (int)(sizeof(SCRATCH) / sizeof(SCRATCH[0]))

// The views are structs of pointers; a row names its pointer by offset (memcpy: the pointer types differ).
static void set_view(void* view, size_t field, void* ptr) { memcpy((char*)view + field, &ptr, sizeof(ptr)); }
static char* get_view(const void* view, size_t field) {
    char* ptr;
    memcpy(&ptr, (const char*)view + field, sizeof(ptr));
    return ptr;
}

// ----------------------------------------------------------------------------
// parameters

static int param_present(const ParamSpec* s, const GPTConfig* c) { return !s->present || s->present(c); }

// Elements of one layer's copy (or of the whole tensor when not per layer); 0 when absent.
static size_t param_layer_numel(const ParamSpec* s, const GPTConfig* c) {
    return param_present(s, c) ? dim_size(s->rows, c) * dim_size(s->cols, c) : 0;
}

static size_t param_numel(const ParamSpec* s, const GPTConfig* c) {
    return param_layer_numel(s, c) * (s->per_layer ? (size_t)c->num_layers : 1);
}

int gpt_num_param_tensors(void) { return NUM_PARAMS; }

ParamRange gpt_param_range(const GPT* m, int i) {
    size_t offset = 0;
    for (int j = 0; j < i; j++) offset += param_numel(&PARAMS[j], &m->config);
    return (ParamRange){PARAMS[i].name, offset, param_numel(&PARAMS[i], &m->config), PARAMS[i].decays};
}

int gpt_layer_param_slices(const GPT* m, int l, size_t* offsets, size_t* counts) {
    _Static_assert(NUM_PARAMS <= GPT_MAX_PARAM_SLICES, "raise GPT_MAX_PARAM_SLICES");
    size_t offset = 0;
    int n = 0;
    for (int i = 0; i < NUM_PARAMS; i++) {
        const ParamSpec* s = &PARAMS[i];
        size_t numel = param_numel(s, &m->config), layer_numel = param_layer_numel(s, &m->config);
        if (numel && (l < 0) == !s->per_layer) {
            offsets[n] = offset + (l < 0 ? 0 : (size_t)l * layer_numel);
            counts[n++] = l < 0 ? numel : layer_numel;
        }
        offset += numel;
    }
    return n;
}

// Points the views of a parameter-shaped buffer (params or grads) at their slices.
static void point_params(ParameterTensors* view, floatX* memory, const GPTConfig* c) {
    memset(view, 0, sizeof(*view));
    for (int i = 0; i < NUM_PARAMS; i++) {
        size_t n = param_numel(&PARAMS[i], c);
        if (n) set_view(view, PARAMS[i].field, memory);
        memory += n;
    }
}

ParameterTensors gpt_layer_params(const GPT* m, const ParameterTensors* all, int l) {
    ParameterTensors view = *all;
    for (int i = 0; i < NUM_PARAMS; i++) {
        const ParamSpec* s = &PARAMS[i];
        floatX* base = (floatX*)get_view(all, s->field);
        if (s->per_layer && base) set_view(&view, s->field, base + (size_t)l * param_layer_numel(s, &m->config));
    }
    return view;
}

size_t gpt_num_parameters(const GPTConfig* c) {
    size_t n = 0;
    for (int i = 0; i < NUM_PARAMS; i++) n += param_numel(&PARAMS[i], c);
    return n;
}

void gpt_build(GPT* m, const GPTConfig* config, const Kernels* k) {
    gpt_config_check_kernels(config, k);
    memset(m, 0, sizeof(*m));
    m->config = *config;
    m->k = k;
    m->num_parameters = gpt_num_parameters(config);
    m->opt_lo = 0, m->opt_hi = m->num_parameters;
    m->params_memory = k->alloc(m->num_parameters * sizeof(floatX));
    point_params(&m->params, m->params_memory, config);
}

// docs/MODEL.md section 3: input gate -10, forget gate linspace(3, 6) over the heads.
static void init_mlstm_gate_bias(float* b, int L, int NH) {
    for (int l = 0; l < L; l++, b += 2 * NH) {
        for (int h = 0; h < NH; h++) {
            b[h] = -10.0f;
            b[NH + h] = NH > 1 ? 3.0f + 3.0f * h / (NH - 1) : 3.0f;
        }
    }
}

// The standard deviation of a NORMAL tensor under the scheme (docs/MODEL.md section 3).
static float init_std(Init init, const GPTConfig* c, InitScheme scheme) {
    float L = (float)c->num_layers, C = (float)c->channels;
    if (scheme == INIT_SCHEME_NEOX) return init == INIT_NORMAL_RESIDUAL ? 1.0f / (L * sqrtf(C)) : sqrtf(2.0f / (5.0f * C));
    return init == INIT_NORMAL_RESIDUAL ? 0.02f / sqrtf(2.0f * L) : 0.02f;
}

InitScheme gpt_init_scheme(const char* name, const char* flag) {
    static const char* const names[] = {"gpt2", "neox"};
    for (int i = 0; i < 2; i++)
        if (!strcmp(name, names[i])) return (InitScheme)i;
    fail("%s %s: unknown init (known: gpt2 neox)", flag, name);
}

static void init_tensor(float* x, const ParamSpec* s, const GPTConfig* c, size_t n, InitScheme scheme, Rng* rng) {
    float std = init_std(s->init, c, scheme);
    if (s->init == INIT_NORMAL_VOCAB) n = (size_t)c->vocab_size * c->channels;   // padding rows stay 0
    switch (s->init) {
    case INIT_ZERO: break;   // the buffer starts at 0
    case INIT_ONES: for (size_t i = 0; i < n; i++) x[i] = 1.0f; break;
    case INIT_LAYERSCALE: for (size_t i = 0; i < n; i++) x[i] = 1e-4f; break;
    case INIT_NORMAL: case INIT_NORMAL_VOCAB: case INIT_NORMAL_RESIDUAL:
        for (size_t i = 0; i < n; i++) x[i] = std * rng_normal(rng);
        break;
    case INIT_MLSTM_GATE_BIAS: init_mlstm_gate_bias(x, c->num_layers, c->num_heads); break;
    }
}

void gpt_init_random(GPT* m, uint64_t seed, InitScheme scheme) {
    float* host = calloc_check(m->num_parameters, sizeof(float));
    Rng rng;
    rng_seed(&rng, seed);
    size_t offset = 0;
    for (int i = 0; i < NUM_PARAMS; i++) {
        size_t n = param_numel(&PARAMS[i], &m->config);
        if (n) init_tensor(host + offset, &PARAMS[i], &m->config, n, scheme, &rng);
        offset += n;
    }
    gpt_set_parameters(m, host);
    free(host);
}

void gpt_set_parameters(GPT* m, const float* host) {
    const Kernels* k = m->k;
    size_t n = m->num_parameters;
    if (sizeof(floatX) == sizeof(float)) {
        k->upload(m->params_memory, host, n * sizeof(float));
        return;
    }
    // fp32 master weights for AdamW, and their rounded floatX copy for the kernels
    if (!m->master_memory) m->master_memory = k->alloc(n * sizeof(float));
    k->upload(m->master_memory, host, n * sizeof(float));
    floatX* rounded = malloc_check(n * sizeof(floatX));
    for (size_t i = 0; i < n; i++) rounded[i] = floatx_from_float(host[i]);
    k->upload(m->params_memory, rounded, n * sizeof(floatX));
    free(rounded);
}

void gpt_download_floats(const GPT* m, float* host, const floatX* src, size_t n) {
    const Kernels* k = m->k;
    if (sizeof(floatX) == sizeof(float)) {
        k->download(host, src, n * sizeof(float));
        return;
    }
    floatX* staging = malloc_check(n * sizeof(floatX));
    k->download(staging, src, n * sizeof(floatX));
    for (size_t i = 0; i < n; i++) host[i] = float_from_floatx(staging[i]);
    free(staging);
}

void gpt_get_parameters(const GPT* m, float* host) {
    if (m->master_memory) m->k->download(host, m->master_memory, m->num_parameters * sizeof(float));
    else gpt_download_floats(m, host, m->params_memory, m->num_parameters);
}

void gpt_get_gradients(const GPT* m, float* host) { gpt_download_floats(m, host, m->grads_memory, m->num_parameters); }

void gpt_get_logits(const GPT* m, size_t row, float* out) {
    size_t Vp = m->config.padded_vocab_size;
    gpt_download_floats(m, out, m->logits + row * Vp, Vp);
}

void gpt_ensure_grads(GPT* m) {
    if (m->grads_memory) return;
    m->grads_memory = m->k->alloc(m->num_parameters * sizeof(floatX));
    point_params(&m->grads, m->grads_memory, &m->config);
    m->k->zero(m->grads_memory, m->num_parameters * sizeof(floatX));
}

// ----------------------------------------------------------------------------
// activations and backward scratch

static size_t act_bytes(const ActSpec* s, const GPTConfig* c, size_t BT) {
    if (s->present && !s->present(c)) return 0;
    size_t copies = s->per_layer ? (size_t)c->num_layers : 1;
    return copies * BT * dim_size(s->width, c) * (s->is_stat ? sizeof(float) : sizeof(floatX));
}

// Points the n tensors of a table into memory (when not NULL), each slice 64-byte aligned;
// returns the bytes they need.
static size_t point_acts(void* view, char* memory, const ActSpec* specs, int n, const GPTConfig* c, size_t BT) {
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        size_t bytes = act_bytes(&specs[i], c, BT);
        if (memory) set_view(view, specs[i].field, bytes ? memory + offset : NULL);
        offset += (bytes + 63) / 64 * 64;
    }
    return offset;
}

ActivationTensors gpt_layer_acts(const GPT* m, int l) {
    ActivationTensors view = m->acts;
    size_t BT = (size_t)m->max_B * m->max_T;   // the allocated stride, so smaller batches reuse the buffers
    for (int i = 0; i < NUM_ACTS; i++) {
        const ActSpec* s = &ACTS[i];
        char* base = get_view(&m->acts, s->field);
        if (!s->per_layer || !base) continue;
        size_t layer_bytes = BT * dim_size(s->width, &m->config) * (s->is_stat ? sizeof(float) : sizeof(floatX));
        set_view(&view, s->field, base + (size_t)l * layer_bytes);
    }
    return view;
}

static void free_activations(GPT* m) {
    const Kernels* k = m->k;
    if (!m->acts_memory) return;
    k->release(m->acts_memory);
    k->release(m->scratch_memory);
    k->release(m->logits);
    k->release(m->losses);
    k->release(m->inputs);
    k->release(m->targets);
    free(m->losses_host);
    m->acts_memory = NULL;
}

void gpt_ensure_activations(GPT* m, int B, int T) {
    if (m->acts_memory && B <= m->max_B && T <= m->max_T) return;
    free_activations(m);
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    size_t BT = (size_t)B * T;
    m->acts_memory = k->alloc(point_acts(NULL, NULL, ACTS, NUM_ACTS, c, BT));
    point_acts(&m->acts, m->acts_memory, ACTS, NUM_ACTS, c, BT);
    m->scratch_memory = k->alloc(point_acts(NULL, NULL, SCRATCH, NUM_SCRATCH, c, BT));
    point_acts(&m->scratch, m->scratch_memory, SCRATCH, NUM_SCRATCH, c, BT);
    m->logits = k->alloc(BT * c->padded_vocab_size * sizeof(floatX));
    m->losses = k->alloc(BT * sizeof(float));
    m->inputs = k->alloc(BT * sizeof(int));
    m->targets = k->alloc(BT * sizeof(int));
    m->losses_host = malloc_check(BT * sizeof(float));
    m->max_B = B;
    m->max_T = T;
}

void gpt_reserve(GPT* m, int B, int T) { gpt_ensure_activations(m, B, T); }

size_t gpt_decode_state_bytes(const GPTConfig* c) {
    size_t hs = c->channels / c->num_heads;
    if (c->mixer == MIXER_MLSTM) return (size_t)c->num_layers * c->num_heads * (hs * hs + hs + 1) * sizeof(float);
    return (size_t)c->num_layers * c->max_seq_len * 3 * c->channels * sizeof(floatX);
}

void gpt_ensure_decode_state(GPT* m) {
    if (m->logits_host) return;
    m->logits_host = malloc_check(m->config.padded_vocab_size * sizeof(float));
    if (m->config.mixer == MIXER_MLSTM) m->mlstm_state = m->k->alloc(gpt_decode_state_bytes(&m->config));
    else m->kv_cache = m->k->alloc(gpt_decode_state_bytes(&m->config));
}

MemoryPlan gpt_memory_plan(const GPT* m, int B, int T, bool sampling) {
    const GPTConfig* c = &m->config;
    size_t n = m->num_parameters, BT = (size_t)B * T;
    MemoryPlan p = {
        .params = n * sizeof(floatX),
        .grads = n * sizeof(floatX),
        .master = sizeof(floatX) == sizeof(float) ? 0 : n * sizeof(float),
        .optimizer = 2 * (m->opt_hi - m->opt_lo) * sizeof(float),
        .activations = point_acts(NULL, NULL, ACTS, NUM_ACTS, c, BT),
        .grad_scratch = point_acts(NULL, NULL, SCRATCH, NUM_SCRATCH, c, BT),
        .logits = BT * c->padded_vocab_size * sizeof(floatX) + BT * (2 * sizeof(int) + sizeof(float)),
        .decode = sampling && !m->kv_cache && !m->mlstm_state ? gpt_decode_state_bytes(c) : 0,
    };
    p.total = p.params + p.grads + p.master + p.optimizer + p.activations + p.grad_scratch + p.logits + p.decode;
    p.allocated = (m->params_memory ? p.params : 0) + (m->grads_memory ? p.grads : 0) +
                  (m->master_memory ? p.master : 0) + (m->m_memory ? p.optimizer : 0);
    return p;
}

void gpt_free(GPT* m) {
    const Kernels* k = m->k;
    free_activations(m);
    k->release(m->params_memory);
    if (m->grads_memory) k->release(m->grads_memory);
    if (m->m_memory) k->release(m->m_memory);
    if (m->v_memory) k->release(m->v_memory);
    if (m->kv_cache) k->release(m->kv_cache);
    if (m->stream_rows) k->release(m->stream_rows);
    if (m->mlstm_state) k->release(m->mlstm_state);
    if (m->master_memory) k->release(m->master_memory);
    if (m->step_losses) k->release(m->step_losses);
    free(m->step_losses_host);
    free(m->logits_host);
}
