// Model checkpoints and training state (docs/FORMATS.md, docs/RELIABILITY.md).
// The model file is llm.c's format: 256 int32 header (magic 20240326, version, maxT, V, L, H, C, Vp),
// then the 16 tensors in llm.c's order, fp32 (version 3) or bf16 (version 5), then the mixer's extra
// tensors in the registry's order (model/tensors.c). Slots 8-13 are zero, 14-15 hold the file's
// checksum, slots 16.. attnlab's marker, settings version and mixer settings (model/config.c). What
// the checksum covers depends on the settings version: 2 (what attnlab writes) the whole file, with
// slots 14-15 counted as zero, and it must be there; 1 (older files) the tensors; llm.c's files
// (no marker) have none, or an older attnlab's checksum of the tensors. The state file carries
// everything else a resumed run needs, the run's settings that must not change on resume, the
// checksum of its model file (so a pair is known to belong together) and a checksum of the whole
// file. Every size is checked against the file before any allocation; a file is read whole and
// checked before a parameter reaches the model.
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/check.h"
#include "common/checksum.h"
#include "model/gpt.h"
#include "model/tensors.h"

#define MODEL_MAGIC 20240326
#define MODEL_VERSION_FP32 3
#define MODEL_VERSION_BF16 5
#define MODEL_ZERO_SLOTS 8           // slots 8-13: llm.c leaves them zero, and so does attnlab
#define MODEL_CHECKSUM_SLOT 14
#define WHOLE_FILE_VERSION 2         // the attnlab settings version whose checksum covers the whole file
#define HEADER_BYTES (256 * (long)sizeof(int))

// The start of a whole-file checksum: the header, its two checksum slots counted as zero.
static uint64_t header_checksum(const int* header, int checksum_slot) {
    int h[256];
    memcpy(h, header, sizeof(h));
    h[checksum_slot] = h[checksum_slot + 1] = 0;
    return checksum_update(CHECKSUM_START, h, sizeof(h));
}

// What a file's checksum covers: the payload, from *start (the header's part, or CHECKSUM_START),
// and the value it must reach, *expected (0: the file has no checksum, llm.c's).
typedef struct {
    uint64_t start, expected;
} FileChecksum;

// The model file's checksum rule (see the top), or what is wrong with its slots (NULL: nothing).
static const char* model_checksum(const int* header, FileChecksum* c) {
    c->expected = checksum_from_slots(&header[MODEL_CHECKSUM_SLOT]);
    c->start = CHECKSUM_START;
    if (gpt_config_header_version(header) < WHOLE_FILE_VERSION) return NULL;
    c->start = header_checksum(header, MODEL_CHECKSUM_SLOT);
    return c->expected ? NULL : "its checksum (slots 14-15) is zero, but attnlab's settings version 2 requires one";
}

static void read_header(int* header, FILE* f, const char* path, long size) {
    if (size < HEADER_BYTES) fail("%s: not a model checkpoint (%ld bytes, shorter than the header)", path, size);
    fread_check(header, sizeof(int), 256, f, path);
    if (header[0] != MODEL_MAGIC)
        fail("%s: not a model checkpoint (magic %d, expected %d)", path, header[0], MODEL_MAGIC);
    if (header[1] != MODEL_VERSION_FP32 && header[1] != MODEL_VERSION_BF16)
        fail("%s: checkpoint version %d is not supported (3 = fp32, 5 = bf16)", path, header[1]);
    for (int i = MODEL_ZERO_SLOTS; i < MODEL_CHECKSUM_SLOT; i++)
        if (header[i] != 0)
            fail("%s: header slot %d holds %d; slots 8-13 must be zero: the file is corrupt", path, i, header[i]);
}

