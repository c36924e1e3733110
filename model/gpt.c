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

static void parse_key_values(GPTConfig* c, const char* descriptor) {
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", descriptor);
    for (char* item = strtok(buf, ","); item; item = strtok(NULL, ",")) {
        char* eq = strchr(item, '=');
        if (!eq) fail("-e %s: '%s' is not key=value", descriptor, item);
        *eq = '\0';
        const char *key = item, *value = eq + 1;
        if (!strcmp(key, "L")) c->num_layers = parse_int(value, key, descriptor);
        else if (!strcmp(key, "C")) c->channels = parse_int(value, key, descriptor);
        else if (!strcmp(key, "H")) c->num_heads = parse_int(value, key, descriptor);
        else if (!strcmp(key, "T")) c->max_seq_len = parse_int(value, key, descriptor);
        else if (!strcmp(key, "V")) c->vocab_size = parse_int(value, key, descriptor);
        else if (!strcmp(key, "Vp")) c->padded_vocab_size = parse_int(value, key, descriptor);
        else fail("-e %s: unknown key '%s' (known: L C H T V Vp)", descriptor, key);
    }
}

GPTConfig gpt_config_from_descriptor(const char* descriptor) {
    GPTConfig c = {.max_seq_len = 1024, .vocab_size = 50257, .num_layers = 12, .num_heads = 12, .channels = 768};
    const char* family = strncmp(descriptor, "gpt2:", 5) == 0 ? descriptor + 5 : descriptor;
    if (family[0] == 'd' && family[1] >= '0' && family[1] <= '9')
        set_gpt2_family(&c, parse_int(family + 1, "depth", descriptor), descriptor);
    else
        parse_key_values(&c, descriptor);
    if (c.padded_vocab_size == 0) c.padded_vocab_size = (c.vocab_size + 127) / 128 * 128;
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
}

// ----------------------------------------------------------------------------
// memory layout

static void parameter_sizes(size_t* sizes, const GPTConfig* c) {
    size_t Vp = c->padded_vocab_size, C = c->channels, maxT = c->max_seq_len, L = c->num_layers;
    size_t shapes[NUM_PARAMETER_TENSORS] = {
        Vp * C, maxT * C, L * C, L * C, L * 3 * C * C, L * 3 * C, L * C * C, L * C,
        L * C, L * C, L * 4 * C * C, L * 4 * C, L * C * 4 * C, L * C, C, C,
    };
    memcpy(sizes, shapes, sizeof(shapes));
}

int gpt_param_decays(int tensor_index) {
    // wte, wpe, qkvw, attprojw, fcw, fcprojw: the 2-D tensors
    return tensor_index == 0 || tensor_index == 1 || tensor_index == 4 || tensor_index == 6 ||
           tensor_index == 10 || tensor_index == 12;
}

// Points each of n tensors (a struct of float*) at its slice of one buffer.
static void point_tensors(float** tensors, float* memory, const size_t* sizes, int n) {
    for (int i = 0; i < n; i++) {
        tensors[i] = memory;
        memory += sizes[i];
    }
}

static size_t sum_sizes(const size_t* sizes, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += sizes[i];
    return total;
}

void gpt_build(GPT* model, const GPTConfig* config, const Kernels* k) {
    memset(model, 0, sizeof(*model));
    model->config = *config;
    model->k = k;
    parameter_sizes(model->param_sizes, config);
    model->num_parameters = sum_sizes(model->param_sizes, NUM_PARAMETER_TENSORS);
    model->params_memory = k->alloc(model->num_parameters * sizeof(float));
    point_tensors((float**)&model->params, model->params_memory, model->param_sizes, NUM_PARAMETER_TENSORS);
}

