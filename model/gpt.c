// The GPT model graph (see gpt.h): written once, it calls every kernel through model->k, so the
// CPU and CUDA runs share each line below. One token's path: encoder -> L blocks
// (x += mixer(ln1(x)); x += mlp(ln2(x))) -> final norm -> logits (wte, or lm_head untied) -> cross-entropy.
// The norms ln1, ln2, lnf are LayerNorms, or RMSNorms with ln=rms (block_norm_forward / _backward).
// The mixers and options follow docs/MODEL.md; the tensors come from the registry (model/tensors.c).
#include "model/gpt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "model/tensors.h"

// ----------------------------------------------------------------------------
// forward

// Where a forward keeps q, k, v: this batch's activations, or (decoding, B = 1) the KV cache; with
// stream, the streaming cache of gpt_stream_decode (one token).
typedef struct {
    int use_cache, pos0, stream;
} DecodeState;

// The cache row of stream token t: the first `sinks` tokens in rows 0.., the others in a ring of
// `window` rows after them.
static long stream_slot(const GPT* m, long t) {
    int S = m->stream_sinks;
    return t < S ? t : S + (t - S) % m->stream_window;
}

// Layer cache's rows of the stream in cache order into m->stream_rows: the sinks, then the window's
// tokens oldest first (the ring read from the slot after the newest token's, the one just fed).
// Returns how many.
static int gather_stream_rows(GPT* m, const floatX* cache) {
    size_t row_bytes = 3 * (size_t)m->config.channels * sizeof(floatX), row = row_bytes / sizeof(floatX);
    long fed = m->stream_fed + 1;   // with the new token
    int S = m->stream_sinks, W = m->stream_window;
    int sinks = fed < S ? (int)fed : S;
    int in_window = fed - sinks < W ? (int)(fed - sinks) : W;
    m->k->copy(m->stream_rows, cache, sinks * row_bytes);
    if (in_window > 0) {
        long first = stream_slot(m, fed - in_window);   // the oldest token of the window
        int tail = (int)(S + W - first) < in_window ? (int)(S + W - first) : in_window;
        m->k->copy(m->stream_rows + sinks * row, cache + first * row, tail * row_bytes);
        m->k->copy(m->stream_rows + (sinks + tail) * row, cache + S * row, (in_window - tail) * row_bytes);
    }
    return sinks + in_window;
}

// softmax / sigmoid: qkv projection -> [QK-norm] -> [RoPE] -> attention. ln1 -> mix_out.
static void attention_mixer_forward(GPT* m, int l, int B, int T, DecodeState d) {
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    int C = c->channels, NH = c->num_heads, N = B * T;
    ActivationTensors a = gpt_layer_acts(m, l);
    ParameterTensors p = gpt_layer_params(m, &m->params, l);
    floatX* cache = d.use_cache ? m->kv_cache + (size_t)l * c->max_seq_len * 3 * C : NULL;
    long row = d.stream ? stream_slot(m, m->stream_fed) : d.pos0;
    floatX* qkv = d.use_cache ? cache + row * 3 * C : a.qkv;
    k->matmul_forward(c->qknorm ? a.qkv_pre : qkv, a.ln1, p.qkvw, p.qkvb, N, C, 3 * C);
    if (c->qknorm)
        k->qknorm_forward(qkv, a.qk_mean, a.qk_rstd, a.qkv_pre, p.qnormw, p.qnormb, p.knormw, p.knormb, N, C, NH);
    // training: the T rows of this batch; decoding: the new rows at pos0.. of the cache of maxT rows;
    // streaming: the cached rows in cache order, rotated by cache index, the new token's last
    const floatX* rows = d.use_cache ? cache : qkv;
    int Tk = d.use_cache ? d.pos0 + T : T, Tmax = d.use_cache ? c->max_seq_len : T;
    if (d.stream) {
        Tk = Tmax = gather_stream_rows(m, cache);
        rows = m->stream_rows;
        if (c->rope) k->rope_forward(m->stream_rows, m->stream_rows, 1, Tk, C, NH, 0);   // positions 0..Tk-1
    } else if (c->rope) {
        k->rope_forward(qkv, qkv, B, T, C, NH, d.pos0);
    }
    k->attention_forward(a.mix_out, a.att_rowstat, rows, B, T, Tk, Tmax, C, NH, gpt_attn_score(c));
    if (c->sink != SINK_NONE)
        k->attention_sink_forward(a.mix_out, a.att_rowstat, rows, p.sink_key, p.sink_value, p.sink_logit, B, T, Tk,
                                  Tmax, C, NH, c->sink);
}

