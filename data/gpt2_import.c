// Import of OpenAI's GPT-2 vocabulary files: encoder.json (token string -> id) and vocab.bpe (the
// merges in rank order, after a "#version" line). Both spell bytes with GPT-2's printable alphabet
// (bytes_to_unicode in OpenAI's encoder.py): printable Latin-1 bytes stand for themselves, the
// other 68 bytes for U+0100 onwards, in byte order.
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "data/pretokenize.h"
#include "data/tokenizer_internal.h"

#define ALPHABET_SIZE 324    // highest code point of the alphabet + 1

typedef struct {
    const char* path;
    unsigned char* text;
    size_t len, pos;
    int byte_of[ALPHABET_SIZE];   // code point -> byte, -1 outside the alphabet
} Source;

static void alphabet_init(int* byte_of) {
    for (int i = 0; i < ALPHABET_SIZE; i++) byte_of[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        byte_of[printable ? b : 256 + extra++] = b;
    }
}

static void source_open(Source* s, const char* path) {
    FILE* f = fopen_check(path, "rb");
    s->path = path;
    s->len = (size_t)file_size(f);
    s->text = malloc_for(path, s->len + 1);
    fread_check(s->text, 1, s->len, f, path);
    fclose(f);
    s->text[s->len] = 0;
    s->pos = 0;
    alphabet_init(s->byte_of);
}

static void skip_space(Source* s) {
    while (s->pos < s->len && strchr(" \t\r\n", s->text[s->pos])) s->pos++;
}

static void expect(Source* s, char c) {
    skip_space(s);
    if (s->pos >= s->len || s->text[s->pos] != c)
        fail("%s: not GPT-2's encoder.json (expected '%c' at byte %zu)", s->path, c, s->pos);
    s->pos++;
}

static int hex4(Source* s) {
    int v = 0;
    for (int k = 0; k < 4; k++, s->pos++) {
        int c = s->pos < s->len ? s->text[s->pos] : 0, d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') d = (c | 0x20) - 'a' + 10;
        else fail("%s: bad \\u escape at byte %zu", s->path, s->pos);
        v = v * 16 + d;
    }
    return v;
}

// One character of a JSON string: its code point (escapes decoded).
static int32_t json_char(Source* s) {
    int n;
    if (s->text[s->pos] != '\\') {
        int32_t cp = utf8_decode(s->text, s->len, s->pos, &n);
        if (cp < 0) fail("%s: invalid UTF-8 at byte %zu", s->path, s->pos);
        s->pos += n;
        return cp;
    }
    s->pos += 2;
    switch (s->pos - 1 < s->len ? s->text[s->pos - 1] : 0) {
        case '"': return '"';
        case '\\': return '\\';
        case '/': return '/';
        case 'b': return '\b';
        case 'f': return '\f';
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        case 'u': return hex4(s);
        default: fail("%s: bad escape at byte %zu", s->path, s->pos - 2);
    }
}

static void push_alphabet_byte(Source* s, int32_t cp, unsigned char* out, int* n) {
    if (cp < 0 || cp >= ALPHABET_SIZE || s->byte_of[cp] < 0)
        fail("%s: character U+%04X near byte %zu is not in GPT-2's byte alphabet", s->path, cp, s->pos);
    if (*n >= TOKENIZER_MAX_TOKEN_BYTES)
        fail("%s: a token near byte %zu is longer than %d bytes", s->path, s->pos, TOKENIZER_MAX_TOKEN_BYTES);
    out[(*n)++] = (unsigned char)s->byte_of[cp];
}

// A JSON string key of encoder.json, as the bytes it spells; returns the length.
static int json_token(Source* s, unsigned char* out) {
    expect(s, '"');
    int n = 0;
    while (s->pos < s->len && s->text[s->pos] != '"') push_alphabet_byte(s, json_char(s), out, &n);
    expect(s, '"');
    return n;
}

static long json_int(Source* s) {
    skip_space(s);
    long v = 0;
    size_t start = s->pos;
    while (s->pos < s->len && s->text[s->pos] >= '0' && s->text[s->pos] <= '9' && v < 100000000)
        v = v * 10 + (s->text[s->pos++] - '0');
    if (s->pos == start) fail("%s: not GPT-2's encoder.json (expected a token id at byte %zu)", s->path, s->pos);
    return v;
}

typedef struct { unsigned char bytes[TOKENIZER_MAX_TOKEN_BYTES]; int len; long id; } Entry;

