// infer: sample text from a checkpoint (KV cache by default), evaluate its loss on shards, or measure
// its attention sinks (docs/SINKS.md).
//   ./infer -e model.bin -tk tokenizer.bin [-p "text" | -pi "ids"] [-n 256] [-temp 1] [-topk 0] [-topp 1] [-seed 1337] [-nocache 1]
//   ./infer -e model.bin -eval "datasets/kjv/*val*.bin" [-b 4] [-t T] [-m batches]
//   ./infer -e model.bin -sa "datasets/kjv/*val*.bin" [-sn 100] [-st 64] [-sk 1] [-se 0.3] [-json FILE]
//   ./infer -e model.bin -stream S,W [-n 10000] ...        (streaming past maxT, docs/STREAMING.md)
//   ./infer -e model.bin -eval-stream "datasets/kjv/*val*.bin" -stream S,W [-n 20000] [-es LIST] [-eb N] [-json FILE]
#include <math.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/check.h"
#include "data/shards.h"
#include "data/tokenizer.h"
#include "model/gpt.h"
#include "model/sampler.h"

typedef struct {
    const char* model;       // -e
    const char* tokenizer;   // -tk
    const char* prompt;      // -p text (needs -tk)
    const char* prompt_ids;  // -pi comma-separated token ids
    const char* eval;        // -eval shard glob
    const char* sinks;       // -sa shard glob: the attention-sink analysis
    const char* json;        // -json: the analysis as JSON
    int sink_seqs, sink_T, sink_key;  // -sn -st -sk (1-indexed key)
    float sink_eps;          // -se
    const char* sink_probes; // -sp: where the analysis's sequences start (auto, doc, line)
    int num_tokens;          // -n
    float temperature;       // -temp
    int top_k;               // -topk
    float top_p;             // -topp
    int seed;                // -seed
    int nocache;             // -nocache
    int B, T, max_batches;   // -b -t -m (eval)
    const char* stream;      // -stream "S,W": the streaming cache's sinks and window
    const char* eval_stream; // -eval-stream shard glob
    const char* stream_settings;  // -es: what -eval-stream compares
    int stream_bucket;       // -eb: positions per bucket of the loss table (0: maxT)
} Args;

#define A(f) offsetof(Args, f)
static const ArgSpec FLAGS[] = {
    {"-e", ARG_TEXT, A(model), 0, 0, "checkpoint (fp32 version 3 or bf16 version 5)"},
    {"-tk", ARG_TEXT, A(tokenizer), 0, 0, "tokenizer (decodes the output; without it token ids are printed)"},
    {"-p", ARG_TEXT, A(prompt), 0, 0, "prompt text, encoded with -tk after an end-of-text token"},
    {"-pi", ARG_TEXT, A(prompt_ids), 0, 0, "prompt as comma-separated token ids (default: the end-of-text token)"},
    {"-n", ARG_INT, A(num_tokens), 0, 1 << 20, "tokens to generate (-eval-stream: positions to score)"},
    {"-temp", ARG_FLOAT, A(temperature), 0, 1000, "temperature (0: greedy)"},
    {"-topk", ARG_INT, A(top_k), 0, 1 << 20, "top-k (0: off)"},
    {"-topp", ARG_FLOAT, A(top_p), 0, 1, "nucleus top-p (1: off)"},
    {"-seed", ARG_INT, A(seed), 0, 2147483647.0, "sampling seed"},
    {"-nocache", ARG_INT, A(nocache), 0, 1, "1: a full forward per token instead of the KV cache"},
    {"-eval", ARG_TEXT, A(eval), 0, 0, "GLOB: print the mean loss over these shards (with -b, -t, -m)"},
    {"-b", ARG_INT, A(B), 1, 65536, "... batch size"},
    {"-t", ARG_INT, A(T), 1, 1 << 20, "... sequence length (default: the model's maxT)"},
    {"-m", ARG_INT, A(max_batches), 0, 2147483647.0, "... at most this many batches (0: all)"},
    {"-sa", ARG_TEXT, A(sinks), 0, 0, "GLOB: attention-sink analysis on these shards"},
    {"-sn", ARG_INT, A(sink_seqs), 1, 100000, "... sequences"},
    {"-st", ARG_INT, A(sink_T), 2, 1 << 20, "... tokens each"},
    {"-sk", ARG_INT, A(sink_key), 1, 1 << 20, "... the key of Sink_K (1: the first)"},
    {"-se", ARG_FLOAT, A(sink_eps), 0, 1, "... threshold on alpha_K"},
    {"-sp", ARG_TEXT, A(sink_probes), 0, 0, "... probe set: doc (document starts), line (line starts), auto "
                                            "(line for bos=window, else doc)"},
    {"-json", ARG_TEXT, A(json), 0, 0, "FILE: the analysis (or -eval-stream's result) also as JSON (plots: "
                                            "scripts/plot_sinks.py or scripts/plot_stream.py FILE)"},
    {"-stream", ARG_TEXT, A(stream), 0, 0, "S,W: streaming cache of the first S and the last W tokens (S + W <= maxT), "
                                           "sampling past maxT (docs/STREAMING.md)"},
    {"-eval-stream", ARG_TEXT, A(eval_stream), 0, 0, "GLOB: loss by position over -n tokens of these shards as one "
                                                     "stream, with -stream S,W (-es, -eb, -b, -json)"},
    {"-es", ARG_TEXT, A(stream_settings), 0, 0, "... settings: stream:S and recompute:S, comma-separated, each with "
                                                "a cache of S+W (default: stream:0,stream:S,recompute:0)"},
    {"-eb", ARG_INT, A(stream_bucket), 0, 1 << 30, "... positions per bucket of the loss table (0: maxT)"},
};
#undef A
#define NUM_FLAGS (int)(sizeof(FLAGS) / sizeof(FLAGS[0]))