// mLSTM: q, k, v and gate projections -> cell (chunkwise, or recurrent steps when decoding)
// -> per-head norm. ln1 -> mix_out (the output gate and projection follow in mixer_forward).
static void mlstm_mixer_forward(GPT* m, int l, int B, int T, DecodeState d) {
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    int C = c->channels, NH = c->num_heads, hs = C / NH, N = B * T, sig = c->mlstm_igate == IGATE_SIG;
    ActivationTensors a = gpt_layer_acts(m, l);
    ParameterTensors p = gpt_layer_params(m, &m->params, l);
    k->matmul_forward(a.qkv, a.ln1, p.qkvw, p.qkvb, N, C, 3 * C);
    k->matmul_forward(a.mlstm_gates, a.ln1, p.mlstm_gatew, p.mlstm_gateb, N, C, 2 * NH);
    if (d.use_cache) {
        float* state = m->mlstm_state + (size_t)l * NH * (hs * hs + hs + 1);
        float *c_state = state, *n_state = c_state + (size_t)NH * hs * hs, *m_state = n_state + (size_t)NH * hs;
        for (int t = 0; t < T; t++)
            k->mlstm_recurrent_step(a.mlstm_h + (size_t)t * C, c_state, n_state, m_state, a.qkv + (size_t)t * 3 * C,
                                    a.mlstm_gates + (size_t)t * 2 * NH, 1, C, NH, sig);
    } else {
        k->mlstm_chunkwise_forward(a.mlstm_h, a.mlstm_n, a.mlstm_m, a.qkv, a.mlstm_gates, B, T, C, NH, c->mlstm_chunk, sig);
    }
    k->headnorm_forward(a.mix_out, a.mlstm_norm_mean, a.mlstm_norm_rstd, a.mlstm_h, p.mlstm_normw, N, NH, hs, 1e-6f);
}

// Where a norm (ln1, ln2, lnf) writes: its output, statistics and weights; mean and bias are NULL
// with RMSNorm.
typedef struct {
    floatX* out;
    float *mean, *rstd;
    const floatX *weight, *bias;
} NormTarget;

// norm.out = ln1, ln2 or lnf of inp: LayerNorm, or RMSNorm with ln=rms.
static void block_norm_forward(const GPT* m, NormTarget norm, const floatX* inp, int N, int C) {
    if (m->config.block_norm == NORM_RMS) m->k->rmsnorm_forward(norm.out, norm.rstd, inp, norm.weight, N, C);
    else m->k->layernorm_forward(norm.out, norm.mean, norm.rstd, inp, norm.weight, norm.bias, N, C);
}

// The norm after block l: ln1 of block l+1, or the final one.
static NormTarget norm_after(GPT* m, int l) {
    if (l + 1 == m->config.num_layers)
        return (NormTarget){m->acts.lnf, m->acts.lnf_mean, m->acts.lnf_rstd, m->params.lnfw, m->params.lnfb};
    ActivationTensors a = gpt_layer_acts(m, l + 1);
    ParameterTensors p = gpt_layer_params(m, &m->params, l + 1);
    return (NormTarget){a.ln1, a.ln1_mean, a.ln1_rstd, p.ln1w, p.ln1b};
}