static Entry* read_encoder(Source* s, int* count) {
    int cap = 1 << 16;
    Entry* e = malloc_check(sizeof(Entry) * cap);
    *count = 0;
    expect(s, '{');
    skip_space(s);
    if (s->pos < s->len && s->text[s->pos] == '}') fail("%s: encoder.json has no tokens", s->path);
    for (;;) {
        if (*count == cap) {
            cap *= 2;
            e = realloc(e, sizeof(Entry) * cap);
            if (!e) fail("out of memory reading %s", s->path);
        }
        Entry* x = &e[(*count)++];
        x->len = json_token(s, x->bytes);
        expect(s, ':');
        x->id = json_int(s);
        skip_space(s);
        if (s->pos < s->len && s->text[s->pos] == '}') break;
        expect(s, ',');
    }
    return e;
}

static void encoder_to_tokens(Tokenizer* t, const Entry* e, int count, const char* path) {
    int eot = -1;
    for (int i = 0; i < count; i++) {
        if (e[i].len == 13 && memcmp(e[i].bytes, TOKENIZER_EOT_TEXT, 13) == 0) eot = (int)e[i].id;
        if (e[i].id >= count) fail("%s: token id %ld is not below the token count %d", path, e[i].id, count);
    }
    if (eot < 0) fail("%s: no %s token", path, TOKENIZER_EOT_TEXT);
    tokenizer_alloc(t, count, eot, path);
    char* seen = calloc_check(count, 1);
    for (int i = 0; i < count; i++) {
        if (seen[e[i].id]++) fail("%s: token id %ld appears twice", path, e[i].id);
        tokenizer_set_token(t, (int)e[i].id, e[i].bytes, e[i].len);
    }
    free(seen);
}

// One half of a vocab.bpe line: from s->pos to the next space or end of line.
static int merge_half(Source* s, unsigned char* out) {
    int n = 0;
    while (s->pos < s->len && s->text[s->pos] != ' ' && s->text[s->pos] != '\n' && s->text[s->pos] != '\r') {
        int k;
        int32_t cp = utf8_decode(s->text, s->len, s->pos, &k);
        s->pos += k;
        push_alphabet_byte(s, cp, out, &n);
    }
    return n;
}

static int token_id(const BytesMap* ids, const unsigned char* b, int n) {
    const int64_t* v = bytes_map_find(ids, b, n, bytes_hash(b, n));
    return v ? (int)*v : -1;
}

// Reads one "A B" line into merge i, checking that A, B and AB are tokens and AB is 256 + i.
static void read_merge_line(Source* s, Tokenizer* t, const BytesMap* ids, int i, int line) {
    unsigned char a[2 * TOKENIZER_MAX_TOKEN_BYTES], b[TOKENIZER_MAX_TOKEN_BYTES];
    int la = merge_half(s, a);
    if (s->pos >= s->len || s->text[s->pos] != ' ') fail("%s: line %d is not a merge \"A B\"", s->path, line);
    s->pos++;
    int lb = merge_half(s, b);
    int ia = token_id(ids, a, la), ib = token_id(ids, b, lb);
    memcpy(a + la, b, lb);
    int iab = token_id(ids, a, la + lb);
    if (ia < 0 || ib < 0 || iab < 0) fail("%s: line %d merges strings that are not tokens of encoder.json", s->path, line);
    if (iab != 256 + i)
        fail("%s: line %d makes token %d, expected %d (ids must follow the merge order)", s->path, line, iab, 256 + i);
    t->merges[2 * i] = ia;
    t->merges[2 * i + 1] = ib;
}

static void read_merges(Source* s, Tokenizer* t, const BytesMap* ids) {
    t->merges = malloc_check(sizeof(int) * 2 * (size_t)t->vocab_size);
    t->num_merges = 0;
    for (int line = 1; s->pos < s->len; line++) {
        size_t eol = s->pos;
        while (eol < s->len && s->text[eol] != '\n') eol++;
        int blank = eol == s->pos || (eol == s->pos + 1 && s->text[s->pos] == '\r');
        if (!(line == 1 && s->text[s->pos] == '#') && !blank) {
            if (256 + t->num_merges >= t->vocab_size) fail("%s: more merges than encoder.json has tokens", s->path);
            read_merge_line(s, t, ids, t->num_merges++, line);
        }
        s->pos = eol + 1;
    }
}

void tokenizer_import_gpt2(Tokenizer* t, const char* encoder_json_path, const char* vocab_bpe_path) {
    Source s;
    source_open(&s, encoder_json_path);
    int count;
    Entry* entries = read_encoder(&s, &count);
    encoder_to_tokens(t, entries, count, encoder_json_path);
    free(entries);
    free(s.text);
    BytesMap ids;
    bytes_map_init(&ids, t->vocab_size);
    for (int id = 0; id < t->vocab_size; id++)
        if (id != t->eot_token)
            bytes_map_upsert(&ids, t->token_bytes[id], t->token_len[id], bytes_hash(t->token_bytes[id], t->token_len[id]),
                             id, NULL);
    source_open(&s, vocab_bpe_path);
    read_merges(&s, t, &ids);
    free(s.text);
    bytes_map_free(&ids);
    tokenizer_finish(t, encoder_json_path);
}
