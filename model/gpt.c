// The GPT-2 model graph (see gpt.h): written once, it calls every kernel through model->k, so
// the CPU and CUDA runs share each line below. One token's path: encoder -> L blocks
// (x += attn(ln1(x)); x += mlp(ln2(x))) -> final LayerNorm -> logits (tied wte) -> cross-entropy.
#include "model/gpt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/rng.h"

// ----------------------------------------------------------------------------
// config

static void set_gpt2_family(GPTConfig* c, int depth, const char* descriptor) {
    static const int table[][3] = {  // depth, channels, heads (llm.c's GPT-2 family)
        {6, 384, 6}, {12, 768, 12}, {24, 1024, 16}, {36, 1280, 20}, {48, 1600, 25}, {60, 1920, 30},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (table[i][0] == depth) {
            c->num_layers = depth;
            c->channels = table[i][1];
            c->num_heads = table[i][2];
            c->max_seq_len = 1024;
            c->vocab_size = 50257;
            c->padded_vocab_size = 50304;
            return;
        }
    }
    fail("-e %s: unknown GPT-2 depth %d (known: d6 d12 d24 d36 d48 d60)", descriptor, depth);
}

static int parse_int(const char* value, const char* key, const char* descriptor) {
    char* end;
    long v = strtol(value, &end, 10);
    if (end == value || *end != '\0') fail("-e %s: %s=%s is not an integer", descriptor, key, value);
    return (int)v;
}

static float parse_float(const char* value, const char* key, const char* descriptor) {
    char* end;
    float v = strtof(value, &end);
    if (end == value || *end != '\0' || !isfinite(v)) fail("-e %s: %s=%s is not a number", descriptor, key, value);
    return v;
}

static int parse_choice(const char* value, const char* key, const char* descriptor, const char* const* names, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(value, names[i])) return i;
    char known[256] = "";
    for (int i = 0; i < n; i++) snprintf(known + strlen(known), sizeof(known) - strlen(known), " %s", names[i]);
    fail("-e %s: unknown %s '%s' (known:%s)", descriptor, key, value, known);
}

static const char* const MIXER_NAMES[] = {"softmax", "sigmoid", "mlstm"};
static const char* const GATE_NAMES[] = {"none", "head", "elem"};
static const char* const IGATE_NAMES[] = {"exp", "sig"};

// One key=value of a descriptor; returns 1 if key was "bias" (an explicit sigmoid bias).
static int parse_key(GPTConfig* c, const char* key, const char* value, const char* descriptor) {
    if (!strcmp(key, "L")) c->num_layers = parse_int(value, key, descriptor);
    else if (!strcmp(key, "C")) c->channels = parse_int(value, key, descriptor);
    else if (!strcmp(key, "H")) c->num_heads = parse_int(value, key, descriptor);
    else if (!strcmp(key, "T")) c->max_seq_len = parse_int(value, key, descriptor);
    else if (!strcmp(key, "V")) c->vocab_size = parse_int(value, key, descriptor);
    else if (!strcmp(key, "Vp")) c->padded_vocab_size = parse_int(value, key, descriptor);
    else if (!strcmp(key, "mixer")) c->mixer = parse_choice(value, key, descriptor, MIXER_NAMES, 3);
    else if (!strcmp(key, "bias")) { c->sigmoid_bias = parse_float(value, key, descriptor); return 1; }
    else if (!strcmp(key, "norm")) c->sigmoid_norm = parse_int(value, key, descriptor);
    else if (!strcmp(key, "gate")) c->gate = parse_choice(value, key, descriptor, GATE_NAMES, 3);
    else if (!strcmp(key, "rope")) c->rope = parse_int(value, key, descriptor);
    else if (!strcmp(key, "qknorm")) c->qknorm = parse_int(value, key, descriptor);
    else if (!strcmp(key, "hybrid")) c->hybrid_norm = parse_int(value, key, descriptor);
    else if (!strcmp(key, "layerscale")) c->layerscale = parse_int(value, key, descriptor);
    else if (!strcmp(key, "igate")) c->mlstm_igate = parse_choice(value, key, descriptor, IGATE_NAMES, 2);
    else if (!strcmp(key, "chunk")) c->mlstm_chunk = parse_int(value, key, descriptor);
    else fail("-e %s: unknown key '%s' (known: L C H T V Vp mixer bias norm gate rope qknorm hybrid layerscale "
              "igate chunk)", descriptor, key);
    return 0;
}

GPTConfig gpt_config_from_descriptor(const char* descriptor) {
    GPTConfig c = {.max_seq_len = 1024, .vocab_size = 50257, .num_layers = 12, .num_heads = 12, .channels = 768,
                   .mlstm_chunk = 64};
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", descriptor);
    int bias_given = 0;
    for (char* item = strtok(buf, ","); item; item = strtok(NULL, ",")) {
        const char* family = strncmp(item, "gpt2:", 5) == 0 ? item + 5 : item;
        char* eq = strchr(item, '=');
        if (!eq && family[0] == 'd' && family[1] >= '0' && family[1] <= '9') {
            set_gpt2_family(&c, parse_int(family + 1, "depth", descriptor), descriptor);
            continue;
        }
        if (!eq) fail("-e %s: '%s' is not key=value", descriptor, item);
        *eq = '\0';
        bias_given |= parse_key(&c, item, eq + 1, descriptor);
    }
    if (c.padded_vocab_size == 0) c.padded_vocab_size = (c.vocab_size + 127) / 128 * 128;
    // sigmoid attention: b = -ln(n) with n the training context (METHODS.md 1.1)
    if (c.mixer == MIXER_SIGMOID && !bias_given) c.sigmoid_bias = -logf((float)c.max_seq_len);
    if (c.mixer == MIXER_MLSTM && c.gate == GATE_NONE) c.gate = GATE_ELEM;   // mLSTM's output gate
    gpt_config_validate(&c, descriptor);
    return c;
}