static Args parse_args(int argc, char** argv) {
    Args a = {.num_tokens = 256, .temperature = 1.0f, .top_p = 1.0f, .seed = 1337, .B = 4, .T = -1,
              .sink_seqs = 100, .sink_T = 64, .sink_key = 1, .sink_eps = 0.3f, .sink_probes = "auto"};
    const char* synopsis = "./infer -e CHECKPOINT [flags]   (sampling; -eval GLOB; -sa GLOB: docs/SINKS.md; "
                           "-stream S,W, -eval-stream GLOB: docs/STREAMING.md)";
    args_parse(&a, FLAGS, NUM_FLAGS, argc, argv, synopsis, NULL);
    if (!a.model) fail("no checkpoint: give -e CHECKPOINT (./infer -h lists the flags)");
    if (a.prompt && a.prompt_ids) fail("give -p or -pi, not both");
    if (a.json && !a.sinks && !a.eval_stream)
        fail("-json writes the sink analysis or the stream evaluation: add -sa GLOB or -eval-stream GLOB");
    if (a.eval_stream && !a.stream) fail("-eval-stream needs -stream S,W: the cache's sinks and window");
    gpt_probe_set(a.sink_probes, "-sp");   // a bad name fails before any work
    if (a.prompt && !a.tokenizer) fail("-p needs a tokenizer to encode the prompt: add -tk FILE");
    return a;
}

// Parses "1,2,3" into tokens (capacity cap); returns the count.
static int parse_ids(const char* s, int* tokens, int cap, int V) {
    int n = 0;
    const char* p = s;
    while (*p) {
        char* end;
        long id = strtol(p, &end, 10);
        if (end == p) fail("-pi %s: not a comma-separated list of token ids", s);
        if (id < 0 || id >= V) fail("-pi %s: token id %ld is outside the vocabulary (V=%d)", s, id, V);
        if (n == cap) fail("-pi %s: prompt is longer than the model's maximum sequence length %d", s, cap);
        tokens[n++] = (int)id;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') fail("-pi %s: unexpected '%c'", s, *end);
    }
    if (n == 0) fail("-pi: empty prompt");
    return n;
}

// The prompt as the model saw documents in training: an end-of-text token, then the text.
static int encode_prompt(const Tokenizer* tok, const char* text, int* tokens, int cap) {
    size_t len = strlen(text);
    int* ids = malloc_check(sizeof(int) * (len + 1));
    size_t n = tokenizer_encode(tok, (const unsigned char*)text, len, ids, len + 1);
    if ((int)n + 1 > cap)
        fail("-p: the prompt is %zu tokens, longer than the model's maximum sequence length %d", n, cap - 1);
    tokens[0] = tok->eot_token;
    memcpy(tokens + 1, ids, n * sizeof(int));
    free(ids);
    return (int)n + 1;
}

