// train_gpt2: the trainer. Flags and their meanings follow llm.c's train_gpt2.cu.
// One step: gradient-accumulation micro-batches from the loader -> forward -> backward, then
// global-norm clipping and AdamW; validation, sampling, logging and checkpoints between steps.
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <pthread.h>
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
#include "dist/comm.h"
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
    int decay_all;              // -ca: 1: -c applies to every parameter (else to the 2-D tensors)
    int warmup;                 // -u
    int val_every, val_steps;   // -v -m
    int sample_every, gen_T;    // -s -g
    int checkpoint_every;       // -n
    int resume;                 // -y
    int overfit;                // -a
    int shuffle;                // -sh
    int seed;                   // -S
    const char* init;           // -init: the weights' init scheme of a fresh model (gpt2, neox)
    const char* dump_grads;     // -dg: write the first step's loss and gradients here (CPU vs GPU checks)
    int sink_every;             // -sa: attention-sink analysis every N steps on the val shards (0: off)
    int sink_seqs, sink_T, sink_key;  // -sn -st -sk (1-indexed key)
    float sink_eps;             // -se
    const char* sink_probes;    // -sp: where the analysis's sequences start (auto, doc, line)
    int ranks;                  // -ng: data-parallel ranks in this process (CPU: threads; CUDA: one per GPU)
    int zero;                   // -z: 1: ZeRO-1, each rank keeps and updates 1/ranks of the optimizer state
    int nodes, node;            // -pn -pr: processes (one per node) and this one's number
    const char* id_file;        // -pf: the shared file through which the nodes meet
    int keep;                   // -nk: checkpoints kept (0: all)
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
    {"-c", ARG_FLOAT, A(weight_decay), 0, 1e30, "weight decay (2-D tensors; every parameter with -ca 1)"},
    {"-ca", ARG_INT, A(decay_all), 0, 1, "1: -c applies to every parameter (norm weights and biases too)"},
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
    {"-init", ARG_TEXT, A(init), 0, 0, "init of a fresh model's weights: gpt2 (llm.c's N(0, 0.02)), neox (GPT-NeoX's "
                                       "N(0, sqrt(2/5C)), residual projections N(0, 1/(L sqrt(C))))"},
    {"-dg", ARG_TEXT, A(dump_grads), 0, 0, "FILE: the first step's loss and gradients (fp32), to compare builds"},
    {"-sa", ARG_INT, A(sink_every), 0, BIG, "attention-sink analysis every N steps on the val shards (0: off)"},
    {"-sn", ARG_INT, A(sink_seqs), 1, 100000, "... sequences"},
    {"-st", ARG_INT, A(sink_T), 2, 1 << 20, "... tokens each"},
    {"-sk", ARG_INT, A(sink_key), 1, 1 << 20, "... the key of Sink_K (1: the first)"},
    {"-se", ARG_FLOAT, A(sink_eps), 0, 1, "... threshold on alpha_K"},
    {"-sp", ARG_TEXT, A(sink_probes), 0, 0, "... probe set: doc (document starts), line (line starts), auto "
                                            "(line for bos=window, else doc)"},
    {"-ng", ARG_INT, A(ranks), 1, 1024, "data-parallel ranks in this process (CPU: threads, each with cores/N; "
                                        "CUDA: GPUs, default all visible)"},
    {"-z", ARG_INT, A(zero), 0, 1, "1: ZeRO-1, the AdamW state split across the ranks"},
    {"-pn", ARG_INT, A(nodes), 1, 65536, "processes in the run, one per node (CUDA build)"},
    {"-pr", ARG_INT, A(node), 0, 65535, "this process's number, 0 .. -pn - 1"},
    {"-pf", ARG_TEXT, A(id_file), 0, 0, "FILE on a file system all nodes share, new for each run: where they meet"},
    {"-nk", ARG_INT, A(keep), 0, BIG, "keep the newest K checkpoints, delete older ones (0: keep all)"},
};
#undef A
#define NUM_FLAGS (int)(sizeof(FLAGS) / sizeof(FLAGS[0]))