// out = residual + [scale *] branch (LayerScale when scale is not NULL), and its norm into norm, in
// one fused kernel; out may be the branch's buffer.
static void add_branch_and_norm(const GPT* m, floatX* out, const floatX* residual, const floatX* branch,
                                const floatX* scale, NormTarget norm, int N, int C) {
    const Kernels* k = m->k;
    if (scale) {
        k->layerscale_forward(out, branch, scale, N, C);
        branch = out;
    }
    if (m->config.block_norm == NORM_RMS)
        k->residual_rmsnorm_forward(out, norm.out, norm.rstd, residual, branch, norm.weight, N, C);
    else
        k->residual_layernorm_forward(out, norm.out, norm.mean, norm.rstd, residual, branch, norm.weight, norm.bias,
                                      N, C);
}

// The MLP up to its activation: fch = ln2 W_fc^T + b_fc, then fch_gelu = GELU(fch) (the matmul's
// epilogue; tanh or erf) or, with SwiGLU, silu(gate) * up of fch = [gate | up].
static void mlp_activation_forward(const GPT* m, ActivationTensors a, ParameterTensors p, int N) {
    const GPTConfig* c = &m->config;
    int C = c->channels, hidden = c->mlp_hidden;
    if (c->mlp == MLP_SWIGLU) {
        m->k->matmul_forward(a.fch, a.ln2, p.fcw, p.fcb, N, C, 2 * hidden);
        m->k->swiglu_forward(a.fch_gelu, a.fch, N, hidden);
    } else {
        m->k->matmul_gelu_forward(a.fch_gelu, a.fch, a.ln2, p.fcw, p.fcb, N, C, hidden, c->gelu == GELU_ERF);
    }
}

// One block, its ln1 already computed from residual: x += mixer(ln1(x)) [through the hybrid norm and
// LayerScale]; x += mlp(ln2(x)); then the next LayerNorm of the sum.
static void block_forward(GPT* m, int l, const floatX* residual, int B, int T, DecodeState d) {
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    int C = c->channels, NH = c->num_heads, N = B * T;
    ActivationTensors a = gpt_layer_acts(m, l);
    ParameterTensors p = gpt_layer_params(m, &m->params, l);
    if (c->mixer == MIXER_MLSTM) mlstm_mixer_forward(m, l, B, T, d);
    else attention_mixer_forward(m, l, B, T, d);
    const floatX* mixed = a.mix_out;
    if (c->gate != GATE_NONE) {   // G1 gate (mLSTM: the output gate), from the same normed input
        k->matmul_forward(a.gate_pre, a.ln1, p.gatew, p.gateb, N, C, gpt_gate_width(c));
        k->gate_forward(a.gated, a.mix_out, a.gate_pre, N, NH, C / NH, c->gate == GATE_HEAD);
        mixed = a.gated;
    }
    k->matmul_forward(a.attproj, mixed, p.attprojw, p.attprojb, N, C, C);
    const floatX* branch = a.attproj;
    if (c->hybrid_norm) {
        k->layernorm_forward(a.hybrid_norm, a.hybrid_mean, a.hybrid_rstd, a.attproj, p.hybrid_normw, p.hybrid_normb, N, C);
        branch = a.hybrid_norm;
    }
    NormTarget ln2 = {a.ln2, a.ln2_mean, a.ln2_rstd, p.ln2w, p.ln2b};
    add_branch_and_norm(m, a.residual2, residual, branch, c->layerscale ? p.ls_mixer : NULL, ln2, N, C);
    mlp_activation_forward(m, a, p, N);
    k->matmul_forward(a.fcproj, a.fch_gelu, p.fcprojw, p.fcprojb, N, c->mlp_hidden, C);
    add_branch_and_norm(m, a.residual3, a.residual2, a.fcproj, c->layerscale ? p.ls_mlp : NULL, norm_after(m, l), N, C);
}

// The LM head's weights (or their gradient): wte, or lm_head when untied (tie=0).
static floatX* lm_head(const GPT* m, const ParameterTensors* p) { return m->config.untied_head ? p->lm_head : p->wte; }

