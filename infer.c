// infer: sample text from a checkpoint (KV cache by default), evaluate its loss on shards, or measure
// its attention sinks (docs/SINKS.md).
//   ./infer -e model.bin -tk tokenizer.bin [-p "text" | -pi "ids"] [-n 256] [-temp 1] [-topk 0] [-topp 1] [-seed 1337] [-nocache 1]
//   ./infer -e model.bin -eval "datasets/kjv/*val*.bin" [-b 4] [-t T] [-m batches]
//   ./infer -e model.bin -sa "datasets/kjv/*val*.bin" [-sn 100] [-st 64] [-sk 1] [-se 0.3] [-json FILE]
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    int num_tokens;          // -n
    float temperature;       // -temp
    int top_k;               // -topk
    float top_p;             // -topp
    int seed;                // -seed
    int nocache;             // -nocache
    int B, T, max_batches;   // -b -t -m (eval)
} Args;

static void usage(void) {
    fprintf(stderr,
        "usage: ./infer -e CHECKPOINT [options]\n"
        "sampling:\n"
        "  -tk FILE      tokenizer (decodes the output; without it token ids are printed)\n"
        "  -p TEXT       prompt text, encoded with -tk after an end-of-text token\n"
        "  -pi IDS       prompt as comma-separated token ids (default: the end-of-text token)\n"
        "  -n N          tokens to generate (256)\n"
        "  -temp X       temperature (1.0; 0 = greedy)   -topk K  (0 = off)   -topp P  (1.0 = off)\n"
        "  -seed S       sampling seed (1337)\n"
        "  -nocache 1    recompute the full forward at every step instead of using the KV cache\n"
        "evaluation:\n"
        "  -eval GLOB    print the mean loss over these shards   -b B (4)  -t T (maxT)  -m max batches (all)\n"
        "attention sinks (docs/SINKS.md):\n"
        "  -sa GLOB      measure them on sequences at document starts in these shards\n"
        "  -sn N (100) sequences   -st T (64) tokens each   -sk K (1) the key of Sink_K   -se EPS (0.3) threshold\n"
        "  -json FILE    also write the measurements as JSON (plots: scripts/plot_sinks.py FILE)\n");
    exit(1);
}

static Args parse_args(int argc, char** argv) {
    Args a = {.num_tokens = 256, .temperature = 1.0f, .top_p = 1.0f, .seed = 1337, .B = 4, .T = -1,
              .sink_seqs = 100, .sink_T = 64, .sink_key = 1, .sink_eps = 0.3f};
    for (int i = 1; i < argc; i += 2) {
        const char* f = argv[i];
        if (f[0] != '-' || i + 1 >= argc) usage();
        const char* v = argv[i + 1];
        char* end;
        double x = strtod(v, &end);
        int numeric = end != v && *end == '\0' && isfinite(x);
        if (!strcmp(f, "-e")) a.model = v;
        else if (!strcmp(f, "-tk")) a.tokenizer = v;
        else if (!strcmp(f, "-p")) a.prompt = v;
        else if (!strcmp(f, "-pi")) a.prompt_ids = v;
        else if (!strcmp(f, "-eval")) a.eval = v;
        else if (!strcmp(f, "-sa")) a.sinks = v;
        else if (!strcmp(f, "-json")) a.json = v;
        else if (!numeric) fail("%s %s: not a number", f, v);
        else if (!strcmp(f, "-n")) a.num_tokens = (int)x;
        else if (!strcmp(f, "-temp")) a.temperature = (float)x;
        else if (!strcmp(f, "-topk")) a.top_k = (int)x;
        else if (!strcmp(f, "-topp")) a.top_p = (float)x;
        else if (!strcmp(f, "-seed")) a.seed = (int)x;
        else if (!strcmp(f, "-nocache")) a.nocache = (int)x;
        else if (!strcmp(f, "-b")) a.B = (int)x;
        else if (!strcmp(f, "-t")) a.T = (int)x;
        else if (!strcmp(f, "-m")) a.max_batches = (int)x;
        else if (!strcmp(f, "-sn")) a.sink_seqs = (int)x;
        else if (!strcmp(f, "-st")) a.sink_T = (int)x;
        else if (!strcmp(f, "-sk")) a.sink_key = (int)x;
        else if (!strcmp(f, "-se")) a.sink_eps = (float)x;
        else { fprintf(stderr, "error: unknown flag %s\n", f); usage(); }
    }
    if (!a.model) usage();
    if (a.prompt && a.prompt_ids) fail("give -p or -pi, not both");
    if (a.json && !a.sinks) fail("-json writes the sink analysis: add -sa GLOB");
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
    int eot = tok ? tok->eot_token : model->config.vocab_size - 1;   // a bos=1 model reads at document starts
    dataloader_init(&dl, a->eval, a->B, T, 0, 1, 0, 0, model->config.vocab_size, model->config.bos ? eot : -1);
    int batches = dl.num_batches;
    if (a->max_batches > 0 && a->max_batches < batches) batches = a->max_batches;
    double sum = 0.0, t0 = now_seconds();
    for (int i = 0; i < batches; i++) {
        dataloader_next_batch(&dl);
        sum += gpt_forward(model, dl.inputs, dl.targets, a->B, T);
    }
    double s = now_seconds() - t0;
    long tokens = (long)batches * a->B * T;
    printf("eval loss %.4f over %ld tokens (%d batches of B=%d T=%d) from %s\n", sum / batches, tokens, batches,
           a->B, T, a->eval);
    fprintf(stderr, "%.1f s, %.0f tok/s\n", s, tokens / s);
    dataloader_free(&dl);
}

// The attention-sink analysis: the table on stdout, the JSON to a file (written whole, then renamed).
static void analyze_sinks(GPT* model, const Tokenizer* tok, const Args* a) {
    SinkReport r;
    int eot = tok ? tok->eot_token : model->config.vocab_size - 1;
    double t0 = now_seconds();
    gpt_sink_analysis_shards(model, a->sinks, eot, a->sink_seqs, a->sink_T, a->sink_key - 1, a->sink_eps, &r);
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
    else generate(&model, tok, &a);
    if (tok) tokenizer_free(tok);
    gpt_free(&model);
    return 0;
}