void gpt_init_random(GPT* model, uint64_t seed) {
    const GPTConfig* c = &model->config;
    float* host = calloc_check(model->num_parameters, sizeof(float));
    ParameterTensors p;
    point_tensors((float**)&p, host, model->param_sizes, NUM_PARAMETER_TENSORS);
    Rng rng;
    rng_seed(&rng, seed);
    float std = 0.02f, std_residual = 0.02f / sqrtf(2.0f * c->num_layers);
    float* normal[] = {p.wte, p.wpe, p.qkvw, p.attprojw, p.fcw, p.fcprojw};
    size_t counts[] = {(size_t)c->vocab_size * c->channels, model->param_sizes[1], model->param_sizes[4],
                       model->param_sizes[6], model->param_sizes[10], model->param_sizes[12]};
    for (int t = 0; t < 6; t++) {
        // the residual projections (attprojw, fcprojw) get the smaller std, as in GPT-2 and llm.c
        float s = (normal[t] == p.attprojw || normal[t] == p.fcprojw) ? std_residual : std;
        for (size_t i = 0; i < counts[t]; i++) normal[t][i] = s * rng_normal(&rng);
    }
    float* ones[] = {p.ln1w, p.ln2w, p.lnfw};
    size_t one_counts[] = {model->param_sizes[2], model->param_sizes[8], model->param_sizes[14]};
    for (int t = 0; t < 3; t++)
        for (size_t i = 0; i < one_counts[t]; i++) ones[t][i] = 1.0f;
    model->k->upload(model->params_memory, host, model->num_parameters * sizeof(float));
    free(host);
}

static void activation_sizes(size_t* s, const GPTConfig* c, int B, int T) {
    size_t BT = (size_t)B * T, C = c->channels, L = c->num_layers, NH = c->num_heads;
    size_t sizes[NUM_ACTIVATION_TENSORS] = {
        BT * C, L * BT * C, L * BT, L * BT, L * BT * 3 * C, L * BT * C, L * BT * NH, L * BT * C,
        L * BT * C, L * BT * C, L * BT, L * BT, L * BT * 4 * C, L * BT * 4 * C, L * BT * C, L * BT * C,
        BT * C, BT, BT,
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
    size_t sizes[NUM_ACTIVATION_TENSORS];
    activation_sizes(sizes, &m->config, B, T);
    m->acts_memory = k->alloc(sum_sizes(sizes, NUM_ACTIVATION_TENSORS) * sizeof(float));
    point_tensors((float**)&m->acts, m->acts_memory, sizes, NUM_ACTIVATION_TENSORS);
    size_t BT = (size_t)B * T, C = m->config.channels;
    size_t scratch_sizes[] = {BT * C, BT * C, BT * C, BT * 3 * C, BT * 4 * C, BT * 4 * C};
    m->scratch_memory = k->alloc(sum_sizes(scratch_sizes, 6) * sizeof(float));
    point_tensors((float**)&m->scratch, m->scratch_memory, scratch_sizes, 6);
    m->logits = k->alloc(BT * m->config.padded_vocab_size * sizeof(float));
    m->losses = k->alloc(BT * sizeof(float));
    m->inputs = k->alloc(BT * sizeof(int));
    m->targets = k->alloc(BT * sizeof(int));
    m->losses_host = malloc_check(BT * sizeof(float));
    m->batch_size = B;
    m->seq_len = T;
}

void gpt_reserve(GPT* m, int B, int T) { ensure_activations(m, B, T); }

void gpt_free(GPT* m) {
    const Kernels* k = m->k;
    free_activations(m);
    k->release(m->params_memory);
    if (m->grads_memory) k->release(m->grads_memory);
    if (m->m_memory) k->release(m->m_memory);
    if (m->v_memory) k->release(m->v_memory);
    if (m->kv_cache) k->release(m->kv_cache);
    free(m->logits_host);
}

// ----------------------------------------------------------------------------
// forward

// One layer's slices of the saved activations. The per-layer stride uses the allocated
// (batch_size, seq_len), so a smaller decode batch reuses the same buffers.
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att_lse, *attproj, *residual2;
    float *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_gelu, *fcproj, *residual3;
} LayerActs;

static LayerActs layer_acts(const GPT* m, int l) {
    const ActivationTensors* a = &m->acts;
    size_t BT = (size_t)m->batch_size * m->seq_len, C = m->config.channels, NH = m->config.num_heads;
    return (LayerActs){
        a->ln1 + l * BT * C, a->ln1_mean + l * BT, a->ln1_rstd + l * BT, a->qkv + l * BT * 3 * C,
        a->atty + l * BT * C, a->att_lse + l * BT * NH, a->attproj + l * BT * C, a->residual2 + l * BT * C,
        a->ln2 + l * BT * C, a->ln2_mean + l * BT, a->ln2_rstd + l * BT, a->fch + l * BT * 4 * C,
        a->fch_gelu + l * BT * 4 * C, a->fcproj + l * BT * C, a->residual3 + l * BT * C,
    };
}