void gpt_config_validate(const GPTConfig* c, const char* what) {
    if (c->num_layers <= 0 || c->channels <= 0 || c->num_heads <= 0 || c->max_seq_len <= 0 || c->vocab_size <= 0)
        fail("%s: model sizes must be positive (L=%d C=%d H=%d T=%d V=%d)", what, c->num_layers, c->channels,
             c->num_heads, c->max_seq_len, c->vocab_size);
    if (c->channels % c->num_heads != 0)
        fail("%s: channels C=%d is not divisible by heads H=%d", what, c->channels, c->num_heads);
    if (c->padded_vocab_size < c->vocab_size)
        fail("%s: padded vocabulary Vp=%d is smaller than V=%d", what, c->padded_vocab_size, c->vocab_size);
    if (c->mixer < MIXER_SOFTMAX || c->mixer > MIXER_MLSTM || c->gate < GATE_NONE || c->gate > GATE_ELEM ||
        c->mlstm_igate < IGATE_EXP || c->mlstm_igate > IGATE_SIG)
        fail("%s: unknown mixer %d, gate %d or input gate %d", what, c->mixer, c->gate, c->mlstm_igate);
    int flags[] = {c->sigmoid_norm, c->rope, c->qknorm, c->hybrid_norm, c->layerscale};
    for (int i = 0; i < 5; i++)
        if (flags[i] != 0 && flags[i] != 1) fail("%s: norm, rope, qknorm, hybrid and layerscale take 0 or 1", what);
    if (c->sigmoid_norm && c->mixer != MIXER_SIGMOID) fail("%s: norm=1 applies to mixer=sigmoid only", what);
    if (c->rope && (c->channels / c->num_heads) % 2 != 0)
        fail("%s: RoPE needs an even head size (C/H = %d)", what, c->channels / c->num_heads);
    if (c->mixer == MIXER_MLSTM) {
        if (c->rope || c->qknorm) fail("%s: rope and qknorm apply to the attention mixers, not mlstm", what);
        if (c->gate != GATE_ELEM) fail("%s: mlstm has an elementwise output gate; gate=%s is not possible", what,
                                       GATE_NAMES[c->gate]);
        if (c->mlstm_chunk <= 0) fail("%s: chunk=%d must be positive", what, c->mlstm_chunk);
    }
}

// ----------------------------------------------------------------------------
// memory layout

static int gate_width(const GPTConfig* c) {
    return c->gate == GATE_HEAD ? c->num_heads : c->gate == GATE_ELEM ? c->channels : 0;
}

static void parameter_sizes(size_t* sizes, const GPTConfig* c) {
    size_t Vp = c->padded_vocab_size, C = c->channels, maxT = c->max_seq_len, L = c->num_layers;
    size_t NH = c->num_heads, hs = C / NH, G = gate_width(c);
    int mlstm = c->mixer == MIXER_MLSTM;
    size_t shapes[NUM_PARAMETER_TENSORS] = {
        Vp * C, c->rope ? 0 : maxT * C, L * C, L * C, L * 3 * C * C, L * 3 * C, L * C * C, L * C,
        L * C, L * C, L * 4 * C * C, L * 4 * C, L * C * 4 * C, L * C, C, C,
        L * G * C, L * G,                                                        // gatew, gateb
        c->qknorm * L * hs, c->qknorm * L * hs, c->qknorm * L * hs, c->qknorm * L * hs,
        c->hybrid_norm * L * C, c->hybrid_norm * L * C,                        // lnhw, lnhb
        c->layerscale * L * C, c->layerscale * L * C,                          // ls1, ls2
        mlstm * L * 2 * NH * C, mlstm * L * 2 * NH, mlstm * L * C,             // ifw, ifb, hnormw
    };
    memcpy(sizes, shapes, sizeof(shapes));
}

int gpt_param_decays(int i) {   // the 2-D tensors
    return i == P_WTE || i == P_WPE || i == P_QKVW || i == P_ATTPROJW || i == P_FCW || i == P_FCPROJW ||
           i == P_GATEW || i == P_IFW;
}

// Points each of n floatX tensors (a struct of floatX*) at its slice of one contiguous buffer.
static void point_tensors(floatX** tensors, floatX* memory, const size_t* sizes, int n) {
    for (int i = 0; i < n; i++) {
        tensors[i] = memory;
        memory += sizes[i];
    }
}

// The activations mix floatX tensors and float statistics: each slice starts 64-byte aligned.
// Points tensors into memory (when not NULL) and returns the bytes the n slices need.
static size_t point_activations(void** tensors, char* memory, const size_t* counts, const int* is_stat, int n) {
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        if (memory) tensors[i] = memory + offset;
        offset += (counts[i] * (is_stat[i] ? sizeof(float) : sizeof(floatX)) + 63) / 64 * 64;
    }
    return offset;
}

// Which activation tensors are float statistics (the rest are floatX), in ActivationTensors order.
static const int ACTIVATION_IS_STAT[NUM_ACTIVATION_TENSORS] = {
    0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1,
};

static size_t sum_sizes(const size_t* sizes, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += sizes[i];
    return total;
}

// A kernel set may not have every mixer yet (the CUDA set, say): refuse a model it cannot run.
static void check_kernels(const GPTConfig* c, const Kernels* k) {
    struct { int needed; const void* kernel; const char* what; } needs[] = {
        {c->gate != GATE_NONE, (const void*)k->gate_forward, "the output gate (gate=)"},
        {c->rope, (const void*)k->rope_forward, "RoPE"},
        {c->qknorm, (const void*)k->qknorm_forward, "QK-norm"},
        {c->layerscale, (const void*)k->layerscale_forward, "LayerScale"},
        {c->mixer == MIXER_MLSTM, (const void*)k->mlstm_chunkwise_forward, "the mLSTM mixer"},
        {c->mixer == MIXER_MLSTM, (const void*)k->headnorm_forward, "the mLSTM head norm"},
    };
    for (size_t i = 0; i < sizeof(needs) / sizeof(needs[0]); i++)
        if (needs[i].needed && !needs[i].kernel)
            fail("the %s kernel set has no kernels for %s yet; train this model with the CPU build", k->name,
                 needs[i].what);
}