// The payload (n values of bytes_per bytes) into host floats, checked against the file's checksum.
static void read_parameters(float* host, size_t n, int bytes_per, FileChecksum sum, FILE* f, const char* path) {
    void* raw = bytes_per == 4 ? (void*)host : malloc_check(n * sizeof(uint16_t));
    fread_check(raw, bytes_per, n, f, path);
    if (sum.expected && checksum_update(sum.start, raw, n * bytes_per) != sum.expected)
        fail("%s: the file does not match its checksum: it is corrupt", path);
    if (bytes_per == 2) {
        const uint16_t* bf16 = raw;
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)bf16[i] << 16;
            memcpy(&host[i], &bits, sizeof(float));
        }
        free(raw);
    }
}

// Fails naming the first parameter tensor of host (the model's layout) with a NaN or an infinity.
static void check_finite(const GPT* model, const float* host, const char* what) {
    for (int i = 0; i < gpt_num_param_tensors(); i++) {
        ParamRange r = gpt_param_range(model, i);
        for (size_t j = 0; j < r.numel; j++)
            if (!isfinite(host[r.offset + j]))
                fail("%s: parameter tensor %s holds NaN or infinite values", what, r.name);
    }
}

uint64_t gpt_load_checkpoint(GPT* model, const char* path, const Kernels* k) {
    FILE* f = fopen_check(path, "rb");
    long size = file_size(f);
    int header[256];
    read_header(header, f, path, size);
    GPTConfig c = gpt_config_read_header(header, path);
    FileChecksum sum;
    const char* problem = model_checksum(header, &sum);
    if (problem) fail("%s: %s: the file is corrupt", path, problem);
    size_t n = gpt_num_parameters(&c), bytes_per = header[1] == MODEL_VERSION_FP32 ? 4 : 2;
    if ((size_t)(size - HEADER_BYTES) != n * bytes_per)   // before allocating anything for the model
        fail("%s: checkpoint is truncated or corrupt (%ld bytes, expected %zu for L=%d C=%d Vp=%d maxT=%d and its "
             "mixer)", path, size, (size_t)HEADER_BYTES + n * bytes_per, c.num_layers, c.channels,
             c.padded_vocab_size, c.max_seq_len);
    float* host = malloc_check(n * sizeof(float));
    read_parameters(host, n, (int)bytes_per, sum, f, path);
    fclose(f);
    gpt_build(model, &c, k);
    check_finite(model, host, path);
    gpt_set_parameters(model, host);
    free(host);
    return sum.expected;
}

GPTConfig gpt_checkpoint_config(const char* path) {
    FILE* f = fopen_check(path, "rb");
    int header[256];
    read_header(header, f, path, file_size(f));
    fclose(f);
    return gpt_config_read_header(header, path);
}

uint64_t gpt_save_checkpoint(const GPT* model, const char* path) {
    int header[256] = {0};
    header[0] = MODEL_MAGIC;
    header[1] = MODEL_VERSION_FP32;
    gpt_config_write_header(header, &model->config);   // settings version 2: a whole-file checksum
    size_t n = model->num_parameters;
    float* host = malloc_check(n * sizeof(float));
    gpt_get_parameters(model, host);
    check_finite(model, host, path);   // a diverged model is not written over a good checkpoint
    uint64_t checksum = checksum_update(header_checksum(header, MODEL_CHECKSUM_SLOT), host, n * sizeof(float));
    checksum_to_slots(&header[MODEL_CHECKSUM_SLOT], checksum);
    FILE* f = atomic_open(path);
    fwrite_check(header, sizeof(int), 256, f, path);
    fwrite_check(host, sizeof(float), n, f, path);
    atomic_commit(f, path);
    free(host);
    return checksum;
}

// ----------------------------------------------------------------------------
// training state

#define STATE_MAGIC 20240527
#define STATE_VERSION 3
// header slots: the TrainState fields, the parameter count and the checksum of the whole file (its own
// slots counted as zero); every slot after S_RANKS is zero
enum { S_STEP = 2, S_EPOCH, S_SHARD, S_SAMPLE, S_RNG, S_PARAMS = 8, S_B = 10, S_T, S_TOTAL_BATCH, S_SEED,
       S_MODEL_CHECKSUM = 14, S_DATA_CHECKSUM = 16, S_FILE_CHECKSUM = 18, S_RANKS = 20, S_UNUSED };

