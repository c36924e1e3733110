// train_gpt2: the trainer. Flags and their meanings follow llm.c's train_gpt2.cu.
// One step: gradient-accumulation micro-batches from the loader -> forward -> backward, then
// global-norm clipping and AdamW; validation, sampling, logging and checkpoints between steps.
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/check.h"
#include "data/shards.h"
#include "data/tokenizer.h"
#include "model/gpt.h"
#include "model/sampler.h"
#include "model/schedule.h"

typedef struct {
    const char* train_pattern;  // -i
    const char* val_pattern;    // -j
    const char* model;          // -e checkpoint file or descriptor
    const char* out_dir;        // -o
    const char* tokenizer;      // -tk
    const char* schedule;       // -k
    int B, T;                   // -b -t
    int total_batch;            // -d tokens per step (over all micro-batches)
    int max_steps;              // -x (-1: one epoch)
    float lr, final_frac, weight_decay, grad_clip;  // -l -q -c -gc
    int warmup;                 // -u
    int val_every, val_steps;   // -v -m
    int sample_every, gen_T;    // -s -g
    int checkpoint_every;       // -n
    int resume;                 // -y
    int overfit;                // -a
    int shuffle;                // -sh
    int seed;                   // -S
    const char* dump_grads;     // -dg: write the first step's loss and gradients here (CPU vs GPU checks)
    int sink_every;             // -sa: attention-sink analysis every N steps on the val shards (0: off)
    int sink_seqs, sink_T, sink_key;  // -sn -st -sk (1-indexed key)
    float sink_eps;             // -se
} Args;

static void usage(void) {
    fprintf(stderr,
        "usage: ./train_gpt2 -e MODEL [options]\n"
        "  -e  model: checkpoint file, llm.c descriptor (d12, gpt2:d6) or \"L=4,C=128,H=4,T=256,V=257\";\n"
        "      -e help lists every descriptor key\n"
        "  -i  train shards glob (default datasets/kjv/*train*.bin)\n"
        "  -j  val shards glob (default datasets/kjv/*val*.bin)\n"
        "  -o  output dir for main.log and checkpoints (default: none)\n"
        "  -tk tokenizer file for samples (default: tokenizer.bin beside the train shards)\n"
        "  -b  micro-batch size B (4)           -t  sequence length T (model maxT)\n"
        "  -d  total batch in tokens (B*T)      -x  max steps (-1: one epoch)\n"
        "  -k  lr schedule cosine|linear|constant|wsd (cosine)\n"
        "  -l  learning rate (3e-4)             -u  warmup steps (0)\n"
        "  -q  final lr fraction (1.0)          -c  weight decay (0.0)\n"
        "  -gc grad clip norm (1.0, 0 = off)    -S  seed (1337)\n"
        "  -v  val every N steps (20)           -m  val batches (20)\n"
        "  -s  sample every N steps (20)        -g  sample length (64)\n"
        "  -n  checkpoint every N steps (0 = only at the end, with -o)\n"
        "  -y  1: resume from the latest checkpoint in -o\n"
        "  -a  1: overfit a single batch        -sh 1: shuffle the train shards (1)\n"
        "  -dg FILE: write the first step's loss and gradients (fp32) to FILE, for comparing builds\n"
        "  -sa N   attention-sink analysis every N steps on the val shards (0 = off; docs/SINKS.md)\n"
        "  -sn N (100) sequences  -st T (64) tokens  -sk K (1) the key of Sink_K  -se EPS (0.3) threshold\n");
    exit(1);
}

static int int_arg(const char* flag, const char* v) {
    char* end;
    long x = strtol(v, &end, 10);
    if (end == v || *end) fail("%s %s: not an integer", flag, v);
    return (int)x;
}

static float float_arg(const char* flag, const char* v) {
    char* end;
    float x = strtof(v, &end);
    if (end == v || *end || !isfinite(x)) fail("%s %s: not a number", flag, v);
    return x;
}