// One layer's slices of the parameters (or of the gradients: same layout).
typedef struct {
    float *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;
} LayerParams;

static LayerParams layer_params(const ParameterTensors* p, int l, size_t C) {
    return (LayerParams){
        p->ln1w + l * C, p->ln1b + l * C, p->qkvw + l * 3 * C * C, p->qkvb + l * 3 * C,
        p->attprojw + l * C * C, p->attprojb + l * C, p->ln2w + l * C, p->ln2b + l * C,
        p->fcw + l * 4 * C * C, p->fcb + l * 4 * C, p->fcprojw + l * 4 * C * C, p->fcprojb + l * C,
    };
}

// The blocks and the head over tokens at positions pos0..pos0+T-1. Without a cache (training,
// full forward) pos0 = 0 and attention reads this batch's qkv; with the cache (B = 1) the qkv
// rows are written into it and attention reads all pos0+T positions from it.
static void forward_blocks(GPT* m, int B, int T, int pos0, int use_cache) {
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    int C = c->channels, NH = c->num_heads, L = c->num_layers, Vp = c->padded_vocab_size;
    int N = B * T;
    k->encoder_forward(m->acts.encoded, m->inputs, m->params.wte, m->params.wpe + (size_t)pos0 * C, B, T, C);
    float* residual = m->acts.encoded;
    for (int l = 0; l < L; l++) {
        LayerActs a = layer_acts(m, l);
        LayerParams p = layer_params(&m->params, l, C);
        float* cache = use_cache ? m->kv_cache + (size_t)l * c->max_seq_len * 3 * C : NULL;
        float* qkv = use_cache ? cache + (size_t)pos0 * 3 * C : a.qkv;
        // x += attn(ln1(x))
        k->layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, residual, p.ln1w, p.ln1b, N, C);
        k->matmul_forward(qkv, a.ln1, p.qkvw, p.qkvb, N, C, 3 * C);
        if (use_cache) k->attention_forward(a.atty, a.att_lse, cache, B, T, pos0 + T, c->max_seq_len, C, NH);
        else k->attention_forward(a.atty, a.att_lse, qkv, B, T, T, T, C, NH);
        k->matmul_forward(a.attproj, a.atty, p.attprojw, p.attprojb, N, C, C);
        k->residual_forward(a.residual2, residual, a.attproj, N * C);
        // x += mlp(ln2(x))
        k->layernorm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.residual2, p.ln2w, p.ln2b, N, C);
        k->matmul_forward(a.fch, a.ln2, p.fcw, p.fcb, N, C, 4 * C);
        k->gelu_forward(a.fch_gelu, a.fch, N * 4 * C);
        k->matmul_forward(a.fcproj, a.fch_gelu, p.fcprojw, p.fcprojb, N, 4 * C, C);
        k->residual_forward(a.residual3, a.residual2, a.fcproj, N * C);
        residual = a.residual3;
    }
    k->layernorm_forward(m->acts.lnf, m->acts.lnf_mean, m->acts.lnf_rstd, residual, m->params.lnfw,
                         m->params.lnfb, N, C);
    k->matmul_forward(m->logits, m->acts.lnf, m->params.wte, NULL, N, C, Vp);
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
    forward_blocks(m, B, T, 0, 0);
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

const float* gpt_decode(GPT* m, const int* tokens, int T, int pos0) {
    const GPTConfig* c = &m->config;
    const Kernels* k = m->k;
    if (pos0 + T > c->max_seq_len)
        fail("decoding position %d exceeds the model's maximum sequence length %d", pos0 + T, c->max_seq_len);
    check_inputs(m, tokens, NULL, T);
    ensure_activations(m, 1, T);
    if (!m->kv_cache) {
        m->kv_cache = k->alloc((size_t)c->num_layers * c->max_seq_len * 3 * c->channels * sizeof(float));
        m->logits_host = malloc_check(c->padded_vocab_size * sizeof(float));
    }
    k->upload(m->inputs, tokens, T * sizeof(int));
    forward_blocks(m, 1, T, pos0, 1);
    k->download(m->logits_host, m->logits + (size_t)(T - 1) * c->padded_vocab_size,
                c->padded_vocab_size * sizeof(float));
    return m->logits_host;
}

