// Tokenizer files, construction and decoding (see tokenizer.h); the encoder is in bpe_encode.c,
// training in bpe_train.c, the GPT-2 importer in gpt2_import.c.
#include "data/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "data/tokenizer_internal.h"

void tokenizer_alloc(Tokenizer* t, int vocab_size, int eot_token, const char* source) {
    memset(t, 0, sizeof(*t));
    t->vocab_size = vocab_size;
    t->eot_token = eot_token;
    t->token_bytes = malloc_for(source, (size_t)vocab_size * sizeof(unsigned char*));
    t->token_len = malloc_for(source, (size_t)vocab_size * sizeof(int));
    memset(t->token_bytes, 0, (size_t)vocab_size * sizeof(unsigned char*));
    memset(t->token_len, 0, (size_t)vocab_size * sizeof(int));
}

void tokenizer_set_token(Tokenizer* t, int id, const unsigned char* bytes, int len) {
    free(t->token_bytes[id]);
    t->token_bytes[id] = malloc_check(len + 1);
    memcpy(t->token_bytes[id], bytes, len);
    t->token_bytes[id][len] = 0;
    t->token_len[id] = len;
}

static int is_merge_of(const Tokenizer* t, int id, int a, int b) {
    int la = t->token_len[a], lb = t->token_len[b];
    return t->token_len[id] == la + lb && memcmp(t->token_bytes[id], t->token_bytes[a], la) == 0 &&
           memcmp(t->token_bytes[id] + la, t->token_bytes[b], lb) == 0;
}

static void check_merges(const Tokenizer* t, const char* source) {
    if (t->num_merges < 0 || t->num_merges > t->vocab_size - 256)   // not 256 + M: that may overflow
        fail("%s: %d merges do not fit a vocabulary of %d tokens", source, t->num_merges, t->vocab_size);
    for (int i = 0; i < 256; i++)
        if (t->token_len[i] != 1)
            fail("%s: token %d is %d bytes; a file with merges must have the 256 bytes first", source, i,
                 t->token_len[i]);
    for (int i = 0; i < t->num_merges; i++) {
        int a = t->merges[2 * i], b = t->merges[2 * i + 1], id = 256 + i;
        if (a < 0 || b < 0 || a >= id || b >= id || !is_merge_of(t, id, a, b))
            fail("%s: merge %d (%d, %d) does not make token %d; the file is corrupt", source, i, a, b, id);
    }
}

static void build_token_map(TokenIndex* x, const Tokenizer* t) {
    bytes_map_init(&x->tokens, t->vocab_size);
    for (int id = 0; id < t->vocab_size; id++) {
        int n = t->token_len[id];
        if (id == t->eot_token || n == 0) continue;
        const unsigned char* s = t->token_bytes[id];
        bytes_map_upsert(&x->tokens, s, n, bytes_hash(s, n), id, NULL);
        if (n > x->max_len) x->max_len = n;
        if (n == 1 && x->byte_token[s[0]] < 0) x->byte_token[s[0]] = id;
    }
}

// Every split of every token into two tokens: the pairs that BPE may merge, and into what.
static void build_pair_map(TokenIndex* x, const Tokenizer* t) {
    pair_map_init(&x->pairs, 2 * (size_t)t->vocab_size);
    for (size_t i = 0; i < x->tokens.cap; i++) {
        const BytesSlot* e = &x->tokens.slots[i];
        if (!e->hash || e->len < 2) continue;
        const unsigned char* s = bytes_map_key(&x->tokens, e);
        for (uint32_t k = 1; k < e->len; k++) {
            const int64_t* a = bytes_map_find(&x->tokens, s, k, bytes_hash(s, k));
            const int64_t* b = a ? bytes_map_find(&x->tokens, s + k, e->len - k, bytes_hash(s + k, e->len - k)) : NULL;
            if (b) pair_map_set(&x->pairs, pair_key((int)*a, (int)*b), (int32_t)e->value);
        }
    }
}

