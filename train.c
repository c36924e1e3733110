// train_gpt2: the trainer. Flags and their meanings follow llm.c's train_gpt2.cu.
// One step: gradient-accumulation micro-batches from the loader -> forward -> backward, then
// global-norm clipping and AdamW; validation, sampling, logging and checkpoints between steps.
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/args.h"
#include "common/check.h"
#include "common/checksum.h"
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
    int B, T;                   // -b -t (T -1: the model's maxT)
    int total_batch;            // -d tokens per step (over all micro-batches; -1: B*T)
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

#define A(f) offsetof(Args, f)
#define BIG 2147483647.0
static const ArgSpec FLAGS[] = {
    {"-e", ARG_TEXT, A(model), 0, 0, "model: checkpoint file, llm.c descriptor (d12, gpt2:d6) or "
                                     "\"L=4,C=128,H=4,T=256,V=257,...\"; -e help lists the keys"},
    {"-i", ARG_TEXT, A(train_pattern), 0, 0, "train shards glob"},
    {"-j", ARG_TEXT, A(val_pattern), 0, 0, "val shards glob"},
    {"-o", ARG_TEXT, A(out_dir), 0, 0, "output dir for main.log and checkpoints"},
    {"-tk", ARG_TEXT, A(tokenizer), 0, 0, "tokenizer file (default: tokenizer.bin beside the train shards)"},
    {"-b", ARG_INT, A(B), 1, 65536, "micro-batch size B"},
    {"-t", ARG_INT, A(T), 1, 1 << 20, "sequence length T (default: the model's maxT)"},
    {"-d", ARG_INT, A(total_batch), 1, BIG, "total batch in tokens, a multiple of B*T (default B*T)"},
    {"-x", ARG_INT, A(max_steps), 1, BIG, "steps (default: one epoch)"},
    {"-k", ARG_TEXT, A(schedule), 0, 0, "lr schedule: cosine, linear, constant, wsd"},
    {"-l", ARG_FLOAT, A(lr), 0, 1e30, "learning rate"},
    {"-u", ARG_INT, A(warmup), 0, BIG, "warmup steps"},
    {"-q", ARG_FLOAT, A(final_frac), 0, 1, "final lr as a fraction of -l"},
    {"-c", ARG_FLOAT, A(weight_decay), 0, 1e30, "weight decay (2-D tensors)"},
    {"-gc", ARG_FLOAT, A(grad_clip), 0, 1e30, "gradient clipping global norm (0: off)"},
    {"-v", ARG_INT, A(val_every), 0, BIG, "val loss every N steps (0: off)"},
    {"-m", ARG_INT, A(val_steps), 1, BIG, "val batches"},
    {"-s", ARG_INT, A(sample_every), 0, BIG, "sample every N steps (0: off)"},
    {"-g", ARG_INT, A(gen_T), 1, 1 << 20, "tokens per sample"},
    {"-n", ARG_INT, A(checkpoint_every), 0, BIG, "checkpoint every N steps (0: only at the end; with -o)"},
    {"-y", ARG_INT, A(resume), 0, 1, "1: resume from the newest complete checkpoint in -o"},
    {"-a", ARG_INT, A(overfit), 0, 1, "1: overfit a single batch"},
    {"-sh", ARG_INT, A(shuffle), 0, 1, "1: shuffle shards and samples (seeded)"},
    {"-S", ARG_INT, A(seed), 0, BIG, "seed (init, shuffling, sampling)"},
    {"-dg", ARG_TEXT, A(dump_grads), 0, 0, "FILE: the first step's loss and gradients (fp32), to compare builds"},
    {"-sa", ARG_INT, A(sink_every), 0, BIG, "attention-sink analysis every N steps on the val shards (0: off)"},
    {"-sn", ARG_INT, A(sink_seqs), 1, 100000, "... sequences"},
    {"-st", ARG_INT, A(sink_T), 2, 1 << 20, "... tokens each"},
    {"-sk", ARG_INT, A(sink_key), 1, 1 << 20, "... the key of Sink_K (1: the first)"},
    {"-se", ARG_FLOAT, A(sink_eps), 0, 1, "... threshold on alpha_K"},
};
#undef A
#define NUM_FLAGS (int)(sizeof(FLAGS) / sizeof(FLAGS[0]))