// ----------------------------------------------------------------------------
// backward

static void ensure_grads(GPT* m) {
    if (m->grads_memory) return;
    m->grads_memory = m->k->alloc(m->num_parameters * sizeof(float));
    point_tensors((float**)&m->grads, m->grads_memory, m->param_sizes, NUM_PARAMETER_TENSORS);
    m->k->zero(m->grads_memory, m->num_parameters * sizeof(float));
}

void gpt_zero_grad(GPT* m) {
    ensure_grads(m);
    m->k->zero(m->grads_memory, m->num_parameters * sizeof(float));
}

// One block, last op first. On entry scratch.dresidual holds d(residual3); on exit d(block input).
static void block_backward(GPT* m, int l, int B, int T) {
    const Kernels* k = m->k;
    int C = m->config.channels, NH = m->config.num_heads, N = B * T;
    LayerActs a = layer_acts(m, l);
    LayerParams p = layer_params(&m->params, l, C), g = layer_params(&m->grads, l, C);
    GradScratch* s = &m->scratch;
    const float* block_input = l == 0 ? m->acts.encoded : layer_acts(m, l - 1).residual3;
    size_t bytes = (size_t)N * C * sizeof(float);
    // mlp: residual3 = residual2 + fcproj(gelu(fc(ln2(residual2)))); the skip passes dresidual through
    k->zero(s->dfch_gelu, 4 * bytes);
    k->matmul_backward(s->dfch_gelu, g.fcprojw, g.fcprojb, s->dresidual, a.fch_gelu, p.fcprojw, N, 4 * C, C);
    k->zero(s->dfch, 4 * bytes);
    k->gelu_backward(s->dfch, a.fch, s->dfch_gelu, N * 4 * C);
    k->zero(s->dln, bytes);
    k->matmul_backward(s->dln, g.fcw, g.fcb, s->dfch, a.ln2, p.fcw, N, C, 4 * C);
    k->layernorm_backward(s->dresidual, g.ln2w, g.ln2b, s->dln, a.residual2, p.ln2w, a.ln2_mean, a.ln2_rstd, N, C);
    // attention: residual2 = input + attproj(attn(qkv(ln1(input))))
    k->zero(s->datty, bytes);
    k->matmul_backward(s->datty, g.attprojw, g.attprojb, s->dresidual, a.atty, p.attprojw, N, C, C);
    k->zero(s->dqkv, 3 * bytes);
    k->attention_backward(s->dqkv, s->datty, a.qkv, a.atty, a.att_lse, B, T, C, NH);
    k->zero(s->dln, bytes);
    k->matmul_backward(s->dln, g.qkvw, g.qkvb, s->dqkv, a.ln1, p.qkvw, N, C, 3 * C);
    k->layernorm_backward(s->dresidual, g.ln1w, g.ln1b, s->dln, block_input, p.ln1w, a.ln1_mean, a.ln1_rstd, N, C);
}

void gpt_backward(GPT* m, float dloss) {
    if (m->mean_loss < 0) fail("gpt_backward: the last forward had no targets");
    ensure_grads(m);
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    int B = m->batch_size, T = m->seq_len, C = c->channels, L = c->num_layers, N = B * T;
    GradScratch* s = &m->scratch;
    size_t bytes = (size_t)N * C * sizeof(float);
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
    k->encoder_backward(m->grads.wte, m->grads.wpe, s->dresidual, m->inputs, B, T, C);
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
        k->adamw_update(m->params_memory + offset, m->m_memory + offset, m->v_memory + offset,
                        m->grads_memory + offset, n, lr, beta1, beta2, eps, wd, grad_scale, step);
        offset += n;
    }
    return norm;
}