void tokenizer_finish(Tokenizer* t, const char* source) {
    if (t->num_merges) check_merges(t, source);
    TokenIndex* x = calloc_check(1, sizeof(TokenIndex));
    memset(x->byte_token, 0xFF, sizeof(x->byte_token));
    build_token_map(x, t);
    build_pair_map(x, t);
    t->index = x;
}

static void read_token_table(Tokenizer* t, FILE* f, const char* path) {
    for (int i = 0; i < t->vocab_size; i++) {
        unsigned char len, bytes[256];
        if (fread(&len, 1, 1, f) != 1 || fread(bytes, 1, len, f) != len)
            fail("%s: tokenizer file is truncated (its token table ends at token %d of %d)", path, i, t->vocab_size);
        tokenizer_set_token(t, i, bytes, len);
    }
}

// The merges, once their count is checked against the vocabulary and the bytes left in the file.
static void read_merges(Tokenizer* t, FILE* f, const char* path, int num_merges, long size) {
    // no merges fit any vocabulary (an llm.c file of fewer than 256 tokens, written back by us);
    // M merges need 256 + M tokens (compared as M > V - 256: 256 + M may overflow)
    if (num_merges < 0 || (num_merges > 0 && num_merges > t->vocab_size - 256))
        fail("%s: bad tokenizer header (%d merges for %d tokens)", path, num_merges, t->vocab_size);
    long left = size - ftell(f);
    if ((size_t)num_merges > (size_t)left / (2 * sizeof(int)))
        fail("%s: tokenizer file is truncated (%ld bytes left for its %d merges of 8 bytes)", path, left, num_merges);
    t->num_merges = num_merges;
    t->merges = malloc_for(path, sizeof(int) * 2 * ((size_t)num_merges + 1));
    fread_check(t->merges, sizeof(int), 2 * (size_t)num_merges, f, path);
}

// The header's vocabulary, checked against the file before anything is allocated for it: every
// token takes at least its length byte.
static void check_vocab(const int* header, int eot, long size, const char* path) {
    long most = size - 256 * (long)sizeof(int);
    if (header[2] <= 0 || eot < 0 || eot >= header[2])
        fail("%s: bad tokenizer header (vocab size %d, EOT id %d)", path, header[2], eot);
    if (header[2] > most)
        fail("%s: tokenizer file is truncated or its header is corrupt (vocab size %d, but the %ld bytes after "
             "the header hold at most %ld tokens)", path, header[2], most, most);
}

// Header slots past those the file uses (4: the merges' marker, 5 their count) hold zero in llm.c's
// files and ours.
static void check_zero_slots(const int* header, const char* path) {
    for (int i = header[4] == TOKENIZER_ATTNLAB_MARK ? 6 : 4; i < 256; i++)
        if (header[i] != 0)
            fail("%s: tokenizer header slot %d holds %d, where the format has zero: the file is corrupt", path, i,
                 header[i]);
}

// The file ends where its structure does: bytes after it mean a damaged header (a cleared merge
// marker or count leaves the merges behind the token table unread).
static void check_end(FILE* f, const char* path, long size, int has_merges) {
    long left = size - ftell(f);
    if (left != 0)
        fail("%s: %ld bytes after the token table%s, which the header does not account for: the file is corrupt", path,
             left, has_merges ? " and merges" : "");
}

void tokenizer_load(Tokenizer* t, const char* path) {
    FILE* f = fopen_check(path, "rb");
    int header[256];
    long size = file_size(f);
    if (size < (long)sizeof(header)) fail("%s: not a tokenizer file (shorter than its header)", path);
    fread_check(header, sizeof(int), 256, f, path);
    if (header[0] != TOKENIZER_MAGIC)
        fail("%s: not a tokenizer file (magic %d, expected %d); make one with ./prepare", path, header[0],
             TOKENIZER_MAGIC);
    if (header[1] != TOKENIZER_VERSION && header[1] != 1)
        fail("%s: tokenizer version %d is not supported (expected %d)", path, header[1], TOKENIZER_VERSION);
    int eot = header[1] == 1 ? 50256 : header[3];   // llm.c's version 1 had GPT-2's EOT implied
    check_vocab(header, eot, size, path);
    check_zero_slots(header, path);
    tokenizer_alloc(t, header[2], eot, path);
    read_token_table(t, f, path);
    int has_merges = header[4] == TOKENIZER_ATTNLAB_MARK;
    if (has_merges) read_merges(t, f, path, header[5], size);
    check_end(f, path, size, has_merges);
    fclose(f);
    tokenizer_finish(t, path);
}

