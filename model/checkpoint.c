// Model checkpoints in llm.c's format (docs/FORMATS.md): 256 int32 header (magic 20240326, version,
// maxT, V, L, H, C, Vp), then the 16 tensors in llm.c's order, fp32 (version 3) or bf16 (version 5).
// Slots 16.. of the header hold attnlab's mixer settings behind a marker (model/config.c); a plain
// GPT-2 leaves them zero, so files stay llm.c's bytes. After llm.c's 16 tensors come the mixer's
// extra tensors, in the registry's order (model/tensors.c; unused ones take no bytes).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "model/gpt.h"

#define MODEL_MAGIC 20240326
#define MODEL_VERSION_FP32 3
#define MODEL_VERSION_BF16 5

static void read_header(int* header, FILE* f, const char* path, long size) {
    if (size < 256 * (long)sizeof(int)) fail("%s: not a model checkpoint (%ld bytes, shorter than the header)", path, size);
    fread_check(header, sizeof(int), 256, f, path);
    if (header[0] != MODEL_MAGIC)
        fail("%s: not a model checkpoint (magic %d, expected %d)", path, header[0], MODEL_MAGIC);
    if (header[1] != MODEL_VERSION_FP32 && header[1] != MODEL_VERSION_BF16)
        fail("%s: checkpoint version %d is not supported (3 = fp32, 5 = bf16)", path, header[1]);
}

static void read_bf16(float* dst, size_t n, FILE* f, const char* path) {
    uint16_t* bf16 = malloc_check(n * sizeof(uint16_t));
    fread_check(bf16, sizeof(uint16_t), n, f, path);
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)bf16[i] << 16;
        memcpy(&dst[i], &bits, sizeof(float));
    }
    free(bf16);
}

void gpt_load_checkpoint(GPT* model, const char* path, const Kernels* k) {
    FILE* f = fopen_check(path, "rb");
    long size = file_size(f);
    int header[256];
    read_header(header, f, path, size);
    GPTConfig c = gpt_config_read_header(header, path);
    gpt_build(model, &c, k);
    size_t n = model->num_parameters, bytes_per = header[1] == MODEL_VERSION_FP32 ? 4 : 2;
    long expected = 256 * (long)sizeof(int) + (long)(n * bytes_per);
    if (size != expected)
        fail("%s: checkpoint is truncated or corrupt (%ld bytes, expected %ld for L=%d C=%d Vp=%d maxT=%d and its "
             "mixer)", path, size, expected, c.num_layers, c.channels, c.padded_vocab_size, c.max_seq_len);
    float* host = malloc_check(n * sizeof(float));
    if (bytes_per == 4) fread_check(host, sizeof(float), n, f, path);
    else read_bf16(host, n, f, path);
    fclose(f);
    gpt_set_parameters(model, host);
    free(host);
}

void gpt_save_checkpoint(const GPT* model, const char* path) {
    const GPTConfig* c = &model->config;
    int header[256] = {0};
    header[0] = MODEL_MAGIC;
    header[1] = MODEL_VERSION_FP32;
    gpt_config_write_header(header, c);
    size_t n = model->num_parameters;
    float* host = malloc_check(n * sizeof(float));
    gpt_get_parameters(model, host);
    FILE* f = atomic_open(path);
    fwrite_check(header, sizeof(int), 256, f, path);
    fwrite_check(host, sizeof(float), n, f, path);
    atomic_commit(f, path);
    free(host);
}

#define STATE_MAGIC 20240527
#define STATE_VERSION 1

void gpt_save_state(const GPT* model, const TrainState* s, const char* path) {
    if (!model->m_memory) fail("%s: no optimizer state to save before the first update", path);
    int header[256] = {0};
    header[0] = STATE_MAGIC;
    header[1] = STATE_VERSION;
    header[2] = s->step;
    header[3] = s->epoch;
    header[4] = s->shard_pos;
    header[5] = s->sample_pos;
    memcpy(&header[6], &s->rng_state, sizeof(uint64_t));
    uint64_t n = model->num_parameters;
    memcpy(&header[8], &n, sizeof(uint64_t));
    float* host = malloc_check(n * sizeof(float));
    FILE* f = atomic_open(path);
    fwrite_check(header, sizeof(int), 256, f, path);
    model->k->download(host, model->m_memory, n * sizeof(float));
    fwrite_check(host, sizeof(float), n, f, path);
    model->k->download(host, model->v_memory, n * sizeof(float));
    fwrite_check(host, sizeof(float), n, f, path);
    atomic_commit(f, path);
    free(host);
}

void gpt_load_state(GPT* model, TrainState* s, const char* path) {
    FILE* f = fopen_check(path, "rb");
    long size = file_size(f);
    int header[256];
    if (size < (long)sizeof(header)) fail("%s: not a training state file (shorter than its header)", path);
    fread_check(header, sizeof(int), 256, f, path);
    if (header[0] != STATE_MAGIC) fail("%s: not a training state file (magic %d, expected %d)", path, header[0], STATE_MAGIC);
    if (header[1] != STATE_VERSION) fail("%s: training state version %d is not supported (expected %d)", path, header[1], STATE_VERSION);
    uint64_t n;
    memcpy(&n, &header[8], sizeof(uint64_t));
    if (n != model->num_parameters)
        fail("%s: state is for a model of %llu parameters, this one has %zu", path, (unsigned long long)n, model->num_parameters);
    if (size != (long)sizeof(header) + 2L * (long)(n * sizeof(float)))
        fail("%s: training state is truncated (%ld bytes)", path, size);
    s->step = header[2];
    s->epoch = header[3];
    s->shard_pos = header[4];
    s->sample_pos = header[5];
    memcpy(&s->rng_state, &header[6], sizeof(uint64_t));
    const Kernels* k = model->k;
    size_t bytes = n * sizeof(float);
    if (!model->m_memory) {
        model->m_memory = k->alloc(bytes);
        model->v_memory = k->alloc(bytes);
    }
    float* host = malloc_check(bytes);
    fread_check(host, sizeof(float), n, f, path);
    k->upload(model->m_memory, host, bytes);
    fread_check(host, sizeof(float), n, f, path);
    k->upload(model->v_memory, host, bytes);
    fclose(f);
    free(host);
}