void gpt_save_state(const GPT* model, const TrainState* s, const float* m, const float* v, const char* path) {
    if (!m) fail("%s: no optimizer state to save before the first update", path);
    int header[256] = {0};
    header[0] = STATE_MAGIC;
    header[1] = STATE_VERSION;
    header[S_STEP] = s->step;
    header[S_EPOCH] = s->epoch;
    header[S_SHARD] = s->shard_pos;
    header[S_SAMPLE] = s->sample_pos;
    checksum_to_slots(&header[S_RNG], s->rng_state);
    size_t n = model->num_parameters;
    checksum_to_slots(&header[S_PARAMS], (uint64_t)n);
    header[S_B] = s->B, header[S_T] = s->T, header[S_TOTAL_BATCH] = s->total_batch, header[S_SEED] = s->seed;
    header[S_RANKS] = s->ranks;
    checksum_to_slots(&header[S_MODEL_CHECKSUM], s->model_checksum);
    checksum_to_slots(&header[S_DATA_CHECKSUM], s->data_checksum);
    float* moments = malloc_check(2 * n * sizeof(float));
    model->k->download(moments, m, n * sizeof(float));
    model->k->download(moments + n, v, n * sizeof(float));
    uint64_t checksum = checksum_update(header_checksum(header, S_FILE_CHECKSUM), moments, 2 * n * sizeof(float));
    checksum_to_slots(&header[S_FILE_CHECKSUM], checksum);
    FILE* f = atomic_open(path);
    fwrite_check(header, sizeof(int), 256, f, path);
    fwrite_check(moments, sizeof(float), 2 * n, f, path);
    atomic_commit(f, path);
    free(moments);
}

static FileChecksum state_checksum(const int* header) {
    return (FileChecksum){header_checksum(header, S_FILE_CHECKSUM), checksum_from_slots(&header[S_FILE_CHECKSUM])};
}

// What is wrong with the values of a state header whose checksum holds (a bug's file, say), or NULL.
static const char* bad_state_values(const int* header) {
    if (header[S_STEP] < 0 || header[S_EPOCH] < 0 || header[S_SHARD] < 0 || header[S_SAMPLE] < 0)
        return "a negative step or loader position";
    if (header[S_B] < 1 || header[S_T] < 1 || header[S_TOTAL_BATCH] < 1 || header[S_SEED] < 0 || header[S_RANKS] < 1)
        return "a batch size, sequence length, total batch or rank count below 1, or a negative seed";
    for (int i = S_UNUSED; i < 256; i++)
        if (header[i] != 0) return "a value in a slot this version leaves zero";
    return NULL;
}

// The header of a state file (f at its start, size bytes), checked: magic, version, the size the
// parameter count implies and the values; the checksum is the caller's.
static void read_state_header(int* header, FILE* f, const char* path, long size) {
    if (size < HEADER_BYTES) fail("%s: not a training state file (shorter than its header)", path);
    fread_check(header, sizeof(int), 256, f, path);
    if (header[0] != STATE_MAGIC)
        fail("%s: not a training state file (magic %d, expected %d)", path, header[0], STATE_MAGIC);
    if (header[1] == 2)
        fail("%s: training state version 2, written by an older attnlab whose header had no checksum; resume with "
             "that build, or start a new run from its model file (-e)", path);
    if (header[1] != STATE_VERSION)
        fail("%s: training state version %d is not supported (expected %d); resume is not possible", path,
             header[1], STATE_VERSION);
    uint64_t n = checksum_from_slots(&header[S_PARAMS]);
    if (n > (uint64_t)size || (size_t)(size - HEADER_BYTES) != 2 * n * sizeof(float))
        fail("%s: training state is truncated or corrupt (%ld bytes)", path, size);
}

static void check_state_values(const int* header, const char* path) {
    const char* problem = bad_state_values(header);
    if (problem) fail("%s: the training state holds %s: the file is corrupt", path, problem);
}

