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

// Reads batches of B x T tokens (+1 for the targets) from a glob of shards, in one of two modes:
// - fixed windows (bos_token = -1), llm.c's semantics: sample s of a shard starts at token
//   s * R*B*T + rank*B*T (R ranks), so ranks never overlap;
// - BOS-aligned (bos_token = the EOT id that starts documents), as modded-nanogpt: every sequence is
//   the T+1 tokens starting at an EOT (input 0 is the EOT, input 1 the document's first token),
//   running into the next documents when the document is shorter, cut at T when longer. A shard's
//   usable starts (EOT positions p with p + T + 1 <= its token count) are found by one scan when it
//   is opened; batch s of rank r takes entries (s*R + r)*B .. +B-1 of that list (shuffled, seeded,
//   when shuffle is on), so R ranks together read what one rank with R*B reads. A shard with fewer
//   than R*B starts gives no batch and is skipped.
// Shards in order (or shuffled, seeded); every token id is checked against vocab_size.
typedef struct {
    char* pattern;              // the glob, for messages
    int B, T, rank, num_ranks, vocab_size, shuffle;
    int bos_token;              // -1: fixed windows; else the EOT id every sequence starts at
    glob_t shards;
    int num_shards;
    size_t num_tokens;          // over all shards
    int num_batches;            // batches of one rank in one epoch (each shard rounds down)
    size_t num_sequences;       // sequences of T tokens one epoch reads over all ranks (num_batches * B * R)
    int* shard_counts;          // per shard (glob order): its samples, or its usable document starts (BOS)
    // position; with the RNG this is all a resumed run needs
    int epoch, shard_pos, sample_pos;
    Rng rng;                    // drives shuffling; reseeded from seed + epoch at each epoch
    uint64_t seed;
    int* shard_order;           // num_shards
    int* sample_order;          // order of the current shard's samples, or of its document starts (BOS)
    int* doc_starts;            // BOS: token positions of the current shard's usable document starts
    int shard_num_samples;      // batches of one rank in the current shard
    FILE* file;
    uint16_t* buffer;           // B*T+1
    int* inputs;                // (B,T)
    int* targets;               // (B,T)
} DataLoader;

// Fails with one line naming the pattern on B < 1, T < 1 or a rank outside 0..num_ranks-1, before
// reading anything.
void dataloader_init(DataLoader* dl, const char* pattern, int B, int T, int rank, int num_ranks,
                     int shuffle, uint64_t seed, int vocab_size, int bos_token);
// Tokens one epoch gives the model, for a default step count of epoch_tokens / total batch: the
// shards' token count with fixed windows (as llm.c counts), num_sequences * T when BOS-aligned.
size_t dataloader_epoch_tokens(const DataLoader* dl);
// Loads the next batch into dl->inputs / dl->targets, wrapping around to a new epoch at the end.
void dataloader_next_batch(DataLoader* dl);
void dataloader_reset(DataLoader* dl);
// Jump to a saved position (epoch, shard_pos, sample_pos), e.g. when resuming. A position these
// shards (with this B, T and rank count) do not have fails with one line naming the pattern.
void dataloader_seek(DataLoader* dl, int epoch, int shard_pos, int sample_pos);
void dataloader_free(DataLoader* dl);

// For evaluation at document starts: the first n sequences of T tokens that begin at an EOT token
// (eot) with T tokens left in their shard, from the shards of pattern in glob order, unshuffled,
// into tokens_out (n, T). Token ids are checked against vocab_size. Returns how many it found
// (fewer than n when the shards run out: the caller decides whether that is an error). T < 1 or
// n < 0 fails with one line.
size_t shard_document_starts(const char* pattern, int eot, int vocab_size, int T, int n, int* tokens_out);
