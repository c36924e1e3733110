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
// Validates a shard's header (slots 3-255 zero) and exact size; returns its token count. Fails naming
// the file.
size_t shard_check(const char* path);

// How the loader cuts sequences from the shards. The values are the model's `bos` key (model/config.c:
// 0, 1, window), so a checkpoint's slot names its layout.
typedef enum { LAYOUT_WINDOWS = 0, LAYOUT_DOCUMENTS = 1, LAYOUT_BOS_WINDOWS = 2 } DataLayout;

// Reads batches of B x T tokens (+1 for the targets) from a glob of shards, in one of three layouts:
// - LAYOUT_WINDOWS, llm.c's fixed windows: sample s of a shard starts at token s * R*B*T + rank*B*T
//   (R ranks), so ranks never overlap; a shard shorter than one batch of all ranks is an error;
// - LAYOUT_DOCUMENTS (bos=1), as modded-nanogpt: every sequence is the T+1 tokens starting at an EOT
//   (bos_token; input 0 is the EOT, input 1 the document's first token), running into the next
//   documents when the document is shorter, cut at T when longer. A shard's usable starts (EOT
//   positions p with p + T + 1 <= its token count) are found by one scan when it is opened; a shard
//   with fewer than R*B starts gives no batch and is skipped;
// - LAYOUT_BOS_WINDOWS (bos=window), usual pretraining: every sequence is the BOS (bos_token) and
//   then T-1 tokens from anywhere in the stream, inputs [BOS, x_o .. x_o+T-2], targets
//   [x_o .. x_o+T-1]. Window w of a shard starts at o = shift + w (T-1), with the epoch's seeded
//   shift in [0, T-1), so that over epochs windows start anywhere; a shard of n tokens has
//   (n - T + 1) / (T - 1) windows in every epoch (room for any shift), and one with fewer than R*B
//   is an error. The stream's own EOT tokens inside a window stay (documents run into each other).
// With documents and BOS windows, batch s of rank r takes entries (s*R + r)*B .. +B-1 of the shard's
// list of starts (shuffled, seeded, when shuffle is on), so R ranks together read what one rank
// with R*B reads. Shards in order (or shuffled, seeded); every token id of every shard is checked
// against vocab_size when the loader opens, and each batch's again when it is read.
typedef struct {
    char* pattern;              // the glob, for messages
    int B, T, rank, num_ranks, vocab_size, shuffle;
    int layout;                 // DataLayout
    int bos_token;              // documents: the EOT id every sequence starts at; BOS windows: the BOS put first
    glob_t shards;
    int num_shards;
    size_t num_tokens;          // over all shards
    int num_batches;            // batches of one rank in one epoch (each shard rounds down)
    size_t num_sequences;       // sequences of T tokens one epoch reads over all ranks (num_batches * B * R)
    size_t distinct_tokens;     // token positions of the shards the epoch's inputs read (docs/SINKS.md)
    int* shard_counts;          // per shard (glob order): its samples, usable document starts or BOS windows
    // position; with the RNG this is all a resumed run needs
    int epoch, shard_pos, sample_pos;
    Rng rng;                    // drives shuffling and the BOS windows' shift; reseeded from seed + epoch at each epoch
    uint64_t seed;
    int window_shift;           // BOS windows: this epoch's offset of window 0, in [0, T-1)
    int* shard_order;           // num_shards
    int* sample_order;          // order of the current shard's samples, document starts or windows
    int* doc_starts;            // documents: token positions of the current shard's usable document starts
    int shard_num_samples;      // batches of one rank in the current shard
    FILE* file;
    uint16_t* buffer;           // B*T+1
    int* inputs;                // (B,T)
    int* targets;               // (B,T)
} DataLoader;

// Fails with one line naming the pattern on B < 1, T < 1 (T < 2 with BOS windows), a rank outside
// 0..num_ranks-1, an unknown layout or a BOS outside the vocabulary, before reading anything.
// bos_token is not used with LAYOUT_WINDOWS.
void dataloader_init(DataLoader* dl, const char* pattern, int B, int T, int rank, int num_ranks,
                     int shuffle, uint64_t seed, int vocab_size, int layout, int bos_token);
// "fixed windows (bos=0)", "document starts (bos=1)" or "BOS windows (bos=window)", for messages.
const char* dataloader_layout_name(int layout);
// Tokens one epoch gives the model, for a default step count of epoch_tokens / total batch: the
// shards' token count with fixed windows (as llm.c counts), num_sequences * T otherwise.
size_t dataloader_epoch_tokens(const DataLoader* dl);
// Loads the next batch into dl->inputs / dl->targets, wrapping around to a new epoch at the end.
void dataloader_next_batch(DataLoader* dl);
void dataloader_reset(DataLoader* dl);
// Jump to a saved position (epoch, shard_pos, sample_pos), e.g. when resuming. A position these
// shards (with this B, T and rank count) do not have fails with one line naming the pattern.
void dataloader_seek(DataLoader* dl, int epoch, int shard_pos, int sample_pos);
void dataloader_free(DataLoader* dl);

// The sink analysis's probe sets (model/analysis.c; docs/SINKS.md): spans of len tokens from the shards
// of pattern in glob order, unshuffled, written to tokens_out (n, len); token ids are checked against
// vocab_size. Each returns how many spans it found (fewer than n when the shards run out: the caller
// decides whether that is an error); len < 1 or n < 0 fails with one line.
// Document starts: spans that begin at an EOT token (eot) and hold no other EOT; a start whose span
// has one is passed over and counted in *skipped (as the sink paper's probe set has no such window).
size_t shard_document_starts(const char* pattern, int eot, int vocab_size, int len, int n, int* tokens_out,
                             size_t* skipped);
// Line starts: spans that begin right after a line-ending token (line_end: vocab_size flags) and do not
// overlap (each starts at or after the end of the one before); EOT tokens inside a span stay.
size_t shard_line_starts(const char* pattern, const unsigned char* line_end, int vocab_size, int len, int n,
                         int* tokens_out);

// The first n tokens of the shards of pattern as one stream, in glob order (infer -eval-stream), into
// tokens_out; returns how many (fewer when the shards run out). Token ids are checked against vocab_size.
size_t shard_read_stream(const char* pattern, int vocab_size, size_t n, int* tokens_out);
