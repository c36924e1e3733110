// infer: sample text from a checkpoint (KV cache by default), evaluate its loss on shards, or measure
// its attention sinks (docs/SINKS.md).
//   ./infer -e model.bin -tk tokenizer.bin [-p "text" | -pi "ids"] [-n 256] [-temp 1] [-topk 0] [-topp 1] [-seed 1337] [-nocache 1]
//   ./infer -e model.bin -eval "datasets/kjv/*val*.bin" [-b 4] [-t T] [-m batches]
//   ./infer -e model.bin -sa "datasets/kjv/*val*.bin" [-sn 100] [-st 64] [-sk 1] [-se 0.3] [-json FILE]
#include <math.h>
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
} Args;

#define A(f) offsetof(Args, f)
static const ArgSpec FLAGS[] = {
    {"-e", ARG_TEXT, A(model), 0, 0, "checkpoint (fp32 version 3 or bf16 version 5)"},
    {"-tk", ARG_TEXT, A(tokenizer), 0, 0, "tokenizer (decodes the output; without it token ids are printed)"},
    {"-p", ARG_TEXT, A(prompt), 0, 0, "prompt text, encoded with -tk after an end-of-text token"},
    {"-pi", ARG_TEXT, A(prompt_ids), 0, 0, "prompt as comma-separated token ids (default: the end-of-text token)"},
    {"-n", ARG_INT, A(num_tokens), 0, 1 << 20, "tokens to generate"},
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
    {"-json", ARG_TEXT, A(json), 0, 0, "FILE: the analysis also as JSON (plots: scripts/plot_sinks.py FILE)"},
};
#undef A
#define NUM_FLAGS (int)(sizeof(FLAGS) / sizeof(FLAGS[0]))

static Args parse_args(int argc, char** argv) {
    Args a = {.num_tokens = 256, .temperature = 1.0f, .top_p = 1.0f, .seed = 1337, .B = 4, .T = -1,
              .sink_seqs = 100, .sink_T = 64, .sink_key = 1, .sink_eps = 0.3f, .sink_probes = "auto"};
    const char* synopsis = "./infer -e CHECKPOINT [flags]   (sampling; -eval GLOB; -sa GLOB: docs/SINKS.md)";
    args_parse(&a, FLAGS, NUM_FLAGS, argc, argv, synopsis);
    if (!a.model) fail("no checkpoint: give -e CHECKPOINT (./infer -h lists the flags)");
    if (a.prompt && a.prompt_ids) fail("give -p or -pi, not both");
    if (a.json && !a.sinks) fail("-json writes the sink analysis: add -sa GLOB");
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
