// Token shards and the data loader (llm.c's dataloader semantics, see shards.h).
#include "data/shards.h"

#include <stdlib.h>
#include <string.h>

#include "common/check.h"

void shard_write(const char* path, const uint16_t* tokens, size_t n) {
    if (n > INT32_MAX) fail("%s: %zu tokens do not fit one shard (at most %d)", path, n, INT32_MAX);
    int header[SHARD_HEADER_INTS] = {0};
    header[0] = SHARD_MAGIC;
    header[1] = SHARD_VERSION;
    header[2] = (int)n;
    FILE* f = atomic_open(path);
    fwrite_check(header, sizeof(int), SHARD_HEADER_INTS, f, path);
    fwrite_check(tokens, sizeof(uint16_t), n, f, path);
    atomic_commit(f, path);
}

size_t shard_check(const char* path) {
    FILE* f = fopen_check(path, "rb");
    int header[SHARD_HEADER_INTS];
    long size = file_size(f);
    if (size < (long)sizeof(header))
        fail("%s: not a token shard (%ld bytes, shorter than the 1024-byte header)", path, size);
    fread_check(header, sizeof(int), SHARD_HEADER_INTS, f, path);
    fclose(f);
    if (header[0] != SHARD_MAGIC)
        fail("%s: not a token shard (magic %d, expected %d); was it written by ./prepare?",
             path, header[0], SHARD_MAGIC);
    if (header[1] != SHARD_VERSION)
        fail("%s: shard version %d is not supported (expected %d)", path, header[1], SHARD_VERSION);
    long expected = (long)sizeof(header) + 2L * header[2];
    if (header[2] < 0 || size != expected)
        fail("%s: shard is truncated or corrupt (header says %d tokens = %ld bytes, file has %ld)",
             path, header[2], expected, size);
    return (size_t)header[2];
}

static size_t batch_tokens(const DataLoader* dl) { return (size_t)dl->B * dl->T; }

static void open_shard(DataLoader* dl) {
    const char* path = dl->shards.gl_pathv[dl->shard_order[dl->shard_pos]];
    if (dl->file) fclose(dl->file);
    dl->file = fopen_check(path, "rb");
    size_t ntok = shard_check(path);
    size_t stride = batch_tokens(dl) * dl->num_ranks;
    dl->shard_num_samples = (int)((ntok - 1) / stride);
    free(dl->sample_order);
    dl->sample_order = malloc_check(sizeof(int) * (dl->shard_num_samples > 0 ? dl->shard_num_samples : 1));
    if (dl->shuffle) rng_permutation(&dl->rng, dl->sample_order, dl->shard_num_samples);
    else for (int i = 0; i < dl->shard_num_samples; i++) dl->sample_order[i] = i;
}

static void start_epoch(DataLoader* dl, int epoch) {
    dl->epoch = epoch;
    dl->shard_pos = 0;
    dl->sample_pos = 0;
    rng_seed(&dl->rng, dl->seed + (uint64_t)epoch);
    if (dl->shuffle) rng_permutation(&dl->rng, dl->shard_order, dl->num_shards);
    else for (int i = 0; i < dl->num_shards; i++) dl->shard_order[i] = i;
    open_shard(dl);
}

void dataloader_init(DataLoader* dl, const char* pattern, int B, int T, int rank, int num_ranks,
                     int shuffle, uint64_t seed, int vocab_size) {
    memset(dl, 0, sizeof(*dl));
    dl->B = B; dl->T = T; dl->rank = rank; dl->num_ranks = num_ranks;
    dl->shuffle = shuffle; dl->seed = seed; dl->vocab_size = vocab_size;
    int rc = glob(pattern, 0, NULL, &dl->shards);
    if (rc == GLOB_NOMATCH) fail("%s: no shard matches this pattern", pattern);
    if (rc != 0) fail("%s: glob failed (%d)", pattern, rc);
    dl->num_shards = (int)dl->shards.gl_pathc;
    size_t need = batch_tokens(dl) * num_ranks + 1;
    for (int i = 0; i < dl->num_shards; i++) {
        const char* path = dl->shards.gl_pathv[i];
        size_t ntok = shard_check(path);
        if (ntok < need)
            fail("%s: shard has %zu tokens, fewer than one batch needs (%d ranks x B=%d x T=%d + 1 = %zu); "
                 "use a smaller -b or -t", path, ntok, num_ranks, B, T, need);
        dl->num_tokens += ntok;
        dl->num_batches += (int)((ntok - 1) / (need - 1));
    }
    dl->shard_order = malloc_check(sizeof(int) * dl->num_shards);
    dl->buffer = malloc_check(sizeof(uint16_t) * (batch_tokens(dl) + 1));
    dl->inputs = malloc_check(sizeof(int) * batch_tokens(dl));
    dl->targets = malloc_check(sizeof(int) * batch_tokens(dl));
    start_epoch(dl, 0);
}

static void load_batch(DataLoader* dl) {
    const char* path = dl->shards.gl_pathv[dl->shard_order[dl->shard_pos]];
    size_t n = batch_tokens(dl);
    size_t sample = (size_t)dl->sample_order[dl->sample_pos];
    size_t token0 = sample * n * dl->num_ranks + (size_t)dl->rank * n;
    fseek(dl->file, (long)(SHARD_HEADER_INTS * sizeof(int) + token0 * sizeof(uint16_t)), SEEK_SET);
    fread_check(dl->buffer, sizeof(uint16_t), n + 1, dl->file, path);
    for (size_t i = 0; i <= n; i++) {
        if (dl->buffer[i] >= dl->vocab_size)
            fail("%s: token id %d at token %zu is outside the model's vocabulary (V=%d); "
                 "were the shards made with another tokenizer?", path, dl->buffer[i], token0 + i, dl->vocab_size);
    }
    for (size_t i = 0; i < n; i++) {
        dl->inputs[i] = dl->buffer[i];
        dl->targets[i] = dl->buffer[i + 1];
    }
}

void dataloader_next_batch(DataLoader* dl) {
    if (dl->sample_pos >= dl->shard_num_samples) {
        dl->shard_pos++;
        dl->sample_pos = 0;
        if (dl->shard_pos >= dl->num_shards) start_epoch(dl, dl->epoch + 1);
        else open_shard(dl);
    }
    load_batch(dl);
    dl->sample_pos++;
}

void dataloader_reset(DataLoader* dl) { start_epoch(dl, 0); }

void dataloader_seek(DataLoader* dl, int epoch, int shard_pos, int sample_pos) {
    start_epoch(dl, epoch);
    if (shard_pos < 0 || shard_pos >= dl->num_shards)
        fail("%s: saved loader position (shard %d) does not exist in %d shards; were the shards changed?",
             dl->shards.gl_pathv[0], shard_pos, dl->num_shards);
    for (int s = 0; s < shard_pos; s++) {   // replay the RNG so the sample order is the saved one
        dl->shard_pos = s + 1;
        open_shard(dl);
    }
    dl->sample_pos = sample_pos;
}

void dataloader_free(DataLoader* dl) {
    if (dl->file) fclose(dl->file);
    globfree(&dl->shards);
    free(dl->shard_order);
    free(dl->sample_order);
    free(dl->buffer);
    free(dl->inputs);
    free(dl->targets);
}