static void print_token(const Tokenizer* tok, int id) {
    if (tok) tokenizer_print(tok, id, stdout);
    else printf("%d ", id);
    fflush(stdout);
}

// Logits of the last of tokens[0..n-1], by a full forward over all of them (no cache).
static const float* full_forward_logits(GPT* model, const int* tokens, int n, float* out) {
    gpt_forward(model, tokens, NULL, 1, n);
    gpt_get_logits(model, n - 1, out);
    return out;
}

static void generate(GPT* model, const Tokenizer* tok, const Args* a) {
    const GPTConfig* c = &model->config;
    int* tokens = malloc_check(sizeof(int) * c->max_seq_len);
    int n = 0;
    if (a->prompt_ids) n = parse_ids(a->prompt_ids, tokens, c->max_seq_len, c->vocab_size);
    else if (a->prompt) n = encode_prompt(tok, a->prompt, tokens, c->max_seq_len);
    else tokens[n++] = tok ? tok->eot_token : c->vocab_size - 1;
    for (int i = 0; i < n; i++) print_token(tok, tokens[i]);
    int total = n + a->num_tokens;
    if (total > c->max_seq_len) {
        fprintf(stderr, "note: stopping at the model's maximum sequence length %d\n", c->max_seq_len);
        total = c->max_seq_len;
    }
    float* logits_buf = malloc_check(sizeof(float) * c->padded_vocab_size);
    if (a->nocache) gpt_reserve(model, 1, c->max_seq_len);
    Rng rng;
    rng_seed(&rng, (uint64_t)a->seed);
    double t0 = now_seconds();
    int fed = 0;  // tokens already in the KV cache
    int generated = 0;
    for (; n < total; n++, generated++) {
        const float* logits;
        if (a->nocache) logits = full_forward_logits(model, tokens, n, logits_buf);
        else { logits = gpt_decode(model, tokens + fed, n - fed, fed); fed = n; }
        tokens[n] = sample_token(logits, c->vocab_size, a->temperature, a->top_k, a->top_p, &rng);
        print_token(tok, tokens[n]);
    }
    double s = now_seconds() - t0;
    printf("\n");
    fprintf(stderr, "generated %d tokens in %.2f s (%.1f tok/s, %s)\n", generated, s, generated / s,
            a->nocache ? "no cache" : "KV cache");
    free(logits_buf);
    free(tokens);
}

static void evaluate(GPT* model, const Tokenizer* tok, const Args* a) {
    int T = a->T > 0 ? a->T : model->config.max_seq_len;
    if (T > model->config.max_seq_len) fail("-t %d: exceeds the model's maximum sequence length %d", T, model->config.max_seq_len);
    DataLoader dl;
    int eot = tok ? tok->eot_token : model->config.vocab_size - 1;   // the BOS of a bos=1 or bos=window model
    // the layout the model trained on, with the trainer's validation settings (unshuffled, seed 0)
    dataloader_init(&dl, a->eval, a->B, T, 0, 1, 0, 0, model->config.vocab_size, model->config.bos, eot);
    int batches = dl.num_batches;
    if (a->max_batches > 0 && a->max_batches < batches) batches = a->max_batches;
    double sum = 0.0, t0 = now_seconds();
    for (int i = 0; i < batches; i++) {
        dataloader_next_batch(&dl);
        sum += gpt_forward(model, dl.inputs, dl.targets, a->B, T);
    }
    double s = now_seconds() - t0;
    long tokens = (long)batches * a->B * T;
    if (!isfinite(sum)) fail("%s: the loss is not finite (%f) on %s", a->model, sum / batches, a->eval);
    printf("eval loss %.4f over %ld tokens (%d batches of B=%d T=%d) from %s, %s\n", sum / batches, tokens, batches,
           a->B, T, a->eval, dataloader_layout_name(dl.layout));
    fprintf(stderr, "%.1f s, %.0f tok/s\n", s, tokens / s);
    dataloader_free(&dl);
}