static Args parse_args(int argc, char** argv) {
    Args a = {.train_pattern = "datasets/kjv/*train*.bin", .val_pattern = "datasets/kjv/*val*.bin",
              .schedule = "cosine", .B = 4, .T = -1, .total_batch = -1, .max_steps = -1, .lr = 3e-4f,
              .final_frac = 1.0f, .grad_clip = 1.0f, .val_every = 20, .val_steps = 20, .sample_every = 20,
              .gen_T = 64, .shuffle = 1, .seed = 1337, .sink_seqs = 100, .sink_T = 64, .sink_key = 1,
              .sink_eps = 0.3f};
    args_parse(&a, FLAGS, NUM_FLAGS, argc, argv, "./train_gpt2 -e MODEL [flags]");
    if (!a.model) fail("no model: give -e CHECKPOINT or a descriptor such as -e \"L=4,C=128,H=4,T=256,V=257\"");
    if (!strcmp(a.model, "help")) {
        gpt_config_help(stdout);
        exit(0);
    }
    learning_rate_check(a.schedule);
    if (a.resume && !a.out_dir) fail("-y 1 needs -o, the directory holding the checkpoints");
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

// main.log: every line flushed; a write that fails (a full disk) stops the run with one line.
typedef struct {
    FILE* f;
    char path[4096];
} RunLog;

static void log_line(RunLog* log, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(RunLog* log, const char* fmt, ...) {
    if (!log->f) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(log->f, fmt, ap);
    va_end(ap);
    if (ferror(log->f) || fflush(log->f) != 0) fail("%s: cannot write: %s", log->path, strerror(errno));
}

// The sink analysis of the held-out shards, to stdout and main.log ("s:STEP sink:PCT fattn:F [slot:PCT]").
static void log_sinks(GPT* model, const Args* a, int eot, int step, RunLog* log) {
    SinkReport r;
    gpt_sink_analysis_shards(model, a->val_pattern, eot, a->sink_seqs, a->sink_T, a->sink_key - 1, a->sink_eps, &r);
    char slot[64] = "";
    if (r.has_slot) snprintf(slot, sizeof(slot), " slot:%.4f", sink_report_slot(&r));
    printf("step %d: Sink_%d %.2f%%, first-token attention %.4f%s\n", step, a->sink_key, sink_report_sink(&r),
           sink_report_first_token(&r), slot);
    log_line(log, "s:%d sink:%.4f fattn:%.6f%s\n", step, sink_report_sink(&r), sink_report_first_token(&r), slot);
    sink_report_free(&r);
}

static const char* default_tokenizer(const char* train_pattern, char* buf, size_t n) {
    const char* slash = strrchr(train_pattern, '/');
    int dir_len = slash ? (int)(slash - train_pattern) : 1;
    snprintf(buf, n, "%.*s/tokenizer.bin", dir_len, slash ? train_pattern : ".");
    return file_exists(buf) ? buf : NULL;
}

static void save_checkpoint(const GPT* model, const Args* a, TrainState* s, RunLog* log) {
    char path[4096];
    checkpoint_path(path, sizeof(path), a->out_dir, "model", s->step);
    s->model_checksum = gpt_save_checkpoint(model, path);
    checkpoint_path(path, sizeof(path), a->out_dir, "state", s->step);  // written last: it completes the pair
    gpt_save_state(model, s, path);
    printf("saved checkpoint %s\n", path);
    log_line(log, "s:%d checkpoint\n", s->step);
}

// SIGINT and SIGTERM (Slurm sends SIGTERM before a time limit) ask the run to stop: it finishes the
// step, writes a checkpoint and exits 0. The flag is the only state a signal handler may touch.
static volatile sig_atomic_t stop_signal = 0;
static void on_stop_signal(int sig) { stop_signal = sig; }

static void catch_stop_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

// The config a checkpoint file or a descriptor gives.
static GPTConfig config_of(const char* model) {
    return file_exists(model) ? gpt_checkpoint_config(model) : gpt_config_from_descriptor(model);
}

// A resumed run continues the same run: the same model, data, batch, seed, and steps still to go.
static void check_resume(const TrainState* s, const GPTConfig* c, const Args* a, int T, int total_batch,
                         int num_steps, uint64_t data_checksum) {
    char resumed[1024], given[1024];
    GPTConfig g = config_of(a->model);
    gpt_config_describe(c, resumed, sizeof(resumed));
    gpt_config_describe(&g, given, sizeof(given));
    if (strcmp(resumed, given))
        fail("-e %s: the run in %s is the model %s; resume with the same -e, or start a new run elsewhere", a->model,
             a->out_dir, resumed);
    if (s->B != a->B || s->T != T || s->total_batch != total_batch || s->seed != a->seed)
        fail("-b %d -t %d -d %d -S %d: the run in %s was trained with -b %d -t %d -d %d -S %d; resume with the same "
             "values", a->B, T, total_batch, a->seed, a->out_dir, s->B, s->T, s->total_batch, s->seed);
    if (s->data_checksum != data_checksum)
        fail("-i %s: the run in %s was trained on other train shards; resume with the same -i", a->train_pattern,
             a->out_dir);
    if (num_steps < s->step)
        fail("-x %d: the run in %s is at step %d already; give a larger -x to train on", num_steps, a->out_dir,
             s->step);
}

// main.log cut back to the line of the checkpoint a run resumes from, so the steps after it, which the
// resumed run does again, are not logged twice. Written to a temporary, then renamed.
static void cut_log(const char* path, int step) {
    FILE* f = fopen(path, "rb");
    if (!f) return;
    char mark[64], *line = NULL;
    snprintf(mark, sizeof(mark), "s:%d checkpoint\n", step);
    size_t cap = 0, keep = 0, at = 0;
    for (ssize_t len; (len = getline(&line, &cap, f)) > 0;) {
        at += (size_t)len;
        if (!strcmp(line, mark)) keep = at;
    }
    if (keep && keep < at) {
        char* text = malloc_check(keep);
        rewind(f);
        fread_check(text, 1, keep, f, path);
        FILE* out = atomic_open(path);
        fwrite_check(text, 1, keep, out, path);
        atomic_commit(out, path);
        free(text);
    }
    free(line);
    fclose(f);
}

// With -y 1: the step of the newest complete checkpoint in the output dir (after removing what an
// interrupted write left), or -1 to start from scratch, saying so.
static int find_resume_step(const Args* a) {
    if (!a->resume) return -1;
    gpt_remove_temporaries(a->out_dir);
    int step = gpt_latest_checkpoint(a->out_dir);
    if (step < 0) printf("no complete checkpoint in %s: starting from scratch\n", a->out_dir);
    return step;
}

// main.log: appended to when resuming (cut back to the checkpoint); a fresh run in a dir that has one
// keeps the old log as main.log.old.
static RunLog open_log(const Args* a, int resume_step) {
    RunLog log = {NULL, ""};
    if (!a->out_dir) return log;
    make_dir(a->out_dir);
    snprintf(log.path, sizeof(log.path), "%s/main.log", a->out_dir);
    if (resume_step >= 0) {
        cut_log(log.path, resume_step);
    } else if (file_exists(log.path)) {
        char old[4200];
        snprintf(old, sizeof(old), "%s.old", log.path);
        if (rename(log.path, old) != 0) fail("%s: cannot keep it as %s: %s", log.path, old, strerror(errno));
        printf("kept the earlier %s as %s\n", log.path, old);
    }
    log.f = fopen_check(log.path, "a");
    return log;
}

int main(int argc, char** argv) {
    Args a = parse_args(argc, argv);
    catch_stop_signals();
    GPT model;
    TrainState state = {0};
    int resume_step = find_resume_step(&a);
    char path[4096];
    uint64_t model_checksum = 0;
    if (resume_step >= 0) {
        checkpoint_path(path, sizeof(path), a.out_dir, "model", resume_step);
        model_checksum = gpt_load_checkpoint(&model, path, default_kernels());
    } else {
        build_model(&model, &a);
    }
    GPTConfig* c = &model.config;
    int B = a.B, T = a.T > 0 ? a.T : c->max_seq_len;
    if (T > c->max_seq_len) fail("-t %d: sequence length exceeds the model's maximum %d", T, c->max_seq_len);
    if ((long)B * T > 2147483647L) fail("-b %d -t %d: B*T = %ld tokens is too many for one micro-batch", B, T, (long)B * T);
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
    uint64_t data_checksum = checksum_update(CHECKSUM_START, a.train_pattern, strlen(a.train_pattern));
    if (resume_step >= 0) {
        checkpoint_path(path, sizeof(path), a.out_dir, "state", resume_step);
        gpt_load_state(&model, &state, path);
        if (state.model_checksum != model_checksum) fail("%s: the state does not belong to its model file", path);
        check_resume(&state, c, &a, T, total_batch, num_steps, data_checksum);
        if (state.step == num_steps) {   // a finished run (a requeued job, say): nothing to do
            printf("the run in %s is complete at step %d; nothing to do\n", a.out_dir, state.step);
            return 0;
        }
        dataloader_seek(&train, state.epoch, state.shard_pos, state.sample_pos);
        rng.state = state.rng_state;
        printf("resumed from %s at step %d\n", path, state.step);
    }
    RunLog log = open_log(&a, resume_step);

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
        int last = step == num_steps, stopping = stop_signal != 0;   // read once: it may arrive any time
        // between steps: validation, sinks, a sample, a checkpoint (done before the resumed checkpoint was saved)
        if (!(resume_step >= 0 && step == state.step)) {
            if (val_steps > 0 && (step % a.val_every == 0 || last)) {
                float vl = val_loss(&model, &val, val_steps);
                printf("step %d: val loss %.4f\n", step, vl);
                log_line(&log, "s:%d tel:%.6f\n", step, vl);
            }
            if (a.sink_every > 0 && (step % a.sink_every == 0 || last)) log_sinks(&model, &a, eot, step, &log);
            if (a.sample_every > 0 && step > 0 && (step % a.sample_every == 0 || last))
                print_sample(&model, tok, a.gen_T, &rng);
            int due = (a.checkpoint_every > 0 && step % a.checkpoint_every == 0) || last || stopping;
            if (a.out_dir && step > 0 && due) {
                TrainState s = {step, train.epoch, train.shard_pos, train.sample_pos, rng.state, B, T, total_batch,
                                a.seed, 0, data_checksum};
                save_checkpoint(&model, &a, &s, &log);
            }
        }
        if (last || stopping) break;

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
        log_line(&log, "s:%d trl:%.6f lr:%.6e norm:%.4f\n", step + 1, loss, lr, norm);
    }
    if (stop_signal)
        printf("stopped by signal %d%s\n", (int)stop_signal, a.out_dir ? ": the checkpoint above has this step" : "");
    if (log.f) fclose_check(log.f, log.path);
    if (tok) tokenizer_free(tok);
    dataloader_free(&train);
    if (a.val_every > 0) dataloader_free(&val);
    gpt_free(&model);
    return 0;
}