static Args parse_args(int argc, char** argv) {
    Args a = {.train_pattern = "datasets/kjv/*train*.bin", .val_pattern = "datasets/kjv/*val*.bin",
              .schedule = "cosine", .B = 4, .T = -1, .total_batch = -1, .max_steps = -1, .lr = 3e-4f,
              .final_frac = 1.0f, .grad_clip = 1.0f, .val_every = 20, .val_steps = 20, .sample_every = 20,
              .gen_T = 64, .shuffle = 1, .seed = 1337, .sink_seqs = 100, .sink_T = 64, .sink_key = 1,
              .sink_eps = 0.3f, .sink_probes = "auto", .init = "gpt2", .nodes = 1};
    args_parse(&a, FLAGS, NUM_FLAGS, argc, argv, "./train_gpt2 -e MODEL [flags]", NULL);
    if (!a.model) fail("no model: give -e CHECKPOINT or a descriptor such as -e \"L=4,C=128,H=4,T=256,V=257\"");
    if (!strcmp(a.model, "help")) {
        gpt_config_help(stdout);
        exit(0);
    }
    learning_rate_check(a.schedule);
    gpt_probe_set(a.sink_probes, "-sp");   // a bad name fails before any work
    gpt_init_scheme(a.init, "-init");
    if (a.resume && !a.out_dir) fail("-y 1 needs -o, the directory holding the checkpoints");
    if (a.node >= a.nodes) fail("-pr %d: process numbers run from 0 to -pn - 1 = %d", a.node, a.nodes - 1);
    if (!a.ranks) a.ranks = comm_default_local_ranks();
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
        gpt_init_random(model, (uint64_t)a->seed, gpt_init_scheme(a->init, "-init"));
    }
}

// Prints what training will allocate and stops with one line if it cannot fit.
// Besides the plan: the kernels' own workspace and per-call scratch (cuBLASLt's 32 MiB workspace,
// the layernorm, encoder and attention backward scratch), a margin rather than a sum.
static const double KERNEL_WORKSPACE_BYTES = 64.0 * 1024 * 1024;