static TrainState state_from_header(const int* header) {
    return (TrainState){.step = header[S_STEP], .epoch = header[S_EPOCH], .shard_pos = header[S_SHARD],
                        .sample_pos = header[S_SAMPLE], .rng_state = checksum_from_slots(&header[S_RNG]),
                        .B = header[S_B], .T = header[S_T], .total_batch = header[S_TOTAL_BATCH],
                        .seed = header[S_SEED], .ranks = header[S_RANKS],
                        .model_checksum = checksum_from_slots(&header[S_MODEL_CHECKSUM]),
                        .data_checksum = checksum_from_slots(&header[S_DATA_CHECKSUM])};
}

// The checksum of the rest of f (from its position) continued from h, read in blocks.
static uint64_t checksum_rest(FILE* f, uint64_t h) {
    static const size_t CHUNK = 1 << 20;   // a multiple of 8, as checksum_update needs
    char* buf = malloc_check(CHUNK);
    for (size_t got; (got = fread(buf, 1, CHUNK, f)) > 0;) h = checksum_update(h, buf, got);
    free(buf);
    return h;
}

TrainState gpt_read_state(const char* path) {
    FILE* f = fopen_check(path, "rb");
    int header[256];
    read_state_header(header, f, path, file_size(f));
    FileChecksum sum = state_checksum(header);
    uint64_t got = checksum_rest(f, sum.start);
    if (ferror(f)) fail("%s: read failed", path);
    fclose(f);
    if (got != sum.expected) fail("%s: the training state does not match its checksum: the file is corrupt", path);
    check_state_values(header, path);
    return state_from_header(header);
}

void gpt_load_state(GPT* model, TrainState* s, const char* path) {
    FILE* f = fopen_check(path, "rb");
    int header[256];
    read_state_header(header, f, path, file_size(f));
    uint64_t n = checksum_from_slots(&header[S_PARAMS]);
    if (n != model->num_parameters)
        fail("%s: state is for a model of %llu parameters, this one has %zu", path, (unsigned long long)n,
             model->num_parameters);
    float* moments = malloc_check(2 * n * sizeof(float));
    fread_check(moments, sizeof(float), 2 * n, f, path);
    fclose(f);
    FileChecksum sum = state_checksum(header);
    if (checksum_update(sum.start, moments, 2 * n * sizeof(float)) != sum.expected)
        fail("%s: the training state does not match its checksum: the file is corrupt", path);
    check_state_values(header, path);
    *s = state_from_header(header);
    // the moments of this model's AdamW: all of them, or its ZeRO-1 shard
    const Kernels* k = model->k;
    size_t lo = model->opt_lo, bytes = (model->opt_hi - lo) * sizeof(float);
    if (!model->m_memory) {
        model->m_memory = k->alloc(bytes);
        model->v_memory = k->alloc(bytes);
    }
    k->upload(model->m_memory, moments + lo, bytes);
    k->upload(model->v_memory, moments + n + lo, bytes);
    free(moments);
}

// ----------------------------------------------------------------------------
// the newest complete checkpoint of a run directory

// check_file's checks of the open file f.
static const char* check_open_file(FILE* f, int magic, int* header) {
    if (fread(header, sizeof(int), 256, f) != 256 || header[0] != magic) return "not a complete file";
    // a state file of another version is complete, as far as this goes: reading it says why it cannot resume
    if (magic == STATE_MAGIC && header[1] != STATE_VERSION) return NULL;
    FileChecksum sum = {0, 0};
    const char* problem = NULL;
    if (magic == MODEL_MAGIC) problem = model_checksum(header, &sum);
    else sum = state_checksum(header);
    if (problem) return problem;
    if (!sum.expected) return "no checksum";
    if (checksum_rest(f, sum.start) != sum.expected) return "checksum mismatch (torn or corrupt)";
    return magic == STATE_MAGIC ? bad_state_values(header) : NULL;
}

