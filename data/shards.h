// Token shards (llm.c's format) and the data loader.
// A shard: 256 int32 header (magic 20240520, version 1, token count), then that many uint16 tokens.
#pragma once
#include <glob.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/rng.h"

#define SHARD_MAGIC 20240520
#define SHARD_VERSION 1
#define SHARD_HEADER_INTS 256

// Writes tokens (n) as one shard, atomically (temporary file, then rename).
void shard_write(const char* path, const uint16_t* tokens, size_t n);
// Validates a shard's header and exact size; returns its token count. Fails naming the file.
size_t shard_check(const char* path);

// Reads batches of B x T tokens (+1 for the targets) from a glob of shards, llm.c's semantics:
// sample s of a shard starts at token s * R*B*T + rank*B*T (R ranks), so ranks never overlap;
// shards in order (or shuffled, seeded); every token id is checked against vocab_size.
typedef struct {
    int B, T, rank, num_ranks, vocab_size, shuffle;
    glob_t shards;
    int num_shards;
    size_t num_tokens;          // over all shards
    int num_batches;            // batches in one epoch (each shard rounds down)
    // position; with the RNG this is all a resumed run needs
    int epoch, shard_pos, sample_pos;
    Rng rng;                    // drives shuffling; reseeded from seed + epoch at each epoch
    uint64_t seed;
    int* shard_order;           // num_shards
    int* sample_order;          // samples of the current shard
    int shard_num_samples;
    FILE* file;
    uint16_t* buffer;           // B*T+1
    int* inputs;                // (B,T)
    int* targets;               // (B,T)
} DataLoader;

void dataloader_init(DataLoader* dl, const char* pattern, int B, int T, int rank, int num_ranks,
                     int shuffle, uint64_t seed, int vocab_size);
// Loads the next batch into dl->inputs / dl->targets, wrapping around to a new epoch at the end.
void dataloader_next_batch(DataLoader* dl);
void dataloader_reset(DataLoader* dl);
// Jump to a saved position (epoch, shard_pos, sample_pos), e.g. when resuming.
void dataloader_seek(DataLoader* dl, int epoch, int shard_pos, int sample_pos);
void dataloader_free(DataLoader* dl);
