// Fuzz target: the BPE encoder and the pre-tokenizer on arbitrary bytes (no file). For any input:
// encoding with the byte tokenizer, with a small trained tokenizer and with one trained on the
// input itself decodes back to the input; and every safe cut (data/pretokenize.h: the quick test,
// and the scan of the pieces, also on a prefix that the text continues past) splits the text into
// exactly the pieces it has whole. Nothing here may fail.
#include <stdlib.h>
#include <string.h>

#include "data/pretokenize.h"
#include "data/tokenizer.h"
#include "test/fuzz/harness.h"

static const char TRAINING_TEXT[] =
    "In the beginning God created the heaven and the earth. And the earth was without form, and void; "
    "they'll say 1234567 times: caf\xc3\xa9, na\xc3\xafve, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\n\n  \t x = f(y) + 42;\n";

typedef struct {
    const uint8_t* text;
    size_t len;
} Case;

// The ends of the pieces of text[0, len), written to ends; returns their count.
static size_t piece_ends(const uint8_t* text, size_t len, size_t* ends) {
    size_t n = 0;
    for (size_t i = 0; i < len; i = ends[n++]) ends[n] = pretok_next(text, len, i);
    return n;
}

// A cut at p (0 < p < len) must give the pieces of text[0, p), then those of text[p, len).
static void check_cut(const uint8_t* text, size_t len, size_t p, size_t* whole, size_t* parts, const char* which) {
    if (p == 0 || p >= len) return;
    size_t n = piece_ends(text, len, whole);
    size_t k = piece_ends(text, p, parts);
    size_t m = piece_ends(text + p, len - p, parts + k);
    for (size_t i = k; i < k + m; i++) parts[i] += p;
    if (n != k + m || memcmp(whole, parts, n * sizeof(size_t)) != 0) fuzz_finding(which, "a safe cut changes the pieces");
}

static void check_cuts(const uint8_t* text, size_t len) {
    size_t* whole = malloc(sizeof(size_t) * (len + 1));
    size_t* parts = malloc(sizeof(size_t) * (len + 1));
    check_cut(text, len, pretok_cut_before(text, len, len / 2), whole, parts, "pretok_cut_before");
    check_cut(text, len, pretok_cut_after(text, len, len / 2), whole, parts, "pretok_cut_after");
    check_cut(text, len, pretok_cut_scan(text, len, len / 2, 1), whole, parts, "pretok_cut_scan");
    size_t prefix = len - len / 4;   // the text goes on past the prefix: a cut found there must hold for all of it
    check_cut(text, len, pretok_cut_scan(text, prefix, prefix / 2, 0), whole, parts, "pretok_cut_scan (prefix)");
    free(whole);
    free(parts);
}

static void check_round_trip(const Tokenizer* t, const uint8_t* text, size_t len) {
    int* ids = malloc(sizeof(int) * (len ? len : 1));
    unsigned char* back = malloc(len ? len : 1);
    size_t n = tokenizer_encode(t, text, len, ids, len);
    if (n > len || tokenizer_decode(t, ids, n, back, len) != len || memcmp(back, text, len) != 0)
        fuzz_finding("tokenizer_encode", "decode(encode(text)) is not the text");
    free(ids);
    free(back);
}

static Tokenizer bytes, trained;

static void encode(void* ctx) {
    const Case* c = ctx;
    check_cuts(c->text, c->len);
    check_round_trip(&bytes, c->text, c->len);
    check_round_trip(&trained, c->text, c->len);
    Tokenizer own;
    tokenizer_train_text(&own, c->text, c->len, 300);
    check_round_trip(&own, c->text, c->len);
    tokenizer_free(&own);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (!bytes.index) {
        tokenizer_init_bytes(&bytes);
        tokenizer_train_text(&trained, (const unsigned char*)TRAINING_TEXT, sizeof(TRAINING_TEXT) - 1, 320);
    }
    Case c = {data, size};
    const char* message = fuzz_run(encode, &c);
    if (message) fuzz_finding("the encoder failed", message);
    return 0;
}