// The attention-sink analysis: the table on stdout, the JSON to a file (written whole, then renamed).
static void analyze_sinks(GPT* model, const Tokenizer* tok, const Args* a) {
    SinkReport r;
    int eot = tok ? tok->eot_token : model->config.vocab_size - 1;
    unsigned char* line_end = tok ? tokenizer_line_ends(tok) : NULL;   // probes at line starts
    double t0 = now_seconds();
    gpt_sink_analysis_shards(model, a->sinks, eot, line_end, gpt_probe_set(a->sink_probes, "-sp"), a->sink_seqs,
                             a->sink_T, a->sink_key - 1, a->sink_eps, &r);
    free(line_end);
    sink_report_print(&r, stdout);
    fprintf(stderr, "%.1f s for %d sequences of %d tokens\n", now_seconds() - t0, a->sink_seqs, a->sink_T);
    if (a->json) {
        char model_keys[1024];
        gpt_config_describe(&model->config, model_keys, sizeof(model_keys));
        const char* about[] = {"checkpoint", a->model, "model", model_keys, "data", a->sinks};
        FILE* f = atomic_open(a->json);
        sink_report_write_json(&r, f, about, 3);
        atomic_commit(f, a->json);
        printf("wrote %s (plots: /usr/bin/python3 scripts/plot_sinks.py %s)\n", a->json, a->json);
    }
    sink_report_free(&r);
}


// ----------------------------------------------------------------------------
// streaming (docs/STREAMING.md): -stream S,W samples past maxT with a cache of the first S and the
// last W tokens; -eval-stream GLOB measures the loss by position against the references

// A non-negative int from s (up to a comma or the end); fails with one line naming flag and text.
static int parse_count(const char** s, const char* flag, const char* text) {
    char* end;
    long v = strtol(*s, &end, 10);
    if (end == *s || v < 0 || v > (1L << 30) || (*end && *end != ','))
        fail("%s %s: expected non-negative whole numbers separated by a comma", flag, text);
    *s = end;
    return (int)v;
}

// -stream "S,W": checked against the model (gpt_stream_refusal) with one line.
static void parse_stream(const GPT* model, const char* text, int* sinks, int* window) {
    const char* s = text;
    *sinks = parse_count(&s, "-stream", text);
    if (*s != ',') fail("-stream %s: expected S,W (sinks and window, e.g. 4,124)", text);
    s++;
    *window = parse_count(&s, "-stream", text);
    if (*s) fail("-stream %s: expected S,W (sinks and window, e.g. 4,124)", text);
    const char* why = gpt_stream_refusal(&model->config, *sinks, *window);
    if (why) fail("-stream %s: %s (maxT %d)", text, why, model->config.max_seq_len);
}

// Memory the process holds now: the heap in use (glibc: what malloc handed out and was not freed,
// the CPU kernel set's memory included) and, for a kernel set with memory of its own, its free bytes.
typedef struct {
    size_t heap, kernel_free;
} MemoryUse;

static MemoryUse memory_use(const GPT* model) {
    MemoryUse u = {0, 0};
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    u.heap = mi.uordblks + mi.hblkhd;
#endif
    if (strcmp(model->k->name, "cpu") != 0) u.kernel_free = model->k->memory_free();
    return u;
}

// One line on stderr: whether memory stayed the same from the first token after the cache filled
// (from) to the last (to). tests read it (test/model/test_stream.py).
static void report_memory(const GPT* model, MemoryUse from, long token_from, long token_to) {
    MemoryUse to = memory_use(model);
    int same = from.heap == to.heap && from.kernel_free == to.kernel_free;
    fprintf(stderr, "stream memory %s from token %ld to %ld: heap in use %zu -> %zu bytes",
            same ? "constant" : "CHANGED",
            token_from, token_to, from.heap, to.heap);
    if (strcmp(model->k->name, "cpu") != 0)
        fprintf(stderr, ", kernel memory free %zu -> %zu bytes", from.kernel_free, to.kernel_free);
    fprintf(stderr, "\n");
}