static Args parse_args(int argc, char** argv) {
    Args a = {.train_pattern = "datasets/kjv/*train*.bin", .val_pattern = "datasets/kjv/*val*.bin",
              .schedule = "cosine", .B = 4, .T = -1, .total_batch = -1, .max_steps = -1, .lr = 3e-4f,
              .final_frac = 1.0f, .grad_clip = 1.0f, .val_every = 20, .val_steps = 20, .sample_every = 20,
              .gen_T = 64, .shuffle = 1, .seed = 1337, .sink_seqs = 100, .sink_T = 64, .sink_key = 1,
              .sink_eps = 0.3f};
    for (int i = 1; i < argc; i += 2) {
        const char* f = argv[i];
        if (f[0] != '-' || i + 1 >= argc) usage();
        const char* v = argv[i + 1];
        if (!strcmp(f, "-i")) a.train_pattern = v;
        else if (!strcmp(f, "-j")) a.val_pattern = v;
        else if (!strcmp(f, "-e")) a.model = v;
        else if (!strcmp(f, "-o")) a.out_dir = v;
        else if (!strcmp(f, "-tk")) a.tokenizer = v;
        else if (!strcmp(f, "-k")) a.schedule = v;
        else if (!strcmp(f, "-b")) a.B = int_arg(f, v);
        else if (!strcmp(f, "-t")) a.T = int_arg(f, v);
        else if (!strcmp(f, "-d")) a.total_batch = int_arg(f, v);
        else if (!strcmp(f, "-x")) a.max_steps = int_arg(f, v);
        else if (!strcmp(f, "-l")) a.lr = float_arg(f, v);
        else if (!strcmp(f, "-u")) a.warmup = int_arg(f, v);
        else if (!strcmp(f, "-q")) a.final_frac = float_arg(f, v);
        else if (!strcmp(f, "-c")) a.weight_decay = float_arg(f, v);
        else if (!strcmp(f, "-gc")) a.grad_clip = float_arg(f, v);
        else if (!strcmp(f, "-v")) a.val_every = int_arg(f, v);
        else if (!strcmp(f, "-m")) a.val_steps = int_arg(f, v);
        else if (!strcmp(f, "-s")) a.sample_every = int_arg(f, v);
        else if (!strcmp(f, "-g")) a.gen_T = int_arg(f, v);
        else if (!strcmp(f, "-n")) a.checkpoint_every = int_arg(f, v);
        else if (!strcmp(f, "-y")) a.resume = int_arg(f, v);
        else if (!strcmp(f, "-a")) a.overfit = int_arg(f, v);
        else if (!strcmp(f, "-sh")) a.shuffle = int_arg(f, v);
        else if (!strcmp(f, "-S")) a.seed = int_arg(f, v);
        else if (!strcmp(f, "-dg")) a.dump_grads = v;
        else if (!strcmp(f, "-sa")) a.sink_every = int_arg(f, v);
        else if (!strcmp(f, "-sn")) a.sink_seqs = int_arg(f, v);
        else if (!strcmp(f, "-st")) a.sink_T = int_arg(f, v);
        else if (!strcmp(f, "-sk")) a.sink_key = int_arg(f, v);
        else if (!strcmp(f, "-se")) a.sink_eps = float_arg(f, v);
        else { fprintf(stderr, "error: unknown flag %s\n", f); usage(); }
    }
    if (!a.model) fail("no model: give -e CHECKPOINT or a descriptor such as -e \"L=4,C=128,H=4,T=256,V=257\"");
    if (!strcmp(a.model, "help")) {
        gpt_config_help(stdout);
        exit(0);
    }
    learning_rate_check(a.schedule);
    if (a.B <= 0) fail("-b %d: the batch size must be positive", a.B);
    return a;
}

// ----------------------------------------------------------------------------

// mkdir -p
static void make_dir(const char* dir) {
    char path[4096];
    snprintf(path, sizeof(path), "%s", dir);
    for (char* p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) fail("%s: cannot create directory: %s", path, strerror(errno));
        *p = '/';
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST) fail("%s: cannot create directory: %s", dir, strerror(errno));
}

// The step of the newest state_XXXXXXXX.bin in dir (-1 if none).
static int latest_checkpoint(const char* dir) {
    DIR* d = opendir(dir);
    if (!d) return -1;
    int best = -1, step;
    for (struct dirent* e; (e = readdir(d));)
        if (sscanf(e->d_name, "state_%8d.bin", &step) == 1 && step > best) best = step;
    closedir(d);
    return best;
}