// Checks a file's header, that it has a checksum, and the checksum, without failing: NULL when they
// agree, else what is wrong. header: the file's 256 slots on success.
static const char* check_file(const char* path, int magic, int* header) {
    struct stat st;   // stat first: opening a FIFO would block
    if (stat(path, &st) != 0) return "missing";
    if (!S_ISREG(st.st_mode)) return "not a regular file";
    FILE* f = fopen(path, "rb");
    if (!f) return "missing";
    const char* problem = check_open_file(f, magic, header);
    fclose(f);
    return problem;
}

// Why the checkpoint pair of `step` in dir cannot be resumed from, or NULL.
static const char* check_pair(const char* dir, int step) {
    char model_path[4096], state_path[4096];
    int model_header[256], state_header[256];
    snprintf(model_path, sizeof(model_path), "%s/model_%08d.bin", dir, step);
    snprintf(state_path, sizeof(state_path), "%s/state_%08d.bin", dir, step);
    const char* problem = check_file(model_path, MODEL_MAGIC, model_header);
    if (problem) return problem;
    problem = check_file(state_path, STATE_MAGIC, state_header);
    if (problem) return problem;
    if (checksum_from_slots(&state_header[S_MODEL_CHECKSUM]) != checksum_from_slots(&model_header[MODEL_CHECKSUM_SLOT]))
        return "its model and state files are not from the same step";
    return NULL;
}

static int descending(const void* a, const void* b) { return *(const int*)b - *(const int*)a; }

// The steps of the state files in dir, newest first (*n of them; NULL when dir cannot be read).
static int* checkpoint_steps(const char* dir, int* n) {
    *n = 0;
    DIR* d = opendir(dir);
    if (!d) return NULL;
    int *steps = NULL, cap = 0;
    for (struct dirent* e; (e = readdir(d));) {
        int step, end = 0;   // exactly state_XXXXXXXX.bin: not the .tmp of an interrupted write
        if (sscanf(e->d_name, "state_%8d.bin%n", &step, &end) != 1 || e->d_name[end] != '\0' || step < 0) continue;
        if (*n == cap) steps = realloc(steps, (size_t)(cap = 2 * cap + 16) * sizeof(int));
        if (!steps) fail("%s: out of memory listing checkpoints", dir);
        steps[(*n)++] = step;
    }
    closedir(d);
    if (steps) qsort(steps, *n, sizeof(int), descending);
    return steps;
}

int gpt_latest_checkpoint(const char* dir) {
    int n, found = -1, *steps = checkpoint_steps(dir, &n);
    for (int i = 0; i < n && found < 0; i++) {
        const char* problem = check_pair(dir, steps[i]);
        if (problem) fprintf(stderr, "note: skipping the checkpoint of step %d in %s: %s\n", steps[i], dir, problem);
        else found = steps[i];
    }
    free(steps);
    return found;
}

void gpt_prune_checkpoints(const char* dir, int keep) {
    int n, *steps = checkpoint_steps(dir, &n);
    for (int i = keep; i < n; i++) {
        char path[4096];   // the state first: a pair without it is never picked for a resume
        snprintf(path, sizeof(path), "%s/state_%08d.bin", dir, steps[i]);
        if (remove(path) != 0) fail("%s: cannot delete an old checkpoint: %s", path, strerror(errno));
        snprintf(path, sizeof(path), "%s/model_%08d.bin", dir, steps[i]);
        if (remove(path) != 0 && errno != ENOENT)
            fail("%s: cannot delete an old checkpoint: %s", path, strerror(errno));
    }
    free(steps);
}

void gpt_remove_temporaries(const char* dir) {
    DIR* d = opendir(dir);
    if (!d) return;
    for (struct dirent* e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        int ours = !strncmp(e->d_name, "model_", 6) || !strncmp(e->d_name, "state_", 6) ||
                   !strncmp(e->d_name, "main.log", 8);
        if (ours && len > 4 && !strcmp(e->d_name + len - 4, ".tmp")) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            if (remove(path) == 0) fprintf(stderr, "note: removed %s, left by an interrupted write\n", path);
        }
    }
    closedir(d);
}