static void note_mlstm_stream(const GPT* model) {
    if (model->config.mixer == MIXER_MLSTM)
        fprintf(stderr, "note: mlstm streams with its recurrent state (no KV cache: -stream's S,W do not apply); "
                        "positions from maxT %d on reuse its last learned position\n", model->config.max_seq_len);
}

// Sampling with the streaming cache: the prompt, then -n tokens, as many as asked (past maxT).
static void generate_stream(GPT* model, const Tokenizer* tok, const Args* a) {
    const GPTConfig* c = &model->config;
    int sinks, window;
    parse_stream(model, a->stream, &sinks, &window);
    note_mlstm_stream(model);
    int* prompt = malloc_check(sizeof(int) * c->max_seq_len);
    int n = 0;
    if (a->prompt_ids) n = parse_ids(a->prompt_ids, prompt, c->max_seq_len, c->vocab_size);
    else if (a->prompt) n = encode_prompt(tok, a->prompt, prompt, c->max_seq_len);
    else prompt[n++] = tok ? tok->eot_token : c->vocab_size - 1;
    gpt_stream_begin(model, sinks, window);
    long fed = 0, full = sinks + window + 1;   // memory is measured once a token has been evicted
    MemoryUse at_full = {0, 0};
    const float* logits = NULL;
    for (int i = 0; i < n; i++) {
        print_token(tok, prompt[i]);
        logits = gpt_stream_decode(model, prompt[i]);
        if (++fed == full) at_full = memory_use(model);
    }
    Rng rng;
    rng_seed(&rng, (uint64_t)a->seed);
    double t0 = now_seconds();
    for (int i = 0; i < a->num_tokens; i++) {
        int next = sample_token(logits, c->vocab_size, a->temperature, a->top_k, a->top_p, &rng);
        print_token(tok, next);
        if (i + 1 == a->num_tokens) break;   // the last token needs no logits
        logits = gpt_stream_decode(model, next);
        if (++fed == full) at_full = memory_use(model);
    }
    double s = now_seconds() - t0;
    printf("\n");
    fprintf(stderr, "generated %d tokens in %.2f s (%.1f tok/s, ", a->num_tokens, s, a->num_tokens / s);
    if (c->mixer == MIXER_MLSTM) fprintf(stderr, "mlstm recurrent state)\n");
    else fprintf(stderr, "streaming cache of %d sinks + a window of %d, maxT %d)\n", sinks, window, c->max_seq_len);
    if (fed >= full) report_memory(model, at_full, full, fed);
    free(prompt);
}

// A setting of -eval-stream: the streaming cache (mLSTM: its recurrent state) or a fresh forward per
// token (recomputation), with the first `sinks` tokens kept and the cache of K rows filled with the
// last K - sinks.
typedef struct {
    int recompute, sinks;
    char name[40], label[80];
    double* loss;      // per position of the stream
    double seconds;
} StreamSetting;

enum { MAX_STREAM_SETTINGS = 16 };

static void name_setting(StreamSetting* st, int K, int mlstm) {
    int W = K - st->sinks;
    if (mlstm && !st->recompute) {
        snprintf(st->name, sizeof(st->name), "recurrent");
        snprintf(st->label, sizeof(st->label), "recurrent state");
    } else if (!st->recompute && st->sinks == 0) {
        snprintf(st->name, sizeof(st->name), "window");
        snprintf(st->label, sizeof(st->label), "window only (W=%d)", W);
    } else if (!st->recompute) {
        snprintf(st->name, sizeof(st->name), "sinks_%d", st->sinks);
        snprintf(st->label, sizeof(st->label), "%d sink%s + window (W=%d)", st->sinks, st->sinks > 1 ? "s" : "", W);
    } else if (st->sinks == 0) {
        snprintf(st->name, sizeof(st->name), "recompute");
        snprintf(st->label, sizeof(st->label), "recompute (last %d)", K);
    } else {
        snprintf(st->name, sizeof(st->name), "recompute_sinks_%d", st->sinks);
        snprintf(st->label, sizeof(st->label), "recompute (first %d + last %d)", st->sinks, W);
    }
}