void gpt_build(GPT* model, const GPTConfig* config, const Kernels* k) {
    check_kernels(config, k);
    memset(model, 0, sizeof(*model));
    model->config = *config;
    model->k = k;
    parameter_sizes(model->param_sizes, config);
    model->num_parameters = sum_sizes(model->param_sizes, NUM_PARAMETER_TENSORS);
    model->params_memory = k->alloc(model->num_parameters * sizeof(floatX));
    point_tensors((floatX**)&model->params, model->params_memory, model->param_sizes, NUM_PARAMETER_TENSORS);
}

static void fill_normal(float* x, size_t n, float std, Rng* rng) {
    for (size_t i = 0; i < n; i++) x[i] = std * rng_normal(rng);
}

static void fill_value(float* x, size_t n, float value) {
    for (size_t i = 0; i < n; i++) x[i] = value;
}

// mLSTM gate biases (METHODS.md 4.6): input gate -10, forget gate linspace(3, 6) over the heads.
static void init_mlstm_gate_bias(float* ifb, int L, int NH) {
    for (int l = 0; l < L; l++) {
        float* b = ifb + (size_t)l * 2 * NH;
        for (int h = 0; h < NH; h++) {
            b[h] = -10.0f;
            b[NH + h] = NH > 1 ? 3.0f + 3.0f * h / (NH - 1) : 3.0f;
        }
    }
}

void gpt_init_random(GPT* model, uint64_t seed) {
    const GPTConfig* c = &model->config;
    const size_t* n = model->param_sizes;
    float* host = calloc_check(model->num_parameters, sizeof(float));   // biases and the rest start at 0
    float* t[NUM_PARAMETER_TENSORS];                                    // each tensor's host slice
    for (size_t i = 0, off = 0; i < NUM_PARAMETER_TENSORS; off += n[i], i++) t[i] = host + off;
    Rng rng;
    rng_seed(&rng, seed);
    // llm.c's init: N(0, 0.02), the residual projections N(0, 0.02/sqrt(2L)); padded vocab rows stay 0
    float std = 0.02f, std_residual = 0.02f / sqrtf(2.0f * c->num_layers);
    fill_normal(t[P_WTE], (size_t)c->vocab_size * c->channels, std, &rng);
    fill_normal(t[P_WPE], n[P_WPE], std, &rng);
    fill_normal(t[P_QKVW], n[P_QKVW], std, &rng);
    fill_normal(t[P_ATTPROJW], n[P_ATTPROJW], std_residual, &rng);
    fill_normal(t[P_FCW], n[P_FCW], std, &rng);
    fill_normal(t[P_FCPROJW], n[P_FCPROJW], std_residual, &rng);
    fill_normal(t[P_GATEW], n[P_GATEW], std, &rng);   // the gated-attention reference's init (METHODS.md 3.2)
    int ones[] = {P_LN1W, P_LN2W, P_LNFW, P_QNORMW, P_KNORMW, P_LNHW, P_HNORMW};
    for (int i = 0; i < 7; i++) fill_value(t[ones[i]], n[ones[i]], 1.0f);
    fill_value(t[P_LS1], n[P_LS1], 1e-4f);
    fill_value(t[P_LS2], n[P_LS2], 1e-4f);
    if (c->mixer == MIXER_MLSTM) init_mlstm_gate_bias(t[P_IFB], c->num_layers, c->num_heads);
    gpt_set_parameters(model, host);
    free(host);
}

static void activation_sizes(size_t* s, const GPTConfig* c, int B, int T) {
    size_t BT = (size_t)B * T, C = c->channels, L = c->num_layers, NH = c->num_heads, G = gate_width(c);
    size_t mlstm = c->mixer == MIXER_MLSTM, qkn = c->qknorm, hyb = c->hybrid_norm, gated = G > 0;
    size_t sizes[NUM_ACTIVATION_TENSORS] = {
        BT * C, L * BT * C, L * BT, L * BT,                        // encoded, ln1, ln1_mean, ln1_rstd
        qkn * L * BT * 3 * C, qkn * L * BT * 2 * NH, qkn * L * BT * 2 * NH, L * BT * 3 * C,
        mlstm * L * BT * 2 * NH, mlstm * L * BT * C, mlstm * L * BT * NH, mlstm * L * BT * NH,
        L * BT * NH, mlstm * L * BT * NH, L * BT * C,              // att_stat, att_m, atty
        L * BT * G, gated * L * BT * C, L * BT * C,                // gate_pre, gated, attproj
        hyb * L * BT * C, hyb * L * BT, hyb * L * BT,              // lnh, lnh_mean, lnh_rstd
        L * BT * C, L * BT * C, L * BT, L * BT,                    // residual2, ln2, ln2_mean, ln2_rstd
        L * BT * 4 * C, L * BT * 4 * C, L * BT * C, L * BT * C,    // fch, fch_gelu, fcproj, residual3
        BT * C, BT, BT,                                            // lnf, lnf_mean, lnf_rstd
    };
    memcpy(s, sizes, sizeof(sizes));
}

