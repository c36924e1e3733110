// Fuzz target: a tokenizer file through tokenizer_load; one that loads must encode (when it has a
// token for every byte) and decode its own bytes back, and survive tokenizer_write and a second
// load unchanged. Every error must name the file.
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"
#include "test/fuzz/harness.h"

typedef struct {
    const char* path;
    const char* copy;            // where the round trip writes
    const uint8_t* text;         // the input's bytes, also encoded as text
    size_t len;
} Case;

static int encodes_every_byte(const Tokenizer* t) {
    for (int b = 0; b < 256; b++)
        if (t->index->byte_token[b] < 0) return 0;
    return 1;
}

static void check_round_trip(const Tokenizer* t, const uint8_t* text, size_t len) {
    int* ids = malloc(sizeof(int) * (len ? len : 1));
    unsigned char* back = malloc(len ? len : 1);
    size_t n = tokenizer_encode(t, text, len, ids, len);
    if (tokenizer_decode(t, ids, n, back, len) != len || memcmp(back, text, len) != 0)
        fuzz_finding("tokenizer", "decode(encode(text)) is not the text");
    free(ids);
    free(back);
}

static void check_same(const Tokenizer* a, const Tokenizer* b) {
    if (a->vocab_size != b->vocab_size || a->eot_token != b->eot_token || a->num_merges != b->num_merges)
        fuzz_finding("tokenizer", "a written tokenizer reads back with another header");
    for (int i = 0; i < a->vocab_size; i++)
        if (a->token_len[i] != b->token_len[i] || memcmp(a->token_bytes[i], b->token_bytes[i], a->token_len[i]))
            fuzz_finding("tokenizer", "a written tokenizer reads back with other tokens");
}

static void load_tokenizer(void* ctx) {
    const Case* c = ctx;
    Tokenizer t, again;
    tokenizer_load(&t, c->path);
    if (encodes_every_byte(&t)) check_round_trip(&t, c->text, c->len);
    tokenizer_write(&t, c->copy);
    tokenizer_load(&again, c->copy);
    check_same(&t, &again);
    tokenizer_free(&again);
    tokenizer_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const char* copy;
    if (!copy) copy = fuzz_scratch_path("copy.bin");
    Case c = {fuzz_input_file(data, size), copy, data, size};
    const char* message = fuzz_run(load_tokenizer, &c);
    if (message && !fuzz_names(message, c.path)) fuzz_finding("an error that does not name the tokenizer file", message);
    return 0;
}
