// What the tokenizer's files share (data/tokenizer.c, bpe_encode.c, bpe_train.c, gpt2_import.c):
// the lookup tables behind Tokenizer.index and the steps every constructor takes.
#pragma once
#include "data/hashmap.h"
#include "data/tokenizer.h"

struct TokenIndex {
    int byte_token[256];   // token of each byte, -1 where the vocabulary has none
    int max_len;           // longest token (EOT excluded)
    BytesMap tokens;       // token bytes -> id (the lowest id when two tokens share bytes; no EOT)
    PairMap pairs;         // (a, b) -> id of the token bytes(a) + bytes(b), where that is a token
};

// Allocates the token table (every token empty), no merges, no index. An allocation failure names
// source (the file the vocabulary comes from).
void tokenizer_alloc(Tokenizer* t, int vocab_size, int eot_token, const char* source);
void tokenizer_set_token(Tokenizer* t, int id, const unsigned char* bytes, int len);
// Checks the merges against the token table (fails naming `source`), then builds t->index.
void tokenizer_finish(Tokenizer* t, const char* source);