static void scratch_sizes(size_t* s, const GPTConfig* c, int B, int T) {
    size_t BT = (size_t)B * T, C = c->channels, NH = c->num_heads, G = gate_width(c);
    size_t pre = c->rope || c->qknorm, mlstm = c->mixer == MIXER_MLSTM;
    size_t sizes[NUM_SCRATCH_TENSORS] = {
        BT * C, BT * C, BT * C, BT * C, BT * C, BT * C, BT * G,   // dresidual .. dgate_pre
        BT * 3 * C, pre * BT * 3 * C, mlstm * BT * 2 * NH, BT * 4 * C, BT * 4 * C,
    };
    memcpy(s, sizes, sizeof(sizes));
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

// Sizes the activations for (B, T); reallocates only when a larger batch arrives.
static void ensure_activations(GPT* m, int B, int T) {
    if (m->acts_memory && B <= m->batch_size && T <= m->seq_len) return;
    free_activations(m);
    const Kernels* k = m->k;
    size_t sizes[NUM_ACTIVATION_TENSORS], dsizes[NUM_SCRATCH_TENSORS];
    activation_sizes(sizes, &m->config, B, T);
    size_t act_bytes = point_activations(NULL, NULL, sizes, ACTIVATION_IS_STAT, NUM_ACTIVATION_TENSORS);
    m->acts_memory = k->alloc(act_bytes);
    point_activations((void**)&m->acts, m->acts_memory, sizes, ACTIVATION_IS_STAT, NUM_ACTIVATION_TENSORS);
    scratch_sizes(dsizes, &m->config, B, T);
    m->scratch_memory = k->alloc(sum_sizes(dsizes, NUM_SCRATCH_TENSORS) * sizeof(floatX));
    point_tensors((floatX**)&m->scratch, m->scratch_memory, dsizes, NUM_SCRATCH_TENSORS);
    size_t BT = (size_t)B * T;
    m->logits = k->alloc(BT * m->config.padded_vocab_size * sizeof(floatX));
    m->losses = k->alloc(BT * sizeof(float));
    m->inputs = k->alloc(BT * sizeof(int));
    m->targets = k->alloc(BT * sizeof(int));
    m->losses_host = malloc_check(BT * sizeof(float));
    m->batch_size = B;
    m->seq_len = T;
}

void gpt_reserve(GPT* m, int B, int T) { ensure_activations(m, B, T); }

// The decoding state: per layer, the KV cache (maxT x 3C floatX: q, k, v rows as the forward lays
// them out) or the mLSTM memory (per head C (hs x hs), n (hs), m (1), fp32).
static size_t decode_state_bytes(const GPTConfig* c) {
    size_t hs = c->channels / c->num_heads;
    if (c->mixer == MIXER_MLSTM) return (size_t)c->num_layers * c->num_heads * (hs * hs + hs + 1) * sizeof(float);
    return (size_t)c->num_layers * c->max_seq_len * 3 * c->channels * sizeof(floatX);
}

MemoryPlan gpt_memory_plan(const GPT* m, int B, int T, bool sampling) {
    size_t sizes[NUM_ACTIVATION_TENSORS], dsizes[NUM_SCRATCH_TENSORS], n = m->num_parameters;
    size_t BT = (size_t)B * T;
    activation_sizes(sizes, &m->config, B, T);
    scratch_sizes(dsizes, &m->config, B, T);
    MemoryPlan p = {
        .params = n * sizeof(floatX),
        .grads = n * sizeof(floatX),
        .master = sizeof(floatX) == sizeof(float) ? 0 : n * sizeof(float),
        .optimizer = 2 * n * sizeof(float),
        .activations = point_activations(NULL, NULL, sizes, ACTIVATION_IS_STAT, NUM_ACTIVATION_TENSORS),
        .grad_scratch = sum_sizes(dsizes, NUM_SCRATCH_TENSORS) * sizeof(floatX),
        .logits = BT * m->config.padded_vocab_size * sizeof(floatX) + BT * (2 * sizeof(int) + sizeof(float)),
        .decode = sampling && !m->kv_cache && !m->mlstm_state ? decode_state_bytes(&m->config) : 0,
    };
    p.total = p.params + p.grads + p.master + p.optimizer + p.activations + p.grad_scratch + p.logits + p.decode;
    p.allocated = (m->params_memory ? p.params : 0) + (m->grads_memory ? p.grads : 0) +
                  (m->master_memory ? p.master : 0) + (m->m_memory ? p.optimizer : 0);
    return p;
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

// host (n floats) = src (n floatX in kernel memory); with floatX = float a plain download.
static void download_floats(const Kernels* k, float* host, const floatX* src, size_t n) {
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
    else download_floats(m->k, host, m->params_memory, m->num_parameters);
}

void gpt_get_gradients(const GPT* m, float* host) { download_floats(m->k, host, m->grads_memory, m->num_parameters); }

void gpt_get_logits(const GPT* m, size_t row, float* out) {
    size_t Vp = m->config.padded_vocab_size;
    download_floats(m->k, out, m->logits + row * Vp, Vp);
}

void gpt_free(GPT* m) {
    const Kernels* k = m->k;
    free_activations(m);
    k->release(m->params_memory);
    if (m->grads_memory) k->release(m->grads_memory);
    if (m->m_memory) k->release(m->m_memory);
    if (m->v_memory) k->release(m->v_memory);
    if (m->kv_cache) k->release(m->kv_cache);
    if (m->mlstm_state) k->release(m->mlstm_state);
    if (m->master_memory) k->release(m->master_memory);
    free(m->logits_host);
}

// ----------------------------------------------------------------------------
// per-layer views

// One layer's slices of the saved activations. The per-layer stride uses the allocated
// (batch_size, seq_len), so a smaller decode batch reuses the same buffers.
typedef struct {
    floatX *ln1, *qkv_pre, *qkv, *mix_gates, *mix_h, *atty, *gate_pre, *gated, *attproj, *lnh, *residual2;
    floatX *ln2, *fch, *fch_gelu, *fcproj, *residual3;
    float *ln1_mean, *ln1_rstd, *qk_mean, *qk_rstd, *hn_mean, *hn_rstd, *att_stat, *att_m, *lnh_mean, *lnh_rstd;
    float *ln2_mean, *ln2_rstd;
} LayerActs;

static LayerActs layer_acts(const GPT* m, int l) {
    const ActivationTensors* a = &m->acts;
    const GPTConfig* c = &m->config;
    size_t BT = (size_t)m->batch_size * m->seq_len, C = c->channels, NH = c->num_heads, G = gate_width(c);
    size_t mlstm = c->mixer == MIXER_MLSTM, qkn = c->qknorm, hyb = c->hybrid_norm, gated = G > 0;
    return (LayerActs){
        .ln1 = a->ln1 + l * BT * C, .ln1_mean = a->ln1_mean + l * BT, .ln1_rstd = a->ln1_rstd + l * BT,
        .qkv_pre = a->qkv_pre + qkn * l * BT * 3 * C, .qk_mean = a->qk_mean + qkn * l * BT * 2 * NH,
        .qk_rstd = a->qk_rstd + qkn * l * BT * 2 * NH, .qkv = a->qkv + l * BT * 3 * C,
        .mix_gates = a->mix_gates + mlstm * l * BT * 2 * NH, .mix_h = a->mix_h + mlstm * l * BT * C,
        .hn_mean = a->hn_mean + mlstm * l * BT * NH, .hn_rstd = a->hn_rstd + mlstm * l * BT * NH,
        .att_stat = a->att_stat + l * BT * NH, .att_m = a->att_m + mlstm * l * BT * NH, .atty = a->atty + l * BT * C,
        .gate_pre = a->gate_pre + l * BT * G, .gated = a->gated + gated * l * BT * C,
        .attproj = a->attproj + l * BT * C, .lnh = a->lnh + hyb * l * BT * C, .lnh_mean = a->lnh_mean + hyb * l * BT,
        .lnh_rstd = a->lnh_rstd + hyb * l * BT, .residual2 = a->residual2 + l * BT * C, .ln2 = a->ln2 + l * BT * C,
        .ln2_mean = a->ln2_mean + l * BT, .ln2_rstd = a->ln2_rstd + l * BT, .fch = a->fch + l * BT * 4 * C,
        .fch_gelu = a->fch_gelu + l * BT * 4 * C, .fcproj = a->fcproj + l * BT * C,
        .residual3 = a->residual3 + l * BT * C,
    };
}

// One layer's slices of the parameters (or of the gradients: same layout).
typedef struct {
    floatX *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;
    floatX *gatew, *gateb, *qnormw, *qnormb, *knormw, *knormb, *lnhw, *lnhb, *ls1, *ls2, *ifw, *ifb, *hnormw;
} LayerParams;

static LayerParams layer_params(const ParameterTensors* p, int l, const GPTConfig* c) {
    size_t C = c->channels, NH = c->num_heads, hs = C / NH, G = gate_width(c);
    size_t mlstm = c->mixer == MIXER_MLSTM, qkn = c->qknorm, hyb = c->hybrid_norm, ls = c->layerscale;
    return (LayerParams){
        p->ln1w + l * C, p->ln1b + l * C, p->qkvw + l * 3 * C * C, p->qkvb + l * 3 * C,
        p->attprojw + l * C * C, p->attprojb + l * C, p->ln2w + l * C, p->ln2b + l * C,
        p->fcw + l * 4 * C * C, p->fcb + l * 4 * C, p->fcprojw + l * 4 * C * C, p->fcprojb + l * C,
        p->gatew + l * G * C, p->gateb + l * G, p->qnormw + qkn * l * hs, p->qnormb + qkn * l * hs,
        p->knormw + qkn * l * hs, p->knormb + qkn * l * hs, p->lnhw + hyb * l * C, p->lnhb + hyb * l * C,
        p->ls1 + ls * l * C, p->ls2 + ls * l * C, p->ifw + mlstm * l * 2 * NH * C, p->ifb + mlstm * l * 2 * NH,
        p->hnormw + mlstm * l * C,
    };
}

static AttnScore attn_score(const GPTConfig* c) {
    return (AttnScore){.sigmoid = c->mixer == MIXER_SIGMOID, .bias = c->sigmoid_bias, .normalize = c->sigmoid_norm};
}

// ----------------------------------------------------------------------------
// forward

// Where a forward keeps q, k, v: this batch's activations, or (decoding, B = 1) the KV cache.
typedef struct {
    int use_cache, pos0;
} DecodeState;

// softmax / sigmoid: qkv projection -> [QK-norm] -> [RoPE] -> attention. ln1 -> atty.
static void attention_mixer_forward(GPT* m, int l, int B, int T, DecodeState d) {
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    int C = c->channels, NH = c->num_heads, N = B * T;
    LayerActs a = layer_acts(m, l);
    LayerParams p = layer_params(&m->params, l, c);
    floatX* cache = d.use_cache ? m->kv_cache + (size_t)l * c->max_seq_len * 3 * C : NULL;
    floatX* qkv = d.use_cache ? cache + (size_t)d.pos0 * 3 * C : a.qkv;
    k->matmul_forward(c->qknorm ? a.qkv_pre : qkv, a.ln1, p.qkvw, p.qkvb, N, C, 3 * C);
    if (c->qknorm)
        k->qknorm_forward(qkv, a.qk_mean, a.qk_rstd, a.qkv_pre, p.qnormw, p.qnormb, p.knormw, p.knormb, N, C, NH);
    if (c->rope) k->rope_forward(qkv, qkv, B, T, C, NH, d.pos0);
    if (d.use_cache)
        k->attention_forward(a.atty, a.att_stat, cache, B, T, d.pos0 + T, c->max_seq_len, C, NH, attn_score(c));
    else
        k->attention_forward(a.atty, a.att_stat, qkv, B, T, T, T, C, NH, attn_score(c));
}

// mLSTM: q, k, v and gate projections -> cell (chunkwise, or recurrent steps when decoding)
// -> per-head norm. ln1 -> atty (the output gate and projection follow in mixer_forward).
static void mlstm_mixer_forward(GPT* m, int l, int B, int T, DecodeState d) {
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    int C = c->channels, NH = c->num_heads, hs = C / NH, N = B * T, sig = c->mlstm_igate == IGATE_SIG;
    LayerActs a = layer_acts(m, l);
    LayerParams p = layer_params(&m->params, l, c);
    k->matmul_forward(a.qkv, a.ln1, p.qkvw, p.qkvb, N, C, 3 * C);
    k->matmul_forward(a.mix_gates, a.ln1, p.ifw, p.ifb, N, C, 2 * NH);
    if (d.use_cache) {
        float* state = m->mlstm_state + (size_t)l * NH * (hs * hs + hs + 1);
        float *c_state = state, *n_state = c_state + (size_t)NH * hs * hs, *m_state = n_state + (size_t)NH * hs;
        for (int t = 0; t < T; t++)
            k->mlstm_recurrent_step(a.mix_h + (size_t)t * C, c_state, n_state, m_state, a.qkv + (size_t)t * 3 * C,
                                    a.mix_gates + (size_t)t * 2 * NH, 1, C, NH, sig);
    } else {
        k->mlstm_chunkwise_forward(a.mix_h, a.att_stat, a.att_m, a.qkv, a.mix_gates, B, T, C, NH, c->mlstm_chunk, sig);
    }
    k->headnorm_forward(a.atty, a.hn_mean, a.hn_rstd, a.mix_h, p.hnormw, N, NH, hs, 1e-6f);
}

// Where a residual add's sum goes next: the following LayerNorm's output, statistics and weights.
typedef struct {
    floatX* out;
    float *mean, *rstd;
    const floatX *weight, *bias;
} NormTarget;

// The LayerNorm after block l: ln1 of block l+1, or the final one.
static NormTarget norm_after(GPT* m, int l) {
    if (l + 1 == m->config.num_layers)
        return (NormTarget){m->acts.lnf, m->acts.lnf_mean, m->acts.lnf_rstd, m->params.lnfw, m->params.lnfb};
    LayerActs a = layer_acts(m, l + 1);
    LayerParams p = layer_params(&m->params, l + 1, &m->config);
    return (NormTarget){a.ln1, a.ln1_mean, a.ln1_rstd, p.ln1w, p.ln1b};
}

// out = residual + [scale *] branch (LayerScale when scale is not NULL), and its LayerNorm into
// norm, in one fused kernel; out may be the branch's buffer.
static void add_branch_and_norm(const Kernels* k, floatX* out, const floatX* residual, const floatX* branch,
                                const floatX* scale, NormTarget norm, int N, int C) {
    if (scale) {
        k->layerscale_forward(out, branch, scale, N, C);
        branch = out;
    }
    k->residual_layernorm_forward(out, norm.out, norm.mean, norm.rstd, residual, branch, norm.weight, norm.bias, N,
                                  C);
}

// One block, its ln1 already computed from residual: x += mixer(ln1(x)) [through the hybrid norm and
// LayerScale]; x += mlp(ln2(x)); then the next LayerNorm of the sum.
static void block_forward(GPT* m, int l, const floatX* residual, int B, int T, DecodeState d) {
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    int C = c->channels, NH = c->num_heads, N = B * T;
    LayerActs a = layer_acts(m, l);
    LayerParams p = layer_params(&m->params, l, c);
    if (c->mixer == MIXER_MLSTM) mlstm_mixer_forward(m, l, B, T, d);
    else attention_mixer_forward(m, l, B, T, d);
    const floatX* mixed = a.atty;
    if (c->gate != GATE_NONE) {   // G1 gate (mLSTM: the output gate), from the same normed input
        k->matmul_forward(a.gate_pre, a.ln1, p.gatew, p.gateb, N, C, gate_width(c));
        k->gate_forward(a.gated, a.atty, a.gate_pre, N, NH, C / NH, c->gate == GATE_HEAD);
        mixed = a.gated;
    }
    k->matmul_forward(a.attproj, mixed, p.attprojw, p.attprojb, N, C, C);
    const floatX* branch = a.attproj;
    if (c->hybrid_norm) {
        k->layernorm_forward(a.lnh, a.lnh_mean, a.lnh_rstd, a.attproj, p.lnhw, p.lnhb, N, C);
        branch = a.lnh;
    }
    NormTarget ln2 = {a.ln2, a.ln2_mean, a.ln2_rstd, p.ln2w, p.ln2b};
    add_branch_and_norm(k, a.residual2, residual, branch, c->layerscale ? p.ls1 : NULL, ln2, N, C);
    k->matmul_gelu_forward(a.fch_gelu, a.fch, a.ln2, p.fcw, p.fcb, N, C, 4 * C);
    k->matmul_forward(a.fcproj, a.fch_gelu, p.fcprojw, p.fcprojb, N, 4 * C, C);
    add_branch_and_norm(k, a.residual3, a.residual2, a.fcproj, c->layerscale ? p.ls2 : NULL, norm_after(m, l), N, C);
}

// Encoder, blocks and head over tokens at positions pos0..pos0+T-1.
static void forward_blocks(GPT* m, int B, int T, DecodeState d) {
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    int C = c->channels;
    const floatX* wpe = c->rope ? NULL : m->params.wpe + (size_t)d.pos0 * C;
    k->encoder_forward(m->acts.encoded, m->inputs, m->params.wte, wpe, B, T, C);
    LayerActs a0 = layer_acts(m, 0);
    k->layernorm_forward(a0.ln1, a0.ln1_mean, a0.ln1_rstd, m->acts.encoded, m->params.ln1w, m->params.ln1b, B * T, C);
    const floatX* residual = m->acts.encoded;
    for (int l = 0; l < c->num_layers; l++) {
        block_forward(m, l, residual, B, T, d);
        residual = layer_acts(m, l).residual3;
    }
    k->matmul_forward(m->logits, m->acts.lnf, m->params.wte, NULL, B * T, C, c->padded_vocab_size);
}

static void check_inputs(const GPT* m, const int* inputs, const int* targets, int N) {
    for (int i = 0; i < N; i++) {
        if (inputs[i] < 0 || inputs[i] >= m->config.vocab_size)
            fail("input token id %d at position %d is outside the vocabulary (V=%d)", inputs[i], i,
                 m->config.vocab_size);
        if (targets && (targets[i] < 0 || targets[i] >= m->config.vocab_size))
            fail("target token id %d at position %d is outside the vocabulary (V=%d)", targets[i], i,
                 m->config.vocab_size);
    }
}

float gpt_forward(GPT* m, const int* inputs, const int* targets, int B, int T) {
    const GPTConfig* c = &m->config;
    if (T > c->max_seq_len)
        fail("sequence length T=%d exceeds the model's maximum %d", T, c->max_seq_len);
    check_inputs(m, inputs, targets, B * T);
    ensure_activations(m, B, T);
    const Kernels* k = m->k;
    int N = B * T;
    k->upload(m->inputs, inputs, N * sizeof(int));
    forward_blocks(m, B, T, (DecodeState){0, 0});
    m->mean_loss = -1.0f;
    if (!targets) return m->mean_loss;
    k->upload(m->targets, targets, N * sizeof(int));
    k->crossentropy_forward_backward(m->losses, NULL, m->logits, m->targets, 0.0f, N, c->vocab_size,
                                     c->padded_vocab_size);
    k->download(m->losses_host, m->losses, N * sizeof(float));
    double sum = 0.0;
    for (int i = 0; i < N; i++) sum += m->losses_host[i];
    m->mean_loss = (float)(sum / N);
    return m->mean_loss;
}

static void ensure_decode_state(GPT* m) {
    const GPTConfig* c = &m->config;
    const Kernels* k = m->k;
    if (m->logits_host) return;
    m->logits_host = malloc_check(c->padded_vocab_size * sizeof(float));
    if (c->mixer == MIXER_MLSTM) m->mlstm_state = k->alloc(decode_state_bytes(c));
    else m->kv_cache = k->alloc(decode_state_bytes(c));
}

const float* gpt_decode(GPT* m, const int* tokens, int T, int pos0) {
    const GPTConfig* c = &m->config;
    const Kernels* k = m->k;
    if (pos0 + T > c->max_seq_len)
        fail("decoding position %d exceeds the model's maximum sequence length %d", pos0 + T, c->max_seq_len);
    check_inputs(m, tokens, NULL, T);
    ensure_activations(m, 1, T);
    ensure_decode_state(m);
    if (m->mlstm_state && pos0 == 0) {   // a new sequence starts from the zero state
        size_t hs = c->channels / c->num_heads;
        k->zero(m->mlstm_state, (size_t)c->num_layers * c->num_heads * (hs * hs + hs + 1) * sizeof(float));
    }
    k->upload(m->inputs, tokens, T * sizeof(int));
    forward_blocks(m, 1, T, (DecodeState){1, pos0});
    gpt_get_logits(m, T - 1, m->logits_host);
    return m->logits_host;
}

// ----------------------------------------------------------------------------
// backward

static void ensure_grads(GPT* m) {
    if (m->grads_memory) return;
    m->grads_memory = m->k->alloc(m->num_parameters * sizeof(floatX));
    point_tensors((floatX**)&m->grads, m->grads_memory, m->param_sizes, NUM_PARAMETER_TENSORS);
    m->k->zero(m->grads_memory, m->num_parameters * sizeof(floatX));
}

void gpt_zero_grad(GPT* m) {
    ensure_grads(m);
    m->k->zero(m->grads_memory, m->num_parameters * sizeof(floatX));
}

// Gradient inside a residual branch: dresidual itself, or through LayerScale into dbranch.
static const floatX* branch_grad(GPT* m, const floatX* dresidual, const floatX* branch, floatX* dscale,
                                 const floatX* scale, int N, int C) {
    if (!scale) return dresidual;
    m->k->zero(m->scratch.dbranch, (size_t)N * C * sizeof(floatX));
    m->k->layerscale_backward(m->scratch.dbranch, dscale, dresidual, branch, scale, N, C);
    return m->scratch.dbranch;
}

// softmax / sigmoid: datty -> [RoPE, QK-norm] -> qkv projection; accumulates into scratch.dln.
static void attention_mixer_backward(GPT* m, int l, int B, int T) {
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    int C = c->channels, NH = c->num_heads, N = B * T;
    LayerActs a = layer_acts(m, l);
    LayerParams p = layer_params(&m->params, l, c), g = layer_params(&m->grads, l, c);
    GradScratch* s = &m->scratch;
    size_t qkv_bytes = (size_t)N * 3 * C * sizeof(floatX);
    k->zero(s->dqkv, qkv_bytes);
    k->attention_backward(s->dqkv, s->datty, a.qkv, a.atty, a.att_stat, B, T, C, NH, attn_score(c));
    floatX *dq = s->dqkv, *spare = s->dqkv_pre;   // the gradient moves between the two buffers
    if (c->rope) {
        k->zero(spare, qkv_bytes);
        k->rope_backward(spare, dq, B, T, C, NH, 0);
        spare = dq, dq = s->dqkv_pre;
    }
    if (c->qknorm) {
        k->zero(spare, qkv_bytes);
        k->qknorm_backward(spare, g.qnormw, g.qnormb, g.knormw, g.knormb, dq, a.qkv_pre, p.qnormw, p.knormw,
                           a.qk_mean, a.qk_rstd, N, C, NH);
        dq = spare;
    }
    k->matmul_backward(s->dln, g.qkvw, g.qkvb, dq, a.ln1, p.qkvw, N, C, 3 * C);
}

// mLSTM: datty -> head norm -> cell (chunkwise) -> q, k, v and gate projections; into scratch.dln.
// scratch.dgated (free once the output gate's backward has run) holds the cell output's gradient.
static void mlstm_mixer_backward(GPT* m, int l, int B, int T) {
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    int C = c->channels, NH = c->num_heads, hs = C / NH, N = B * T, sig = c->mlstm_igate == IGATE_SIG;
    LayerActs a = layer_acts(m, l);
    LayerParams p = layer_params(&m->params, l, c), g = layer_params(&m->grads, l, c);
    GradScratch* s = &m->scratch;
    floatX* dh = s->dgated;
    k->zero(dh, (size_t)N * C * sizeof(floatX));
    k->headnorm_backward(dh, g.hnormw, s->datty, a.mix_h, p.hnormw, a.hn_mean, a.hn_rstd, N, NH, hs);
    k->zero(s->dqkv, (size_t)N * 3 * C * sizeof(floatX));
    k->zero(s->dgates, (size_t)N * 2 * NH * sizeof(floatX));
    k->mlstm_chunkwise_backward(s->dqkv, s->dgates, dh, a.qkv, a.mix_gates, a.att_stat, a.att_m, B, T, C, NH,
                                c->mlstm_chunk, sig);
    k->matmul_backward(s->dln, g.ifw, g.ifb, s->dgates, a.ln1, p.ifw, N, C, 2 * NH);
    k->matmul_backward(s->dln, g.qkvw, g.qkvb, s->dqkv, a.ln1, p.qkvw, N, C, 3 * C);
}

// One block, last op first. On entry scratch.dresidual holds d(residual3); on exit d(block input).
static void block_backward(GPT* m, int l, int B, int T) {
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    int C = c->channels, NH = c->num_heads, N = B * T;
    LayerActs a = layer_acts(m, l);
    LayerParams p = layer_params(&m->params, l, c), g = layer_params(&m->grads, l, c);
    GradScratch* s = &m->scratch;
    const floatX* block_input = l == 0 ? m->acts.encoded : layer_acts(m, l - 1).residual3;
    size_t bytes = (size_t)N * C * sizeof(floatX);
    // mlp: residual3 = residual2 + [ls2 *] fcproj(gelu(fc(ln2(residual2))))
    const floatX* dfcproj = branch_grad(m, s->dresidual, a.fcproj, g.ls2, c->layerscale ? p.ls2 : NULL, N, C);
    k->zero(s->dfch_gelu, 4 * bytes);
    k->matmul_backward(s->dfch_gelu, g.fcprojw, g.fcprojb, dfcproj, a.fch_gelu, p.fcprojw, N, 4 * C, C);
    k->zero(s->dfch, 4 * bytes);
    k->gelu_backward(s->dfch, a.fch, s->dfch_gelu, N * 4 * C);
    k->zero(s->dln, bytes);
    k->matmul_backward(s->dln, g.fcw, g.fcb, s->dfch, a.ln2, p.fcw, N, C, 4 * C);
    k->layernorm_backward(s->dresidual, g.ln2w, g.ln2b, s->dln, a.residual2, p.ln2w, a.ln2_mean, a.ln2_rstd, N, C);
    // mixer: residual2 = input + [ls1 *] [hybrid norm] attproj(gate(mixer(ln1(input))))
    const floatX* dattproj = branch_grad(m, s->dresidual, c->hybrid_norm ? a.lnh : a.attproj, g.ls1,
                                        c->layerscale ? p.ls1 : NULL, N, C);
    if (c->hybrid_norm) {
        k->zero(s->dattproj, bytes);
        k->layernorm_backward(s->dattproj, g.lnhw, g.lnhb, dattproj, a.attproj, p.lnhw, a.lnh_mean, a.lnh_rstd, N, C);
        dattproj = s->dattproj;
    }
    int gated = c->gate != GATE_NONE;
    floatX* dmixed = gated ? s->dgated : s->datty;
    k->zero(dmixed, bytes);
    k->matmul_backward(dmixed, g.attprojw, g.attprojb, dattproj, gated ? a.gated : a.atty, p.attprojw, N, C, C);
    k->zero(s->dln, bytes);
    if (gated) {
        int G = gate_width(c);
        k->zero(s->datty, bytes);
        k->zero(s->dgate_pre, (size_t)N * G * sizeof(floatX));
        k->gate_backward(s->datty, s->dgate_pre, s->dgated, a.atty, a.gate_pre, N, NH, C / NH, c->gate == GATE_HEAD);
        k->matmul_backward(s->dln, g.gatew, g.gateb, s->dgate_pre, a.ln1, p.gatew, N, C, G);
    }
    if (c->mixer == MIXER_MLSTM) mlstm_mixer_backward(m, l, B, T);
    else attention_mixer_backward(m, l, B, T);
    k->layernorm_backward(s->dresidual, g.ln1w, g.ln1b, s->dln, block_input, p.ln1w, a.ln1_mean, a.ln1_rstd, N, C);
}

void gpt_backward(GPT* m, float dloss) {
    if (m->mean_loss < 0) fail("gpt_backward: the last forward had no targets");
    ensure_grads(m);
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    int B = m->batch_size, T = m->seq_len, C = c->channels, L = c->num_layers, N = B * T;
    GradScratch* s = &m->scratch;
    size_t bytes = (size_t)N * C * sizeof(floatX);
    // logits -> dlogits in place, then the LM head (tied to wte) and the final LayerNorm
    k->crossentropy_forward_backward(m->losses, m->logits, m->logits, m->targets, dloss, N, c->vocab_size,
                                     c->padded_vocab_size);
    k->zero(s->dln, bytes);
    k->matmul_backward(s->dln, m->grads.wte, NULL, m->logits, m->acts.lnf, m->params.wte, N, C,
                       c->padded_vocab_size);
    k->zero(s->dresidual, bytes);
    k->layernorm_backward(s->dresidual, m->grads.lnfw, m->grads.lnfb, s->dln, layer_acts(m, L - 1).residual3,
                          m->params.lnfw, m->acts.lnf_mean, m->acts.lnf_rstd, N, C);
    for (int l = L - 1; l >= 0; l--) block_backward(m, l, B, T);
    k->encoder_backward(m->grads.wte, c->rope ? NULL : m->grads.wpe, s->dresidual, m->inputs, B, T, C);
    m->mean_loss = -1.0f;  // logits now hold gradients
}

// ----------------------------------------------------------------------------
// update

float gpt_update(GPT* m, float lr, float beta1, float beta2, float eps, float weight_decay, float grad_clip,
                 int step) {
    const Kernels* k = m->k;
    size_t bytes = m->num_parameters * sizeof(float);
    if (!m->m_memory) {
        m->m_memory = k->alloc(bytes);
        m->v_memory = k->alloc(bytes);
        k->zero(m->m_memory, bytes);
        k->zero(m->v_memory, bytes);
    }
    // the squared norm lands in the first float of the (B,T) losses buffer, then comes to the host
    float norm_squared;
    k->global_norm_squared(m->losses, m->grads_memory, m->num_parameters);
    k->download(&norm_squared, m->losses, sizeof(float));
    float norm = sqrtf(norm_squared);
    float grad_scale = (grad_clip > 0.0f && norm > grad_clip) ? grad_clip / norm : 1.0f;
    size_t offset = 0;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        size_t n = m->param_sizes[i];
        float wd = gpt_param_decays(i) ? weight_decay : 0.0f;
        if (n > 0)
            k->adamw_update(m->params_memory + offset, m->master_memory ? m->master_memory + offset : NULL,
                            m->m_memory + offset, m->v_memory + offset,
                            m->grads_memory + offset, n, lr, beta1, beta2, eps, wd, grad_scale, step);
        offset += n;
    }
    return norm;
}
