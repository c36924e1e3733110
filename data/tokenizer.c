// Tokenizer files and decoding (see tokenizer.h).
#include "data/tokenizer.h"

#include <stdlib.h>

#include "common/check.h"

void tokenizer_load(Tokenizer* t, const char* path) {
    FILE* f = fopen_check(path, "rb");
    int header[256];
    if (file_size(f) < (long)sizeof(header)) fail("%s: not a tokenizer file (shorter than its header)", path);
    fread_check(header, sizeof(int), 256, f, path);
    if (header[0] != TOKENIZER_MAGIC)
        fail("%s: not a tokenizer file (magic %d, expected %d)", path, header[0], TOKENIZER_MAGIC);
    if (header[1] != TOKENIZER_VERSION)
        fail("%s: tokenizer version %d is not supported (expected %d)", path, header[1], TOKENIZER_VERSION);
    t->vocab_size = header[2];
    t->eot_token = header[3];
    if (t->vocab_size <= 0 || t->eot_token < 0 || t->eot_token >= t->vocab_size)
        fail("%s: bad tokenizer header (vocab size %d, EOT id %d)", path, t->vocab_size, t->eot_token);
    t->token_bytes = malloc_check(sizeof(unsigned char*) * t->vocab_size);
    t->token_len = malloc_check(sizeof(int) * t->vocab_size);
    for (int i = 0; i < t->vocab_size; i++) {
        unsigned char len;
        fread_check(&len, 1, 1, f, path);
        t->token_len[i] = len;
        t->token_bytes[i] = malloc_check(len + 1);
        fread_check(t->token_bytes[i], 1, len, f, path);
    }
    fclose(f);
}

void tokenizer_print(const Tokenizer* t, int id, FILE* out) {
    if (id < 0 || id >= t->vocab_size) { fprintf(out, "<%d>", id); return; }
    fwrite(t->token_bytes[id], 1, t->token_len[id], out);
}

void tokenizer_free(Tokenizer* t) {
    for (int i = 0; i < t->vocab_size; i++) free(t->token_bytes[i]);
    free(t->token_bytes);
    free(t->token_len);
}