// The settings of -es (default stream:0,stream:S,recompute:0; mLSTM: its recurrent state and
// recompute:0), duplicates dropped; returns how many.
static int parse_stream_settings(const char* text, int S, int K, int mlstm, StreamSetting* out) {
    char fallback[64];
    snprintf(fallback, sizeof(fallback), mlstm ? "stream:0,recompute:0" : "stream:0,stream:%d,recompute:0", S);
    const char* s = text ? text : fallback;
    int n = 0;
    while (*s) {
        StreamSetting st = {0};
        if (strncmp(s, "stream:", 7) == 0) s += 7;
        else if (strncmp(s, "recompute:", 10) == 0) s += 10, st.recompute = 1;
        else fail("-es %s: expected settings stream:S or recompute:S, comma-separated", s);
        st.sinks = parse_count(&s, "-es", text ? text : fallback);
        if (st.sinks >= K)
            fail("-es %s: %d sinks leave no window in a cache of %d (-stream S,W: S + W)", text ? text : fallback,
                 st.sinks, K);
        if (mlstm && !st.recompute) st.sinks = 0;   // one recurrent setting
        if (*s == ',') s++;
        int seen = 0;
        for (int i = 0; i < n; i++) seen |= out[i].recompute == st.recompute && out[i].sinks == st.sinks;
        if (seen) continue;
        if (n == MAX_STREAM_SETTINGS) fail("-es %s: at most %d settings", text, MAX_STREAM_SETTINGS);
        name_setting(&st, K, mlstm);
        out[n++] = st;
    }
    if (n == 0) fail("-es: no settings given");
    return n;
}

// -log p(target) from logits (Vp floats, the first V real), in double.
static double token_loss(const float* logits, int V, int target) {
    double max = logits[0], sum = 0.0;
    for (int i = 1; i < V; i++) max = logits[i] > max ? logits[i] : max;
    for (int i = 0; i < V; i++) sum += exp(logits[i] - max);
    return log(sum) + max - logits[target];
}

// The progress of a long evaluation on stderr, at most every 10 s: positions done of N, tokens/s.
typedef struct {
    const char* what;
    long N;
    double t0, last;
} Progress;

static void progress(Progress* p, long done) {
    double now = now_seconds();
    if (now - p->last < 10.0 || done >= p->N) return;
    p->last = now;
    double rate = done / (now - p->t0);
    fprintf(stderr, "  %s: %ld/%ld positions, %.0f tok/s, %.0f s to go\n", p->what, done, p->N, rate,
            (p->N - done) / rate);
}

// The streaming cache: every position t of the stream fed once, its next token scored.
static void run_stream_setting(GPT* model, const int* tokens, long N, int K, StreamSetting* st) {
    Progress p = {st->label, N, now_seconds(), now_seconds()};
    gpt_stream_begin(model, st->sinks, K - st->sinks);
    for (long t = 0; t < N; t++) {
        st->loss[t] = token_loss(gpt_stream_decode(model, tokens[t]), model->config.vocab_size, tokens[t + 1]);
        progress(&p, t + 1);
    }
}

// Recomputation: position t < K is scored by one forward over the stream's first K tokens (causal);
// each later one by a fresh forward over its window, the first S tokens and the last K - S up to t,
// B windows per forward.
static void run_recompute_setting(GPT* model, const int* tokens, long N, int K, int B, StreamSetting* st) {
    Progress p = {st->label, N, now_seconds(), now_seconds()};
    int S = st->sinks, W = K - S, T0 = N < K ? (int)N : K;
    gpt_forward(model, tokens, tokens + 1, 1, T0);
    for (int t = 0; t < T0; t++) st->loss[t] = model->losses_host[t];
    int *inputs = malloc_check(sizeof(int) * B * K), *targets = malloc_check(sizeof(int) * B * K);
    for (long t = K; t < N; t += B) {
        int nb = N - t < B ? (int)(N - t) : B;
        for (int b = 0; b < nb; b++)
            for (int j = 0; j < K; j++) {
                long from = j < S ? j : t + b - W + 1 + (j - S);   // the stream position of window row j
                inputs[b * K + j] = tokens[from];
                targets[b * K + j] = tokens[from + 1];
            }
        gpt_forward(model, inputs, targets, nb, K);
        for (int b = 0; b < nb; b++) st->loss[t + b] = model->losses_host[(size_t)b * K + K - 1];
        progress(&p, t + nb);
    }
    free(inputs);
    free(targets);
}