void tokenizer_write(const Tokenizer* t, const char* path) {
    int header[256] = {0};
    header[0] = TOKENIZER_MAGIC;
    header[1] = TOKENIZER_VERSION;
    header[2] = t->vocab_size;
    header[3] = t->eot_token;
    header[4] = TOKENIZER_ATTNLAB_MARK;
    header[5] = t->num_merges;
    FILE* f = atomic_open(path);
    fwrite_check(header, sizeof(int), 256, f, path);
    for (int i = 0; i < t->vocab_size; i++) {
        if (t->token_len[i] > TOKENIZER_MAX_TOKEN_BYTES)
            fail("%s: token %d is %d bytes, more than the file format's %d", path, i, t->token_len[i],
                 TOKENIZER_MAX_TOKEN_BYTES);
        unsigned char len = (unsigned char)t->token_len[i];
        fwrite_check(&len, 1, 1, f, path);
        fwrite_check(t->token_bytes[i], 1, len, f, path);
    }
    fwrite_check(t->merges, sizeof(int), 2 * (size_t)t->num_merges, f, path);
    atomic_commit(f, path);
}

void tokenizer_init_bytes(Tokenizer* t) {
    tokenizer_alloc(t, 257, 256, "byte tokenizer");
    for (int b = 0; b < 256; b++) {
        unsigned char c = (unsigned char)b;
        tokenizer_set_token(t, b, &c, 1);
    }
    tokenizer_set_token(t, 256, (const unsigned char*)TOKENIZER_EOT_TEXT, (int)strlen(TOKENIZER_EOT_TEXT));
    tokenizer_finish(t, "byte tokenizer");
}

size_t tokenizer_decode(const Tokenizer* t, const int* ids, size_t n, unsigned char* out, size_t cap) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        char unknown[16];
        const unsigned char* s = (const unsigned char*)unknown;
        size_t len;
        if (ids[i] >= 0 && ids[i] < t->vocab_size) {
            s = t->token_bytes[ids[i]];
            len = (size_t)t->token_len[ids[i]];
        } else {
            len = (size_t)snprintf(unknown, sizeof(unknown), "<%d>", ids[i]);
        }
        if (total < cap) memcpy(out + total, s, len < cap - total ? len : cap - total);
        total += len;
    }
    return total;
}

void tokenizer_print(const Tokenizer* t, int id, FILE* out) {
    if (id < 0 || id >= t->vocab_size) { fprintf(out, "<%d>", id); return; }
    fwrite(t->token_bytes[id], 1, t->token_len[id], out);
}

unsigned char* tokenizer_line_ends(const Tokenizer* t) {
    unsigned char* line_end = calloc_check((size_t)t->vocab_size, 1);
    for (int i = 0; i < t->vocab_size; i++)
        line_end[i] = i != t->eot_token && t->token_len[i] > 0 && t->token_bytes[i][t->token_len[i] - 1] == '\n';
    return line_end;
}

void tokenizer_free(Tokenizer* t) {
    for (int i = 0; i < t->vocab_size; i++) free(t->token_bytes[i]);
    free(t->token_bytes);
    free(t->token_len);
    free(t->merges);
    if (t->index) {
        bytes_map_free(&t->index->tokens);
        pair_map_free(&t->index->pairs);
        free(t->index);
    }
    memset(t, 0, sizeof(*t));
}
