// Byte-level BPE tokenizer, GPT-2's definition: pre-tokenization with GPT-2's pattern
// (data/pretokenize.h), each piece's bytes mapped to the 256 byte tokens, then merged by rank, where
// a token's rank is its id (a lower id is a higher-priority merge), exactly as tiktoken encodes.
// An end-of-text token (EOT) separates documents; it is never produced by encoding text.
//
// File (llm.c's format, which llm.c reads): 256 int32 header (magic 20240328, version 2, vocab
// size, EOT id), then per token a uint8 length and that many bytes. attnlab's extension: header[4]
// = TOKENIZER_ATTNLAB_MARK, header[5] = number of merges M, and after the token table M pairs of
// int32 token ids in rank order; merge i joins its pair into token 256 + i. A file without the
// extension (llm.c's gpt2_tokenizer.bin) encodes the same, as ranks come from the ids.
// Vocabularies made here: ids 0..255 are the bytes, 256..256+M-1 the merges, EOT is the last id.
#pragma once
#include <stddef.h>
#include <stdio.h>

#define TOKENIZER_MAGIC 20240328
#define TOKENIZER_VERSION 2
#define TOKENIZER_ATTNLAB_MARK 0x424c5441     // "ATLB" in a little-endian int32
#define TOKENIZER_MAX_TOKEN_BYTES 255         // the file stores a token's length in a uint8
#define TOKENIZER_EOT_TEXT "<|endoftext|>"   // how EOT decodes

typedef struct TokenIndex TokenIndex;

typedef struct {
    int vocab_size;
    int eot_token;
    unsigned char** token_bytes;   // vocab_size byte strings (not NUL-terminated)
    int* token_len;                // vocab_size lengths
    int num_merges;                // merge i joins merges[2i], merges[2i+1] into token 256 + i;
    int* merges;                   //   0 and NULL for a file without attnlab's extension
    TokenIndex* index;             // lookup tables for encoding, built by every constructor below
} Tokenizer;

// Loads a tokenizer file; fails with one line naming the file on a bad magic, version, truncation
// or inconsistent merges.
void tokenizer_load(Tokenizer* t, const char* path);
// Writes t in the format above (atomically), with the merges extension.
void tokenizer_write(const Tokenizer* t, const char* path);
// The byte tokenizer: ids 0..255 are the bytes, 256 is EOT, no merges.
void tokenizer_init_bytes(Tokenizer* t);
// Imports GPT-2's encoder.json + vocab.bpe (ids and merges as OpenAI published them).
void tokenizer_import_gpt2(Tokenizer* t, const char* encoder_json_path, const char* vocab_bpe_path);

// A pre-token longer than this merges in parts of at most this many bytes (cut at UTF-8 character
// starts), so encoding needs bounded memory; tiktoken would merge such a piece (a megabyte without
// a space or a change of character class) whole. Shorter pieces encode exactly as tiktoken does.
#define TOKENIZER_MAX_PIECE_BYTES (1u << 20)

// Encodes len bytes of text (any bytes; invalid UTF-8 is fine) into token ids. Writes at most cap
// ids to out and returns how many the text has (never more than len). Uses OpenMP threads when
// the text is large. Fails if the vocabulary lacks a byte's token.
size_t tokenizer_encode(const Tokenizer* t, const unsigned char* text, size_t len, int* out, size_t cap);
// Decodes n ids into bytes: writes at most cap bytes to out and returns the full length. EOT
// decodes as TOKENIZER_EOT_TEXT (its stored bytes), an id outside the vocabulary as "<id>".
size_t tokenizer_decode(const Tokenizer* t, const int* ids, size_t n, unsigned char* out, size_t cap);
// Writes token id's bytes to out (ids outside the vocabulary print as <id>).
void tokenizer_print(const Tokenizer* t, int id, FILE* out);
// A flag per token id (vocab_size, malloc'ed): 1 where the token's text ends with a newline (the
// sink analysis's line starts follow such tokens; docs/SINKS.md), 0 elsewhere and for EOT.
unsigned char* tokenizer_line_ends(const Tokenizer* t);
void tokenizer_free(Tokenizer* t);

// Training. Count the pre-tokenized words of a corpus (text may come in chunks that end at a
// document end or a pretok_cut_before/after position), then merge the most frequent pair of
// tokens, repeatedly: ties go to the smallest pair (left id, then right id); pairs whose token
// would exceed TOKENIZER_MAX_TOKEN_BYTES never merge; a pair whose bytes already are a token
// merges into it without a new token. Stops at vocab_size tokens (256 + merges + EOT) or when no
// pair is left, whichever is first.
typedef struct BpeCounts BpeCounts;
BpeCounts* bpe_counts_new(void);
void bpe_counts_add(BpeCounts* c, const unsigned char* text, size_t len);
size_t bpe_counts_num_words(const BpeCounts* c);   // distinct words so far
void bpe_counts_free(BpeCounts* c);
void tokenizer_train(Tokenizer* t, const BpeCounts* c, int vocab_size);
// Both steps on one text.
void tokenizer_train_text(Tokenizer* t, const unsigned char* text, size_t len, int vocab_size);
