// Tokenizer files (llm.c's format) and decoding.
// File: 256 int32 header (magic 20240328, version 2, vocab size, EOT id), then per token a uint8
// length and that many bytes.
#pragma once
#include <stdio.h>

#define TOKENIZER_MAGIC 20240328
#define TOKENIZER_VERSION 2

typedef struct {
    int vocab_size;
    int eot_token;
    unsigned char** token_bytes;   // vocab_size byte strings (not NUL-terminated)
    int* token_len;                // vocab_size lengths
} Tokenizer;

// Loads a tokenizer file; fails with one line naming the file on a bad magic, version or truncation.
void tokenizer_load(Tokenizer* t, const char* path);
// Writes token id's bytes to out (ids outside the vocabulary print as <id>).
void tokenizer_print(const Tokenizer* t, int id, FILE* out);
void tokenizer_free(Tokenizer* t);