static double mean_loss(const double* loss, long from, long to) {
    double sum = 0.0;
    for (long t = from; t < to; t++) sum += loss[t];
    return to > from ? sum / (to - from) : NAN;
}

// A JSON string (quotes and backslashes escaped, control characters dropped).
static void json_string(FILE* f, const char* s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
    fputc('"', f);
}

static void json_number(FILE* f, double x) {
    if (isfinite(x)) fprintf(f, "%.6f", x);
    else fprintf(f, "null");
}

static void write_stream_json(const GPT* model, const Args* a, const StreamSetting* st, int n, long N, int K,
                              int bucket, int bos) {
    char keys[1024];
    gpt_config_describe(&model->config, keys, sizeof(keys));
    FILE* f = atomic_open(a->json);
    fprintf(f, "{\n  \"checkpoint\": ");
    json_string(f, a->model);
    fprintf(f, ",\n  \"model\": ");
    json_string(f, keys);
    fprintf(f, ",\n  \"data\": ");
    json_string(f, a->eval_stream);
    fprintf(f, ",\n  \"tokens\": %ld,\n  \"bos_token\": ", N);
    if (bos >= 0) fprintf(f, "%d", bos);
    else fprintf(f, "null");
    fprintf(f, ",\n  \"max_seq_len\": %d,\n  \"cache\": %d,\n  \"bucket\": %d,\n  \"bucket_start\": [",
            model->config.max_seq_len, K, bucket);
    for (long b = 0; b * bucket < N; b++) fprintf(f, "%s%ld", b ? ", " : "", b * bucket);
    fprintf(f, "],\n  \"settings\": [");
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s\n    {\"name\": \"%s\", \"label\": ", i ? "," : "", st[i].name);
        json_string(f, st[i].label);
        fprintf(f, ", \"kind\": \"%s\", \"sinks\": %d, \"window\": %d,\n     \"mean_loss\": ",
                st[i].recompute ? "recompute" : strcmp(st[i].name, "recurrent") == 0 ? "recurrent" : "stream",
                st[i].sinks, K - st[i].sinks);
        json_number(f, mean_loss(st[i].loss, 0, N));
        fprintf(f, ", \"mean_loss_within_cache\": ");
        json_number(f, mean_loss(st[i].loss, 0, N < K ? N : K));
        fprintf(f, ", \"mean_loss_past_cache\": ");
        json_number(f, mean_loss(st[i].loss, N < K ? N : K, N));
        fprintf(f, ", \"seconds\": %.3f, \"tokens_per_s\": ", st[i].seconds);
        json_number(f, N / st[i].seconds);   // null, not inf, for a run too short to time
        fprintf(f, ",\n     \"bucket_loss\": [");
        for (long b = 0; b * bucket < N; b++) {
            long to = (b + 1) * bucket < N ? (b + 1) * bucket : N;
            fprintf(f, "%s", b ? ", " : "");
            json_number(f, mean_loss(st[i].loss, b * bucket, to));
        }
        fprintf(f, "]}");
    }
    fprintf(f, "\n  ]\n}\n");
    atomic_commit(f, a->json);
}

// The table on stdout: each setting's mean loss within the cache's first K positions, past them and
// over all; then the mean per bucket of positions (when there are at most 64 buckets).
static void print_stream_table(const StreamSetting* st, int n, long N, int K, int bucket) {
    long head = N < K ? N : K;
    printf("%-34s | loss t<%-5d | loss t>=%-5d | ppl t>=%-6d | loss all | tok/s\n", "setting", K, K, K);
    for (int i = 0; i < n; i++) {
        double past = mean_loss(st[i].loss, head, N);
        printf("%-34s | %11.4f | %12.4f | %13.3f | %8.4f | %.0f\n", st[i].label, mean_loss(st[i].loss, 0, head), past,
               exp(past), mean_loss(st[i].loss, 0, N), N / st[i].seconds);
    }
    long buckets = (N + bucket - 1) / bucket;
    if (buckets > 64) {
        printf("(%ld buckets of %d positions: the loss per bucket is in -json FILE; a larger -eb prints it here)\n",
               buckets, bucket);
        return;
    }
    printf("\n%-15s", "positions");
    for (int i = 0; i < n; i++) printf(" | %18s", st[i].name);
    printf("\n");
    for (long b = 0; b < buckets; b++) {
        long to = (b + 1) * bucket < N ? (b + 1) * bucket : N;
        char range[32];
        snprintf(range, sizeof(range), "%ld-%ld", b * bucket, to - 1);
        printf("%-15s", range);
        for (int i = 0; i < n; i++) printf(" | %18.4f", mean_loss(st[i].loss, b * bucket, to));
        printf("\n");
    }
}