static void checkpoint_path(char* buf, size_t n, const char* dir, const char* kind, int step) {
    snprintf(buf, n, "%s/%s_%08d.bin", dir, kind, step);
}

static int file_exists(const char* path) { return access(path, F_OK) == 0; }

static void build_model(GPT* model, const Args* a) {
    if (file_exists(a->model)) {
        gpt_load_checkpoint(model, a->model, default_kernels());
    } else {
        GPTConfig c = gpt_config_from_descriptor(a->model);
        gpt_build(model, &c, default_kernels());
        gpt_init_random(model, (uint64_t)a->seed);
    }
}

// Prints what training will allocate and stops with one line if it cannot fit.
// Besides the plan: the kernels' own workspace and per-call scratch (cuBLASLt's 32 MiB workspace,
// the layernorm, encoder and attention backward scratch), a margin rather than a sum.
static const double KERNEL_WORKSPACE_BYTES = 64.0 * 1024 * 1024;

static void check_memory(const GPT* model, int B, int T, bool sampling) {
    MemoryPlan p = gpt_memory_plan(model, B, T, sampling);
    double mib = 1024.0 * 1024.0, free_bytes = (double)model->k->memory_free();
    double needed = (double)(p.total - p.allocated) + KERNEL_WORKSPACE_BYTES;
    printf("memory (%s): params %.1f MiB, grads %.1f, master %.1f, AdamW %.1f, activations %.1f, "
           "grad scratch %.1f, logits %.1f, sampling %.1f, kernel workspace %.0f; total %.1f MiB, of which "
           "%.1f still to allocate, %.1f MiB free\n", model->k->name, p.params / mib, p.grads / mib, p.master / mib,
           p.optimizer / mib, p.activations / mib, p.grad_scratch / mib, p.logits / mib, p.decode / mib,
           KERNEL_WORKSPACE_BYTES / mib, (p.total + KERNEL_WORKSPACE_BYTES) / mib, needed / mib, free_bytes / mib);
    if (needed > free_bytes)
        fail("B=%d T=%d needs %.2f GiB more %s memory but %.2f GiB are free; lower -b or -t (and keep the total "
             "batch with -d: gradient accumulation)", B, T, needed / (mib * 1024), model->k->name,
             free_bytes / (mib * 1024));
}

// The loss (one float) then every parameter gradient (fp32), for comparing kernel sets.
static void dump_gradients(const GPT* model, float loss, const char* path) {
    float* grads = malloc_check(model->num_parameters * sizeof(float));
    gpt_get_gradients(model, grads);
    FILE* f = atomic_open(path);
    fwrite_check(&loss, sizeof(float), 1, f, path);
    fwrite_check(grads, sizeof(float), model->num_parameters, f, path);
    atomic_commit(f, path);
    free(grads);
}

static float val_loss(GPT* model, DataLoader* val, int steps) {
    dataloader_reset(val);
    double sum = 0.0;
    for (int i = 0; i < steps; i++) {
        dataloader_next_batch(val);
        sum += gpt_forward(model, val->inputs, val->targets, val->B, val->T);
    }
    return (float)(sum / steps);
}

static void print_sample(GPT* model, const Tokenizer* tok, int gen_T, Rng* rng) {
    int V = model->config.vocab_size;
    int token = tok ? tok->eot_token : V - 1;
    if (gen_T > model->config.max_seq_len) gen_T = model->config.max_seq_len;
    printf("generating:\n---\n");
    for (int pos = 0; pos < gen_T; pos++) {
        const float* logits = gpt_decode(model, &token, 1, pos);
        token = sample_token(logits, V, 1.0f, 0, 1.0f, rng);
        if (tok) tokenizer_print(tok, token, stdout);
        else printf("%d ", token);
    }
    printf("\n---\n");
    fflush(stdout);
}

// The sink analysis of the held-out shards, to stdout and main.log ("s:STEP sink:PCT fattn:F [slot:PCT]").
static void log_sinks(GPT* model, const Args* a, int eot, int step, FILE* log) {
    SinkReport r;
    gpt_sink_analysis_shards(model, a->val_pattern, eot, a->sink_seqs, a->sink_T, a->sink_key - 1, a->sink_eps, &r);
    char slot[64] = "";
    if (r.has_slot) snprintf(slot, sizeof(slot), " slot:%.4f", sink_report_slot(&r));
    printf("step %d: Sink_%d %.2f%%, first-token attention %.4f%s\n", step, a->sink_key, sink_report_sink(&r),
           sink_report_first_token(&r), slot);
    if (log) {
        fprintf(log, "s:%d sink:%.4f fattn:%.6f%s\n", step, sink_report_sink(&r), sink_report_first_token(&r), slot);
        fflush(log);
    }
    sink_report_free(&r);
}