// replicas: the data-parallel ranks that share this memory (CPU threads), each with its own plan.
static void check_memory(const GPT* model, int B, int T, bool sampling, int replicas) {
    MemoryPlan p = gpt_memory_plan(model, B, T, sampling);
    double mib = 1024.0 * 1024.0, free_bytes = (double)model->k->memory_free();
    double needed = replicas * (double)p.total - (double)p.allocated + KERNEL_WORKSPACE_BYTES;
    printf("memory (%s): params %.1f MiB, grads %.1f, master %.1f, AdamW %.1f, activations %.1f, "
           "grad scratch %.1f, logits %.1f, sampling %.1f, kernel workspace %.0f; total %.1f MiB, of which "
           "%.1f still to allocate (for %d replica(s)), %.1f MiB free\n", model->k->name, p.params / mib, p.grads / mib, p.master / mib,
           p.optimizer / mib, p.activations / mib, p.grad_scratch / mib, p.logits / mib, p.decode / mib,
           KERNEL_WORKSPACE_BYTES / mib, (p.total + KERNEL_WORKSPACE_BYTES) / mib, needed / mib, replicas,
           free_bytes / mib);
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

// The sink analysis of the held-out shards, to stdout and main.log ("s:STEP sink:PCT fattn:F mass:M [slot:PCT]").
static void log_sinks(GPT* model, const Args* a, int eot, const unsigned char* line_end, int step, RunLog* log) {
    SinkReport r;
    gpt_sink_analysis_shards(model, a->val_pattern, eot, line_end, gpt_probe_set(a->sink_probes, "-sp"), a->sink_seqs,
                             a->sink_T, a->sink_key - 1, a->sink_eps, &r);
    char slot[64] = "";
    if (r.has_slot) snprintf(slot, sizeof(slot), " slot:%.4f", sink_report_slot(&r));
    printf("step %d: Sink_%d %.2f%%, first-token attention %.4f, massive activation %.2f%s\n", step, a->sink_key,
           sink_report_sink(&r), sink_report_first_token(&r), sink_report_massive(&r), slot);
    log_line(log, "s:%d sink:%.4f fattn:%.6f mass:%.4f%s\n", step, sink_report_sink(&r), sink_report_first_token(&r),
             sink_report_massive(&r), slot);
    sink_report_free(&r);
}

// The train shards and what one epoch of the layout reads, on stdout and (a fresh run) in main.log, so
// that a layout which trains on a small part of the text shows it at once.
static void print_data(const DataLoader* dl, const char* pattern, RunLog* log) {
    size_t tokens = dl->num_sequences * dl->T;
    printf("train: %zu tokens in %d shard%s (%s); %s: an epoch is %zu sequences of T=%d = %.2fM tokens, reading "
           "%.2fM distinct of the %.2fM (%.1f%%)\n", dl->num_tokens, dl->num_shards, dl->num_shards == 1 ? "" : "s",
           pattern, dataloader_layout_name(dl->layout), dl->num_sequences, dl->T, tokens / 1e6,
           dl->distinct_tokens / 1e6, dl->num_tokens / 1e6, 100.0 * dl->distinct_tokens / dl->num_tokens);
    const char* bos = dl->layout == LAYOUT_BOS_WINDOWS ? "window" : dl->layout == LAYOUT_DOCUMENTS ? "1" : "0";
    if (log) log_line(log, "data bos:%s epoch_sequences:%zu epoch_tokens:%zu distinct:%zu shard_tokens:%zu\n", bos,
                      dl->num_sequences, tokens, dl->distinct_tokens, dl->num_tokens);
}

static const char* default_tokenizer(const char* train_pattern, char* buf, size_t n) {
    const char* slash = strrchr(train_pattern, '/');
    int dir_len = slash ? (int)(slash - train_pattern) : 1;
    snprintf(buf, n, "%.*s/tokenizer.bin", dir_len, slash ? train_pattern : ".");
    return file_exists(buf) ? buf : NULL;
}

static void save_checkpoint(const GPT* model, const Args* a, TrainState* s, const float* m, const float* v,
                            RunLog* log) {
    char path[4096];
    checkpoint_path(path, sizeof(path), a->out_dir, "model", s->step);
    s->model_checksum = gpt_save_checkpoint(model, path);
    checkpoint_path(path, sizeof(path), a->out_dir, "state", s->step);  // written last: it completes the pair
    gpt_save_state(model, s, m, v, path);
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

// The data-parallel ranks of the run: this process's, times the processes.
static int world_size(const Args* a) { return a->ranks * a->nodes; }

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
    if (s->ranks != world_size(a))
        fail("-ng %d -pn %d: the run in %s was trained with %d rank(s) in all; resume with as many (the ZeRO-1 "
             "shards and loader positions are per rank)", a->ranks, a->nodes, a->out_dir, s->ranks);
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
    if (a->node == 0) gpt_remove_temporaries(a->out_dir);   // the other nodes read the same directory
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

// What the ranks of a run share: set up by main, read by every rank.
typedef struct {
    Args a;
    Comm** comms;
    int B, T, total_batch, accum, num_steps, eot, resume_step;
    int layout;           // the loaders' DataLayout: the model's bos key, with eot as the BOS
    uint64_t data_checksum;
    TrainState resumed;   // what the run resumes from (step 0 for a fresh run)
    Tokenizer* tok;
    unsigned char* line_end;   // the tokenizer's line-ending tokens, for the sink analysis (NULL: none)
    RunLog log;           // written by rank 0
} Run;

// What one rank holds: its model replica, its share of the train data, and (rank 0) validation.
typedef struct {
    Run* run;
    Comm* comm;
    GPT model;
    DataLoader train, val;
    int val_steps;
    float *full_m, *full_v;   // ZeRO-1: the moments gathered for a checkpoint
} Rank;

static void build_rank_model(Rank* r) {
    Run* run = r->run;
    const Args* a = &run->a;
    char path[4096];
    if (run->resume_step >= 0) {
        checkpoint_path(path, sizeof(path), a->out_dir, "model", run->resume_step);
        if (gpt_load_checkpoint(&r->model, path, default_kernels()) != run->resumed.model_checksum)
            fail("%s: the state of step %d does not belong to this model file", path, run->resume_step);
    } else {
        build_model(&r->model, a);   // the same seed on every rank: the same replica
    }
    size_t lo = 0, hi = r->model.num_parameters;
    if (a->zero) comm_shard(hi, comm_rank(r->comm), comm_size(r->comm), &lo, &hi);
    gpt_set_optimizer_shard(&r->model, lo, hi);
}

// The AdamW moments of the rank's shard from the resumed state file.
static void load_rank_state(Rank* r) {
    char path[4096];
    TrainState s;
    checkpoint_path(path, sizeof(path), r->run->a.out_dir, "state", r->run->resume_step);
    gpt_load_state(&r->model, &s, path);
}

static void open_rank_data(Rank* r) {
    Run* run = r->run;
    const Args* a = &run->a;
    int V = r->model.config.vocab_size, rank = comm_rank(r->comm), R = comm_size(r->comm);
    dataloader_init(&r->train, a->train_pattern, run->B, run->T, rank, R, a->shuffle, (uint64_t)a->seed, V,
                    run->layout, run->eot);
    if (run->resume_step >= 0)
        dataloader_seek(&r->train, run->resumed.epoch, run->resumed.shard_pos, run->resumed.sample_pos);
    if (rank == 0 && a->val_every > 0) {
        glob_t found;
        if (glob(a->val_pattern, 0, NULL, &found) != 0)
            fail("-j %s: no validation shard matches; give -j GLOB, or -v 0 to train without validation",
                 a->val_pattern);
        globfree(&found);
        dataloader_init(&r->val, a->val_pattern, run->B, run->T, 0, 1, 0, 0, V, run->layout, run->eot);
        r->val_steps = r->val.num_batches < a->val_steps ? r->val.num_batches : a->val_steps;
    }
}

// The rank's shard of moments (kernel memory, opt_lo..opt_hi) copied to its place in full (kernel
// memory, every parameter), through the host: once per checkpoint.
static void place_shard(const GPT* m, float* full, const float* shard) {
    size_t bytes = (m->opt_hi - m->opt_lo) * sizeof(float);
    float* host = malloc_check(bytes);
    m->k->download(host, shard, bytes);
    m->k->upload(full + m->opt_lo, host, bytes);
    free(host);
}

// The checkpoint of `step`, by rank 0; with ZeRO-1 every rank first adds its shard of the moments.
static void checkpoint_rank(Rank* r, int step, Rng* rng) {
    Run* run = r->run;
    GPT* m = &r->model;
    const float *mom_m = m->m_memory, *mom_v = m->v_memory;
    if (run->a.zero && comm_size(r->comm) > 1) {
        size_t n = m->num_parameters, bytes = n * sizeof(float);
        if (!r->full_m) r->full_m = m->k->alloc(bytes), r->full_v = m->k->alloc(bytes);
        place_shard(m, r->full_m, m->m_memory);
        place_shard(m, r->full_v, m->v_memory);
        comm_all_gather_float(r->comm, r->full_m, n);
        comm_all_gather_float(r->comm, r->full_v, n);
        // each rank updated the master weights of its shard only: the checkpoint saves them all
        if (m->master_memory) comm_all_gather_float(r->comm, m->master_memory, n);
        mom_m = r->full_m, mom_v = r->full_v;
    }
    if (comm_rank(r->comm) == 0) {
        TrainState s = {step, r->train.epoch, r->train.shard_pos, r->train.sample_pos, rng->state, run->B, run->T,
                        run->total_batch, run->a.seed, comm_size(r->comm), 0, run->data_checksum};
        save_checkpoint(m, &run->a, &s, mom_m, mom_v, &run->log);
        if (run->a.keep > 0) gpt_prune_checkpoints(run->a.out_dir, run->a.keep);
    }
    comm_barrier(r->comm);
}

// Between steps: validation, sinks and a sample on rank 0, and the checkpoint.
static void between_steps(Rank* r, int step, int last, int stopping, Rng* rng) {
    Run* run = r->run;
    const Args* a = &run->a;
    if (comm_rank(r->comm) == 0) {
        if (r->val_steps > 0 && (step % a->val_every == 0 || last)) {
            float vl = val_loss(&r->model, &r->val, r->val_steps);
            printf("step %d: val loss %.4f\n", step, vl);
            log_line(&run->log, "s:%d tel:%.6f\n", step, vl);
        }
        if (a->sink_every > 0 && (step % a->sink_every == 0 || last))
            log_sinks(&r->model, a, run->eot, run->line_end, step, &run->log);
        if (a->sample_every > 0 && step > 0 && (step % a->sample_every == 0 || last))
            print_sample(&r->model, run->tok, a->gen_T, rng);
    }
    int due = (a->checkpoint_every > 0 && step % a->checkpoint_every == 0) || last || stopping;
    if (a->out_dir && step > 0 && due) checkpoint_rank(r, step, rng);
    comm_barrier(r->comm);
}

// Without ZeRO-1, layer l's gradients are summed over the ranks as soon as the last micro-batch's
// backward has finished them (gpt_backward calls this), while the layers below run backward; l = -1:
// the gradients of no layer (embeddings, final norm), once the backward is done.
static void reduce_layer_grads(void* ctx, int l) {
    Rank* r = ctx;
    size_t offsets[GPT_MAX_PARAM_SLICES], counts[GPT_MAX_PARAM_SLICES];
    int n = gpt_layer_param_slices(&r->model, l, offsets, counts);
    comm_all_reduce_slices(r->comm, r->model.grads_memory, offsets, counts, n);
}

// One step: the micro-batches of this rank, the gradients summed over the ranks (or, ZeRO-1,
// reduce-scattered), clipping by the global norm, AdamW (on the rank's shard, then the parameters
// gathered). Returns the mean loss over all ranks; *norm gets the gradient norm before clipping.
static double train_step(Rank* r, int step, float lr, float* norm) {
    Run* run = r->run;
    const Args* a = &run->a;
    GPT* m = &r->model;
    int R = comm_size(r->comm);
    gpt_zero_grad(m);
    m->on_layer_grads_ctx = r;
    // the micro-batches' losses stay on the device: no wait for it until the norm below
    for (int micro = 0; micro < run->accum; micro++) {
        if (!a->overfit) dataloader_next_batch(&r->train);
        gpt_forward_micro(m, r->train.inputs, r->train.targets, run->B, run->T, micro, run->accum);
        m->on_layer_grads = !a->zero && micro == run->accum - 1 ? reduce_layer_grads : NULL;
        gpt_backward(m, 1.0f / ((float)run->B * run->T * run->accum * R));
    }
    m->on_layer_grads = NULL;
    if (a->zero) {
        comm_reduce_scatter_sum(r->comm, m->grads_memory, m->num_parameters);
    } else {
        reduce_layer_grads(r, -1);
        comm_wait_reductions(r->comm);
    }
    // the norm: of the whole (all-reduced) gradient, or of each shard, summed over the ranks; its
    // download is the step's wait for the device, the losses' comes after it
    size_t lo = a->zero ? m->opt_lo : 0, hi = a->zero ? m->opt_hi : m->num_parameters;
    double sums[2];
    sums[1] = gpt_grad_norm_squared(m, lo, hi);
    sums[0] = gpt_step_loss(m);
    if (a->dump_grads && step == run->resumed.step && comm_rank(r->comm) == 0 && !a->zero)
        dump_gradients(m, (float)(sums[0] / R), a->dump_grads);
    comm_sum_host(r->comm, sums, 2);
    *norm = sqrtf((float)(sums[1] / (a->zero ? 1 : R)));   // without ZeRO every rank added the whole
    float scale = (a->grad_clip > 0.0f && *norm > a->grad_clip) ? a->grad_clip / *norm : 1.0f;
    gpt_adamw_step(m, lr, 0.9f, 0.95f, 1e-8f, a->weight_decay, a->decay_all, scale, step + 1);
    if (a->zero) comm_all_gather(r->comm, m->params_memory, m->num_parameters);
    return sums[0] / R;
}

static void* run_rank(void* arg) {
    Rank* r = arg;
    Run* run = r->run;
    const Args* a = &run->a;
    int rank = comm_rank(r->comm);
    comm_bind(r->comm);
    build_rank_model(r);
    if (run->resume_step >= 0) load_rank_state(r);
    open_rank_data(r);
    Rng rng;   // rank 0's samples
    rng_seed(&rng, (uint64_t)a->seed);
    if (run->resume_step >= 0) rng.state = run->resumed.rng_state;
    if (a->overfit) dataloader_next_batch(&r->train);
    comm_barrier(r->comm);
    for (int step = run->resumed.step; step <= run->num_steps; step++) {
        int last = step == run->num_steps, stopping = rank == 0 && stop_signal != 0;   // read once
        comm_broadcast_host(r->comm, &stopping, sizeof(stopping), 0);   // every rank stops at the same step
        if (!(run->resume_step >= 0 && step == run->resumed.step))    // done before the resumed checkpoint
            between_steps(r, step, last, stopping, &rng);
        if (last || stopping) break;
        double t0 = now_seconds();
        float lr = learning_rate(a->schedule, a->lr, a->warmup, run->num_steps, a->final_frac, step), norm;
        double loss = train_step(r, step, lr, &norm);
        if (!isfinite(loss) || !isfinite(norm))
            fail("step %d: loss %f, gradient norm %f: training diverged; lower the learning rate (-l %g) "
                 "or check the data", step + 1, loss, norm, a->lr);
        if (rank == 0) {
            double ms = (now_seconds() - t0) * 1000.0;
            printf("step %4d/%d | loss %.6f | lr %.2e | norm %.4f | %.1f ms | %.0f tok/s\n", step + 1,
                   run->num_steps, loss, lr, norm, ms, run->total_batch / (ms / 1000.0));
            fflush(stdout);
            log_line(&run->log, "s:%d trl:%.6f lr:%.6e norm:%.4f\n", step + 1, loss, lr, norm);
        }
    }
    return NULL;
}

static void free_rank(Rank* r) {
    dataloader_free(&r->train);
    if (comm_rank(r->comm) == 0 && r->run->a.val_every > 0) dataloader_free(&r->val);
    if (r->full_m) r->model.k->release(r->full_m), r->model.k->release(r->full_v);
    gpt_free(&r->model);
}

// The run's shared settings from a model (rank 0's, before the ranks start): batch and steps. epoch:
// the train loader over all ranks, for the default step count and the batch the data allows.
static void plan_run(Run* run, const GPTConfig* c, const DataLoader* epoch) {
    const Args* a = &run->a;
    int B = a->B, T = a->T > 0 ? a->T : c->max_seq_len, R = world_size(a);
    if (T > c->max_seq_len) fail("-t %d: sequence length exceeds the model's maximum %d", T, c->max_seq_len);
    if ((long)B * T > 2147483647L / R) fail("-b %d -t %d -ng %d: too many tokens for one micro-batch step", B, T, R);
    int per_step = B * T * R;
    run->total_batch = a->total_batch > 0 ? a->total_batch : per_step;
    if (run->total_batch % per_step != 0)
        fail("-d %d: total batch must be a multiple of B*T*ranks = %d", run->total_batch, per_step);
    size_t epoch_reads = epoch->num_sequences * (size_t)T;   // a step re-reading its own data is no bigger step
    if (!a->overfit && (size_t)run->total_batch > epoch_reads)
        fail("-d %d: a step would read more than an epoch of the train shards (%s) gives, %zu sequences of T=%d = "
             "%zu tokens; lower -d or add data", run->total_batch, a->train_pattern, epoch->num_sequences, T,
             epoch_reads);
    run->B = B, run->T = T, run->accum = run->total_batch / per_step;
    run->num_steps = a->max_steps > 0 ? a->max_steps : (int)(dataloader_epoch_tokens(epoch) / run->total_batch);
    if (run->num_steps < 1) run->num_steps = 1;
    if (a->warmup > run->num_steps)
        fail("-u %d: the warmup is longer than the run's %d steps; give -u at most the steps (-x)", a->warmup,
             run->num_steps);
}

int main(int argc, char** argv) {
    Run run = {.a = parse_args(argc, argv)};
    const Args* a = &run.a;
    catch_stop_signals();
    if (a->out_dir && a->node == 0) {   // one run per folder: node 0 writes it, the other nodes only read
        make_dir(a->out_dir);
        lock_dir(a->out_dir, "train.lock", "-o");
    }
    run.resume_step = find_resume_step(a);
    GPTConfig config;
    char path[4096];
    if (run.resume_step >= 0) {
        checkpoint_path(path, sizeof(path), a->out_dir, "state", run.resume_step);
        run.resumed = gpt_read_state(path);
        checkpoint_path(path, sizeof(path), a->out_dir, "model", run.resume_step);
        config = gpt_checkpoint_config(path);
    } else {
        config = config_of(a->model);
    }
    // the tokenizer: for the samples, and for its end-of-text token (else V-1, as ./prepare writes)
    char tok_buf[4096];
    const char* tok_path = a->tokenizer ? a->tokenizer : default_tokenizer(a->train_pattern, tok_buf, sizeof(tok_buf));
    Tokenizer tokenizer;
    if (tok_path && (a->sample_every > 0 || config.bos || a->sink_every > 0)) {
        tokenizer_load(&tokenizer, tok_path);
        if (tokenizer.vocab_size != config.vocab_size)
            fail("%s: tokenizer has %d tokens but the model's vocabulary is V=%d", tok_path, tokenizer.vocab_size,
                 config.vocab_size);
        run.tok = &tokenizer;
    }
    run.eot = run.tok ? run.tok->eot_token : config.vocab_size - 1;
    run.layout = config.bos;
    if (run.tok) run.line_end = tokenizer_line_ends(run.tok);
    DataLoader probe;   // the epoch's size, for the default step count
    dataloader_init(&probe, a->train_pattern, a->B, a->T > 0 ? a->T : config.max_seq_len, 0, world_size(a), 0, 0,
                    config.vocab_size, run.layout, run.eot);
    plan_run(&run, &config, &probe);
    run.data_checksum = checksum_update(CHECKSUM_START, a->train_pattern, strlen(a->train_pattern));
    if (run.resume_step >= 0) {
        check_resume(&run.resumed, &config, a, run.T, run.total_batch, run.num_steps, run.data_checksum);
        if (run.resumed.step == run.num_steps) {   // a finished run (a requeued job, say): nothing to do
            printf("the run in %s is complete at step %d; nothing to do\n", a->out_dir, run.resumed.step);
            return 0;
        }
    }

    Rank* ranks = calloc_check(a->ranks, sizeof(Rank));
    CommLayout layout = {a->ranks, a->nodes, a->node, a->id_file};
    run.comms = comm_init(&layout);
    for (int r = 0; r < a->ranks; r++) ranks[r] = (Rank){.run = &run, .comm = run.comms[r]};
    build_rank_model(&ranks[0]);   // rank 0 first, for the memory plan and the lines below
    check_memory(&ranks[0].model, run.B, run.T, a->sample_every > 0, comm_ranks_per_memory(a->ranks));
    if (a->node == 0) run.log = open_log(a, run.resume_step);   // global rank 0 logs
    if (run.resume_step >= 0) printf("resumed from %s/state_%08d.bin at step %d\n", a->out_dir, run.resume_step,
                                     run.resumed.step);
    char model_keys[1024];
    gpt_config_describe(&config, model_keys, sizeof(model_keys));
    printf("model: %s, %zu parameters (%s%s%s)\n", model_keys, ranks[0].model.num_parameters,
           run.resume_step >= 0 ? "resumed" : a->model, run.resume_step < 0 && !file_exists(a->model) ? ", init " : "",
           run.resume_step < 0 && !file_exists(a->model) ? a->init : "");
    printf("batch: B=%d T=%d x %d rank(s)%s, %d tokens/step (%d micro-batches), %d steps, lr %g (%s, warmup %d, "
           "final %g)\n", run.B, run.T, world_size(a), a->zero ? " (ZeRO-1)" : "", run.total_batch, run.accum,
           run.num_steps, a->lr, a->schedule, a->warmup, a->final_frac);
    print_data(&probe, a->train_pattern, run.resume_step < 0 ? &run.log : NULL);
    fflush(stdout);
    dataloader_free(&probe);
    gpt_free(&ranks[0].model);   // each rank builds its own replica in its thread

    if (a->ranks == 1) {
        run_rank(&ranks[0]);
    } else {
        pthread_t* threads = calloc_check(a->ranks, sizeof(pthread_t));
        for (int r = 0; r < a->ranks; r++)
            if (pthread_create(&threads[r], NULL, run_rank, &ranks[r]) != 0) fail("cannot start rank %d", r);
        for (int r = 0; r < a->ranks; r++) pthread_join(threads[r], NULL);
        free(threads);
    }
    if (stop_signal)
        printf("stopped by signal %d%s\n", (int)stop_signal, a->out_dir ? ": the checkpoint above has this step" : "");
    for (int r = 0; r < a->ranks; r++) free_rank(&ranks[r]);
    comm_free(run.comms, a->ranks);
    free(ranks);
    if (run.log.f) fclose_check(run.log.f, run.log.path);
    if (run.tok) tokenizer_free(run.tok);
    free(run.line_end);
    return 0;
}