// Encoder, blocks and head over tokens at positions pos0..pos0+T-1.
static void forward_blocks(GPT* m, int B, int T, DecodeState d) {
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    int C = c->channels;
    const floatX* wpe = m->params.wpe ? m->params.wpe + (size_t)d.pos0 * C : NULL;   // none with RoPE or ALiBi
    k->encoder_forward(m->acts.encoded, m->inputs, m->params.wte, wpe, B, T, C);
    ActivationTensors a0 = gpt_layer_acts(m, 0);
    NormTarget ln1 = {a0.ln1, a0.ln1_mean, a0.ln1_rstd, m->params.ln1w, m->params.ln1b};
    block_norm_forward(m, ln1, m->acts.encoded, B * T, C);
    const floatX* residual = m->acts.encoded;
    for (int l = 0; l < c->num_layers; l++) {
        block_forward(m, l, residual, B, T, d);
        residual = gpt_layer_acts(m, l).residual3;
    }
    k->matmul_forward(m->logits, m->acts.lnf, lm_head(m, &m->params), NULL, B * T, C, c->padded_vocab_size);
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

// The forward of gpt_forward and gpt_forward_micro, up to the logits; uploads the targets if any.
static void forward_logits(GPT* m, const int* inputs, const int* targets, int B, int T) {
    const GPTConfig* c = &m->config;
    if (T > c->max_seq_len)
        fail("sequence length T=%d exceeds the model's maximum %d", T, c->max_seq_len);
    check_inputs(m, inputs, targets, B * T);
    gpt_ensure_activations(m, B, T);
    int N = B * T;
    m->B = B, m->T = T;
    m->mean_loss = -1.0f;
    m->k->upload(m->inputs, inputs, N * sizeof(int));
    forward_blocks(m, B, T, (DecodeState){0, 0, 0});
    if (targets) m->k->upload(m->targets, targets, N * sizeof(int));
}

// The mean of N losses as gpt_forward returns it: summed in double in order, rounded to float once.
static float mean_of(const float* losses, int N) {
    double sum = 0.0;
    for (int i = 0; i < N; i++) sum += losses[i];
    return (float)(sum / N);
}

float gpt_forward(GPT* m, const int* inputs, const int* targets, int B, int T) {
    const GPTConfig* c = &m->config;
    forward_logits(m, inputs, targets, B, T);
    if (!targets) return m->mean_loss;
    int N = B * T;
    m->k->crossentropy_forward_backward(m->losses, NULL, m->logits, m->targets, 0.0f, N, c->vocab_size,
                                        c->padded_vocab_size);
    m->k->download(m->losses_host, m->losses, N * sizeof(float));
    m->mean_loss = mean_of(m->losses_host, N);
    return m->mean_loss;
}

void gpt_forward_micro(GPT* m, const int* inputs, const int* targets, int B, int T, int micro, int micros) {
    const GPTConfig* c = &m->config;
    const Kernels* k = m->k;
    int N = B * T;
    if (!targets) fail("gpt_forward_micro: the training forward needs targets");
    if (micro < 0 || micro >= micros || (micro > 0 && (micros != m->step_micros || N != m->step_N)))
        fail("gpt_forward_micro: micro-batch %d of %d (B*T=%d) does not continue the step's %d of B*T=%d", micro,
             micros, N, m->step_micros, m->step_N);
    if ((size_t)micros * N > m->step_losses_count) {
        if (m->step_losses) k->release(m->step_losses), free(m->step_losses_host);
        m->step_losses_count = (size_t)micros * N;
        m->step_losses = k->alloc(m->step_losses_count * sizeof(float));
        m->step_losses_host = malloc_check(m->step_losses_count * sizeof(float));
    }
    m->step_micros = micros, m->step_N = N;
    forward_logits(m, inputs, targets, B, T);
    k->crossentropy_forward_backward(m->step_losses + (size_t)micro * N, NULL, m->logits, m->targets, 0.0f, N,
                                     c->vocab_size, c->padded_vocab_size);
    m->mean_loss = NAN;   // targets given (a backward may follow); the value is on the device
}

double gpt_step_loss(GPT* m) {
    if (m->step_micros == 0) fail("gpt_step_loss: no gpt_forward_micro since the last step");
    int micros = m->step_micros, N = m->step_N;
    m->k->download(m->step_losses_host, m->step_losses, (size_t)micros * N * sizeof(float));
    double loss = 0.0;
    for (int i = 0; i < micros; i++) loss += mean_of(m->step_losses_host + (size_t)i * N, N) / micros;
    m->step_micros = 0;
    return loss;
}

const float* gpt_decode(GPT* m, const int* tokens, int T, int pos0) {
    const GPTConfig* c = &m->config;
    const Kernels* k = m->k;
    if (pos0 + T > c->max_seq_len)
        fail("decoding position %d exceeds the model's maximum sequence length %d", pos0 + T, c->max_seq_len);
    check_inputs(m, tokens, NULL, T);
    gpt_ensure_activations(m, 1, T);
    gpt_ensure_decode_state(m);
    m->B = 1, m->T = T;
    m->mean_loss = -1.0f;   // no targets: a backward now would fail rather than use an older batch
    if (m->mlstm_state && pos0 == 0)   // a new sequence starts from the zero state
        k->zero(m->mlstm_state, gpt_decode_state_bytes(c));
    k->upload(m->inputs, tokens, T * sizeof(int));
    forward_blocks(m, 1, T, (DecodeState){1, pos0, 0});
    gpt_get_logits(m, T - 1, m->logits_host);
    return m->logits_host;
}

const char* gpt_stream_refusal(const GPTConfig* c, int sinks, int window) {
    if (sinks < 0 || window < 1 || sinks > c->max_seq_len - window)
        return "the cache needs sinks S >= 0, window W >= 1 and S + W at most the model's maxT";
    if (c->mixer == MIXER_MLSTM) return NULL;   // the recurrent state streams (the sizes do not apply)
    if (!c->rope && !c->alibi)
        return "the model has learned absolute positions (wpe, added to its input), so its cached keys and "
               "values carry the positions they were computed at and cannot move within the cache; streaming "
               "needs rope=1 or alibi=1";
    return NULL;
}

void gpt_stream_begin(GPT* m, int sinks, int window) {
    const GPTConfig* c = &m->config;
    const char* why = gpt_stream_refusal(c, sinks, window);
    if (why) fail("streaming with %d sinks and a window of %d (maxT %d): %s", sinks, window, c->max_seq_len, why);
    gpt_ensure_activations(m, 1, 1);
    gpt_ensure_decode_state(m);
    if (c->mixer == MIXER_MLSTM) m->k->zero(m->mlstm_state, gpt_decode_state_bytes(c));
    else if (!m->stream_rows || sinks + window > m->stream_sinks + m->stream_window) {
        if (m->stream_rows) m->k->release(m->stream_rows);
        m->stream_rows = m->k->alloc((size_t)(sinks + window) * 3 * c->channels * sizeof(floatX));
    }
    m->stream_sinks = sinks, m->stream_window = window;
    m->stream_fed = 0;
}

const float* gpt_stream_decode(GPT* m, int token) {
    const GPTConfig* c = &m->config;
    if (!m->logits_host || (c->mixer != MIXER_MLSTM && !m->stream_rows))
        fail("gpt_stream_decode: no stream begun (gpt_stream_begin)");
    check_inputs(m, &token, NULL, 1);
    m->B = 1, m->T = 1;
    m->mean_loss = -1.0f;
    m->k->upload(m->inputs, &token, sizeof(int));
    // mLSTM's learned positions run out at maxT: the last one stays (docs/STREAMING.md)
    int pos = m->stream_fed < c->max_seq_len ? (int)m->stream_fed : c->max_seq_len - 1;
    forward_blocks(m, 1, 1, (DecodeState){1, pos, 1});
    m->stream_fed++;
    gpt_get_logits(m, 0, m->logits_host);
    return m->logits_host;
}

// ----------------------------------------------------------------------------
// backward

void gpt_zero_grad(GPT* m) {
    gpt_ensure_grads(m);
    m->k->zero(m->grads_memory, m->num_parameters * sizeof(floatX));
}

// dinp += the backward of ln1, ln2 or lnf (LayerNorm, or RMSNorm with ln=rms: dbias and mean NULL),
// with dweight, dbias +=.
static void block_norm_backward(const GPT* m, floatX* dinp, floatX* dweight, floatX* dbias, const floatX* dout,
                                const floatX* inp, const floatX* weight, const float* mean, const float* rstd, int N,
                                int C) {
    if (m->config.block_norm == NORM_RMS) m->k->rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, N, C);
    else m->k->layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}