static const char* default_tokenizer(const char* train_pattern, char* buf, size_t n) {
    const char* slash = strrchr(train_pattern, '/');
    int dir_len = slash ? (int)(slash - train_pattern) : 1;
    snprintf(buf, n, "%.*s/tokenizer.bin", dir_len, slash ? train_pattern : ".");
    return file_exists(buf) ? buf : NULL;
}

static void save_checkpoint(const GPT* model, const Args* a, const TrainState* s, FILE* log) {
    char path[4096];
    checkpoint_path(path, sizeof(path), a->out_dir, "model", s->step);
    gpt_save_checkpoint(model, path);
    checkpoint_path(path, sizeof(path), a->out_dir, "state", s->step);  // written last: it marks the pair complete
    gpt_save_state(model, s, path);
    printf("saved checkpoint %s\n", path);
    if (log) { fprintf(log, "s:%d checkpoint\n", s->step); fflush(log); }
}

int main(int argc, char** argv) {
    Args a = parse_args(argc, argv);
    GPT model;
    TrainState state = {0};
    int resume_step = a.resume && a.out_dir ? latest_checkpoint(a.out_dir) : -1;
    if (a.resume && !a.out_dir) fail("-y 1 needs -o, the directory holding the checkpoints");
    char path[4096];
    if (resume_step >= 0) {
        checkpoint_path(path, sizeof(path), a.out_dir, "model", resume_step);
        gpt_load_checkpoint(&model, path, default_kernels());
    } else {
        build_model(&model, &a);
    }
    GPTConfig* c = &model.config;
    int B = a.B, T = a.T > 0 ? a.T : c->max_seq_len;
    if (T > c->max_seq_len) fail("-t %d: sequence length exceeds the model's maximum %d", T, c->max_seq_len);
    int tokens_per_micro = B * T;
    int total_batch = a.total_batch > 0 ? a.total_batch : tokens_per_micro;
    if (total_batch % tokens_per_micro != 0)
        fail("-d %d: total batch must be a multiple of B*T = %d", total_batch, tokens_per_micro);
    int accum = total_batch / tokens_per_micro;
    check_memory(&model, B, T, a.sample_every > 0);

    // the tokenizer: for the samples, and for its end-of-text token (else V-1, as ./prepare writes)
    char tok_buf[4096];
    const char* tok_path = a.tokenizer ? a.tokenizer : default_tokenizer(a.train_pattern, tok_buf, sizeof(tok_buf));
    Tokenizer tokenizer, *tok = NULL;
    if (tok_path && (a.sample_every > 0 || c->bos || a.sink_every > 0)) {
        tokenizer_load(&tokenizer, tok_path);
        if (tokenizer.vocab_size != c->vocab_size)
            fail("%s: tokenizer has %d tokens but the model's vocabulary is V=%d", tok_path, tokenizer.vocab_size,
                 c->vocab_size);
        tok = &tokenizer;
    }
    int eot = tok ? tok->eot_token : c->vocab_size - 1, bos_token = c->bos ? eot : -1;

    DataLoader train, val;
    dataloader_init(&train, a.train_pattern, B, T, 0, 1, a.shuffle, (uint64_t)a.seed, c->vocab_size, bos_token);
    int val_steps = 0;
    if (a.val_every > 0) {
        glob_t found;
        if (glob(a.val_pattern, 0, NULL, &found) != 0)
            fail("-j %s: no validation shard matches; give -j GLOB, or -v 0 to train without validation",
                 a.val_pattern);
        globfree(&found);
        dataloader_init(&val, a.val_pattern, B, T, 0, 1, 0, 0, c->vocab_size, bos_token);
        val_steps = val.num_batches;
        if (val_steps > a.val_steps) val_steps = a.val_steps;
    }
    int num_steps = a.max_steps > 0 ? a.max_steps : (int)(dataloader_epoch_tokens(&train) / total_batch);
    if (num_steps < 1) num_steps = 1;

    Rng rng;
    rng_seed(&rng, (uint64_t)a.seed);
    if (resume_step >= 0) {
        checkpoint_path(path, sizeof(path), a.out_dir, "state", resume_step);
        gpt_load_state(&model, &state, path);
        dataloader_seek(&train, state.epoch, state.shard_pos, state.sample_pos);
        rng.state = state.rng_state;
        printf("resumed from %s at step %d\n", path, state.step);
    }
    FILE* log = NULL;
    if (a.out_dir) {
        make_dir(a.out_dir);
        snprintf(path, sizeof(path), "%s/main.log", a.out_dir);
        log = fopen_check(path, resume_step >= 0 ? "a" : "w");
    }

    char model_keys[1024];
    gpt_config_describe(c, model_keys, sizeof(model_keys));
    printf("model: %s, %zu parameters (%s)\n", model_keys, model.num_parameters,
           resume_step >= 0 ? "resumed" : a.model);
    printf("batch: B=%d T=%d, %d tokens/step (%d micro-batches), %d steps, lr %g (%s, warmup %d, final %g)\n", B,
           T, total_batch, accum, num_steps, a.lr, a.schedule, a.warmup, a.final_frac);
    printf("train: %zu tokens in %d shards (%s)%s; val: %d batches\n", train.num_tokens, train.num_shards,
           a.train_pattern, c->bos ? ", sequences aligned to document starts" : "", val_steps);
    fflush(stdout);

    if (a.overfit) dataloader_next_batch(&train);
    for (int step = state.step; step <= num_steps; step++) {
        int last = step == num_steps;
        if (val_steps > 0 && (step % a.val_every == 0 || last)) {
            float vl = val_loss(&model, &val, val_steps);
            printf("step %d: val loss %.4f\n", step, vl);
            if (log) { fprintf(log, "s:%d tel:%.6f\n", step, vl); fflush(log); }
        }
        if (a.sink_every > 0 && (step % a.sink_every == 0 || last)) log_sinks(&model, &a, eot, step, log);
        if (a.sample_every > 0 && step > 0 && (step % a.sample_every == 0 || last))
            print_sample(&model, tok, a.gen_T, &rng);
        if (a.out_dir && step > state.step && ((a.checkpoint_every > 0 && step % a.checkpoint_every == 0) || last)) {
            TrainState s = {step, train.epoch, train.shard_pos, train.sample_pos, rng.state};
            save_checkpoint(&model, &a, &s, log);
        }
        if (last) break;

        double t0 = now_seconds();
        gpt_zero_grad(&model);
        double loss = 0.0;
        for (int micro = 0; micro < accum; micro++) {
            if (!a.overfit) dataloader_next_batch(&train);
            loss += gpt_forward(&model, train.inputs, train.targets, B, T) / accum;
            gpt_backward(&model, 1.0f / ((float)tokens_per_micro * accum));
        }
        if (a.dump_grads && step == state.step) dump_gradients(&model, (float)loss, a.dump_grads);
        float lr = learning_rate(a.schedule, a.lr, a.warmup, num_steps, a.final_frac, step);
        float norm = gpt_update(&model, lr, 0.9f, 0.95f, 1e-8f, a.weight_decay, a.grad_clip, step + 1);
        if (!isfinite(loss) || !isfinite(norm))
            fail("step %d: loss %f, gradient norm %f: training diverged; lower the learning rate (-l %g) "
                 "or check the data", step + 1, loss, norm, a.lr);
        double ms = (now_seconds() - t0) * 1000.0;
        printf("step %4d/%d | loss %.6f | lr %.2e | norm %.4f | %.1f ms | %.0f tok/s\n", step + 1, num_steps, loss,
               lr, norm, ms, total_batch / (ms / 1000.0));
        fflush(stdout);
        if (log) { fprintf(log, "s:%d trl:%.6f lr:%.6e norm:%.4f\n", step + 1, loss, lr, norm); fflush(log); }
    }
    if (log) fclose(log);
    if (tok) tokenizer_free(tok);
    dataloader_free(&train);
    if (a.val_every > 0) dataloader_free(&val);
    gpt_free(&model);
    return 0;
}