// -eval-stream: -n positions of the shards read as one stream (after the BOS for a model trained with
// one), each scored in every setting of -es; a table on stdout, the loss per bucket in -json FILE.
static void evaluate_stream(GPT* model, const Tokenizer* tok, const Args* a) {
    const GPTConfig* c = &model->config;
    int sinks, window;
    parse_stream(model, a->stream, &sinks, &window);
    note_mlstm_stream(model);
    int K = sinks + window, mlstm = c->mixer == MIXER_MLSTM;
    int bucket = a->stream_bucket > 0 ? a->stream_bucket : c->max_seq_len;
    long N = a->num_tokens;
    if (N < 1) fail("-eval-stream: -n %ld: at least one position to score", N);
    StreamSetting st[MAX_STREAM_SETTINGS];
    int n = parse_stream_settings(a->stream_settings, sinks, K, mlstm, st);
    int bos = c->bos ? (tok ? tok->eot_token : c->vocab_size - 1) : -1;   // bos=1 or window: the stream starts with it
    int* tokens = malloc_check(sizeof(int) * (N + 1));
    long first = bos >= 0;
    if (bos >= 0) tokens[0] = bos;
    long got = (long)shard_read_stream(a->eval_stream, c->vocab_size, (size_t)(N + 1 - first), tokens + first);
    if (got < N + 1 - first)
        fail("%s: %ld tokens, fewer than the %ld that -n %ld positions need", a->eval_stream, got, N + 1 - first, N);
    printf("stream eval: %ld positions of %s as one stream%s; a cache of %d rows (maxT %d)\n", N, a->eval_stream,
           bos >= 0 ? ", the BOS first" : "", K, c->max_seq_len);
    fflush(stdout);
    for (int i = 0; i < n; i++) {
        st[i].loss = malloc_check(sizeof(double) * N);
        double t0 = now_seconds();
        if (st[i].recompute) run_recompute_setting(model, tokens, N, K, a->B, &st[i]);
        else run_stream_setting(model, tokens, N, K, &st[i]);
        st[i].seconds = now_seconds() - t0;
        fprintf(stderr, "%s: %.1f s, %.0f tok/s\n", st[i].label, st[i].seconds, N / st[i].seconds);
    }
    print_stream_table(st, n, N, K, bucket);
    if (a->json) {
        write_stream_json(model, a, st, n, N, K, bucket, bos);
        printf("wrote %s (plot: /usr/bin/python3 scripts/plot_stream.py %s)\n", a->json, a->json);
    }
    for (int i = 0; i < n; i++) free(st[i].loss);
    free(tokens);
}

int main(int argc, char** argv) {
    Args a = parse_args(argc, argv);
    GPT model;
    gpt_load_checkpoint(&model, a.model, default_kernels());
    Tokenizer tokenizer, *tok = NULL;
    if (a.tokenizer) {
        tokenizer_load(&tokenizer, a.tokenizer);
        if (tokenizer.vocab_size != model.config.vocab_size)
            fail("%s: tokenizer has %d tokens but the model %s has V=%d", a.tokenizer, tokenizer.vocab_size, a.model,
                 model.config.vocab_size);
        tok = &tokenizer;
    }
    if (a.eval) evaluate(&model, tok, &a);
    else if (a.sinks) analyze_sinks(&model, tok, &a);
    else if (a.eval_stream) evaluate_stream(&model, tok, &a);
    else if (a.stream) generate_stream(&model, tok, &a);
    else generate(&model, tok, &a);
    if (tok) tokenizer_free(tok);
    gpt_free(&model);
    return 0;
}