// Gradient inside a residual branch: dresidual itself, or through LayerScale into dbranch.
static const floatX* branch_grad(GPT* m, const floatX* dresidual, const floatX* branch, floatX* dscale,
                                 const floatX* scale, int N, int C) {
    if (!scale) return dresidual;
    m->k->zero(m->scratch.dbranch, (size_t)N * C * sizeof(floatX));
    m->k->layerscale_backward(m->scratch.dbranch, dscale, dresidual, branch, scale, N, C);
    return m->scratch.dbranch;
}

// softmax / sigmoid: dmix_out -> [RoPE, QK-norm] -> qkv projection; accumulates into scratch.dln.
static void attention_mixer_backward(GPT* m, int l, int B, int T) {
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    int C = c->channels, NH = c->num_heads, N = B * T;
    ActivationTensors a = gpt_layer_acts(m, l);
    ParameterTensors p = gpt_layer_params(m, &m->params, l), g = gpt_layer_params(m, &m->grads, l);
    GradScratch* s = &m->scratch;
    size_t qkv_bytes = (size_t)N * 3 * C * sizeof(floatX);
    k->zero(s->dqkv, qkv_bytes);
    k->attention_backward(s->dqkv, s->dmix_out, a.qkv, a.mix_out, a.att_rowstat, B, T, C, NH, gpt_attn_score(c));
    if (c->sink != SINK_NONE)   // given the final output and log-sum-exp, the line above is the keys' part
        k->attention_sink_backward(s->dqkv, g.sink_key, g.sink_value, g.sink_logit, s->dmix_out, a.qkv, a.mix_out,
                                   a.att_rowstat, p.sink_key, p.sink_value, p.sink_logit, B, T, C, NH, c->sink);
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

// mLSTM: dmix_out -> head norm -> cell (chunkwise) -> q, k, v and gate projections; into scratch.dln.
// scratch.dgated (free once the output gate's backward has run) holds the cell output's gradient.
static void mlstm_mixer_backward(GPT* m, int l, int B, int T) {
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    int C = c->channels, NH = c->num_heads, hs = C / NH, N = B * T, sig = c->mlstm_igate == IGATE_SIG;
    ActivationTensors a = gpt_layer_acts(m, l);
    ParameterTensors p = gpt_layer_params(m, &m->params, l), g = gpt_layer_params(m, &m->grads, l);
    GradScratch* s = &m->scratch;
    floatX* dh = s->dgated;
    k->zero(dh, (size_t)N * C * sizeof(floatX));
    k->headnorm_backward(dh, g.mlstm_normw, s->dmix_out, a.mlstm_h, p.mlstm_normw, a.mlstm_norm_mean, a.mlstm_norm_rstd, N, NH, hs);
    k->zero(s->dqkv, (size_t)N * 3 * C * sizeof(floatX));
    k->zero(s->dmlstm_gates, (size_t)N * 2 * NH * sizeof(floatX));
    k->mlstm_chunkwise_backward(s->dqkv, s->dmlstm_gates, dh, a.qkv, a.mlstm_gates, a.mlstm_n, a.mlstm_m, B, T, C, NH,
                                c->mlstm_chunk, sig);
    k->matmul_backward(s->dln, g.mlstm_gatew, g.mlstm_gateb, s->dmlstm_gates, a.ln1, p.mlstm_gatew, N, C, 2 * NH);
    k->matmul_backward(s->dln, g.qkvw, g.qkvb, s->dqkv, a.ln1, p.qkvw, N, C, 3 * C);
}

// One block, last op first. On entry scratch.dresidual holds d(residual3); on exit d(block input).
static void block_backward(GPT* m, int l, int B, int T) {
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    int C = c->channels, NH = c->num_heads, N = B * T;
    ActivationTensors a = gpt_layer_acts(m, l);
    ParameterTensors p = gpt_layer_params(m, &m->params, l), g = gpt_layer_params(m, &m->grads, l);
    GradScratch* s = &m->scratch;
    const floatX* block_input = l == 0 ? m->acts.encoded : gpt_layer_acts(m, l - 1).residual3;
    size_t bytes = (size_t)N * C * sizeof(floatX);
    int hidden = c->mlp_hidden, F = gpt_fc_width(c);
    // mlp: residual3 = residual2 + [ls_mlp *] fcproj(act(fc(ln2(residual2)))), act GELU or SwiGLU
    const floatX* dfcproj = branch_grad(m, s->dresidual, a.fcproj, g.ls_mlp, c->layerscale ? p.ls_mlp : NULL, N, C);
    k->zero(s->dfch_gelu, (size_t)N * hidden * sizeof(floatX));
    k->matmul_backward(s->dfch_gelu, g.fcprojw, g.fcprojb, dfcproj, a.fch_gelu, p.fcprojw, N, hidden, C);
    k->zero(s->dfch, (size_t)N * F * sizeof(floatX));
    if (c->mlp == MLP_SWIGLU) k->swiglu_backward(s->dfch, a.fch, s->dfch_gelu, N, hidden);
    else k->gelu_backward(s->dfch, a.fch, s->dfch_gelu, N * hidden, c->gelu == GELU_ERF);
    k->zero(s->dln, bytes);
    k->matmul_backward(s->dln, g.fcw, g.fcb, s->dfch, a.ln2, p.fcw, N, C, F);
    block_norm_backward(m, s->dresidual, g.ln2w, g.ln2b, s->dln, a.residual2, p.ln2w, a.ln2_mean, a.ln2_rstd, N, C);
    // mixer: residual2 = input + [ls_mixer *] [hybrid norm] attproj(gate(mixer(ln1(input))))
    const floatX* dattproj = branch_grad(m, s->dresidual, c->hybrid_norm ? a.hybrid_norm : a.attproj, g.ls_mixer,
                                        c->layerscale ? p.ls_mixer : NULL, N, C);
    if (c->hybrid_norm) {
        k->zero(s->dattproj, bytes);
        k->layernorm_backward(s->dattproj, g.hybrid_normw, g.hybrid_normb, dattproj, a.attproj, p.hybrid_normw, a.hybrid_mean, a.hybrid_rstd, N, C);
        dattproj = s->dattproj;
    }
    int gated = c->gate != GATE_NONE;
    floatX* dmixed = gated ? s->dgated : s->dmix_out;
    k->zero(dmixed, bytes);
    k->matmul_backward(dmixed, g.attprojw, g.attprojb, dattproj, gated ? a.gated : a.mix_out, p.attprojw, N, C, C);
    k->zero(s->dln, bytes);
    if (gated) {
        int G = gpt_gate_width(c);
        k->zero(s->dmix_out, bytes);
        k->zero(s->dgate_pre, (size_t)N * G * sizeof(floatX));
        k->gate_backward(s->dmix_out, s->dgate_pre, s->dgated, a.mix_out, a.gate_pre, N, NH, C / NH, c->gate == GATE_HEAD);
        k->matmul_backward(s->dln, g.gatew, g.gateb, s->dgate_pre, a.ln1, p.gatew, N, C, G);
    }
    if (c->mixer == MIXER_MLSTM) mlstm_mixer_backward(m, l, B, T);
    else attention_mixer_backward(m, l, B, T);
    block_norm_backward(m, s->dresidual, g.ln1w, g.ln1b, s->dln, block_input, p.ln1w, a.ln1_mean, a.ln1_rstd, N, C);
}

void gpt_backward(GPT* m, float dloss) {
    if (m->mean_loss < 0) fail("gpt_backward: the last forward had no targets");
    gpt_ensure_grads(m);
    const Kernels* k = m->k;
    const GPTConfig* c = &m->config;
    int B = m->B, T = m->T, C = c->channels, L = c->num_layers, N = B * T;
    GradScratch* s = &m->scratch;
    size_t bytes = (size_t)N * C * sizeof(floatX);
    // logits -> dlogits in place, then the LM head (wte, or lm_head untied) and the final norm
    k->crossentropy_forward_backward(m->losses, m->logits, m->logits, m->targets, dloss, N, c->vocab_size,
                                     c->padded_vocab_size);
    k->zero(s->dln, bytes);
    k->matmul_backward(s->dln, lm_head(m, &m->grads), NULL, m->logits, m->acts.lnf, lm_head(m, &m->params), N, C,
                       c->padded_vocab_size);
    k->zero(s->dresidual, bytes);
    block_norm_backward(m, s->dresidual, m->grads.lnfw, m->grads.lnfb, s->dln, gpt_layer_acts(m, L - 1).residual3,
                        m->params.lnfw, m->acts.lnf_mean, m->acts.lnf_rstd, N, C);
    for (int l = L - 1; l >= 0; l--) {
        block_backward(m, l, B, T);
        if (m->on_layer_grads) m->on_layer_grads(m->on_layer_grads_ctx, l);
    }
    k->encoder_backward(m->grads.wte, m->grads.wpe, s->dresidual, m->inputs, B, T, C);
    m->mean_loss = -1.0f;  // logits now hold gradients
}

// ----------------------------------------------------------------------------
// update

float gpt_grad_norm_squared(GPT* m, size_t lo, size_t hi) {
    // the squared norm lands in the first float of the (B,T) losses buffer, then comes to the host
    float norm_squared;
    m->k->global_norm_squared(m->losses, m->grads_memory + lo, hi - lo);
    m->k->download(&norm_squared, m->losses, sizeof(float));
    return norm_squared;
}

void gpt_set_optimizer_shard(GPT* m, size_t lo, size_t hi) {
    if (m->m_memory && (lo != m->opt_lo || hi != m->opt_hi)) fail("gpt_set_optimizer_shard: moments exist already");
    m->opt_lo = lo, m->opt_hi = hi;
}

void gpt_adamw_step(GPT* m, float lr, float beta1, float beta2, float eps, float weight_decay, int decay_all,
                    float grad_scale, int step) {
    const Kernels* k = m->k;
    size_t lo = m->opt_lo, hi = m->opt_hi, bytes = (hi - lo) * sizeof(float);
    if (!m->m_memory) {
        m->m_memory = k->alloc(bytes);
        m->v_memory = k->alloc(bytes);
        k->zero(m->m_memory, bytes);
        k->zero(m->v_memory, bytes);
    }
    for (int i = 0; i < gpt_num_param_tensors(); i++) {   // each tensor's part inside [lo, hi)
        ParamRange r = gpt_param_range(m, i);
        size_t from = r.offset > lo ? r.offset : lo, to = r.offset + r.numel < hi ? r.offset + r.numel : hi;
        if (from >= to) continue;
        k->adamw_update(m->params_memory + from, m->master_memory ? m->master_memory + from : NULL,
                        m->m_memory + (from - lo), m->v_memory + (from - lo), m->grads_memory + from, to - from, lr,
                        beta1, beta2, eps, r.decays || decay_all ? weight_decay : 0.0f, grad_scale, step);
    }
}

float gpt_update(GPT* m, float lr, float beta1, float beta2, float eps, float weight_decay, int decay_all,
                 float grad_clip, int step) {
    float norm = sqrtf(gpt_grad_norm_squared(m, 0, m->num_parameters));
    float grad_scale = (grad_clip > 0.0f && norm > grad_clip) ? grad_clip / norm : 1.0f;
    gpt_adamw_step(m, lr, beta1, beta2, eps, weight_decay, decay_all, grad_scale, step);
    return norm;
}
