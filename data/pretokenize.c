// GPT-2's pre-tokenization pattern as a scanner (see pretokenize.h). Alternatives are tried in the
// pattern's order at each position, which is what the regex engines of GPT-2 and tiktoken do.
#include "data/pretokenize.h"

#include "data/unicode.h"

static inline int is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

int32_t utf8_decode(const unsigned char* s, size_t len, size_t i, int* nbytes) {
    unsigned char c = s[i];
    size_t left = len - i;
    *nbytes = 1;
    if (c < 0x80) return c;
    if (c >= 0xC2 && c <= 0xDF) {
        if (left < 2 || !is_cont(s[i + 1])) return -1;
        *nbytes = 2;
        return ((c & 0x1F) << 6) | (s[i + 1] & 0x3F);
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (left < 3 || !is_cont(s[i + 1]) || !is_cont(s[i + 2])) return -1;
        if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F)) return -1;
        *nbytes = 3;
        return ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (left < 4 || !is_cont(s[i + 1]) || !is_cont(s[i + 2]) || !is_cont(s[i + 3])) return -1;
        if ((c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F)) return -1;
        *nbytes = 4;
        return ((c & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
    }
    return -1;
}

int utf8_class_at(const unsigned char* text, size_t len, size_t i, int* nbytes) {
    if (text[i] < 0x80) { *nbytes = 1; return unicode_ascii_class(text[i]); }
    int32_t cp = utf8_decode(text, len, i, nbytes);
    return cp < 0 ? UC_OTHER : unicode_class((uint32_t)cp);
}

// 's 't 're 've 'm 'll 'd at text[i] (which is '\''): the contraction's length, or 0.
static size_t contraction_len(const unsigned char* text, size_t len, size_t i) {
    if (i + 1 >= len) return 0;
    unsigned char a = text[i + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (i + 2 >= len) return 0;
    unsigned char b = text[i + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

// End of the run of characters of class cls that starts at text[j].
static size_t run_end(const unsigned char* text, size_t len, size_t j, int cls) {
    while (j < len) {
        int n;
        if (utf8_class_at(text, len, j, &n) != cls) break;
        j += n;
    }
    return j;
}

// \s+(?!\S)|\s+ at text[i]: a whitespace run up to the end of text is one piece; a run followed by
// a non-space leaves its last character to the next piece (so " word" stays whole), unless the run
// is that one character.
static size_t space_piece_end(const unsigned char* text, size_t len, size_t i, int n) {
    size_t last = i, j = i + n;
    while (j < len) {
        int m;
        if (utf8_class_at(text, len, j, &m) != UC_SPACE) break;
        last = j;
        j += m;
    }
    if (j == len || last == i) return j;
    return last;
}

size_t pretok_next(const unsigned char* text, size_t len, size_t i) {
    if (text[i] == '\'') {
        size_t c = contraction_len(text, len, i);
        if (c) return i + c;
    }
    int n, cls = utf8_class_at(text, len, i, &n);
    if (text[i] == ' ' && i + 1 < len) {            // ' ?' before a letter, number or other run
        int n2, cls2 = utf8_class_at(text, len, i + 1, &n2);
        if (cls2 != UC_SPACE) return run_end(text, len, i + 1 + n2, cls2);
    }
    if (cls != UC_SPACE) return run_end(text, len, i + n, cls);
    return space_piece_end(text, len, i, n);
}

static inline int is_cut(const unsigned char* text, size_t p) {
    return (text[p] == ' ' || text[p] == '\n') && text[p - 1] > ' ' && text[p - 1] < 0x7F;
}

size_t pretok_cut_before(const unsigned char* text, size_t len, size_t pos) {
    if (len == 0) return 0;
    if (pos > len - 1) pos = len - 1;
    for (size_t p = pos; p > 0; p--)
        if (is_cut(text, p)) return p;
    return 0;
}

size_t pretok_cut_after(const unsigned char* text, size_t len, size_t pos) {
    for (size_t p = pos > 0 ? pos : 1; p < len; p++)
        if (is_cut(text, p)) return p;
    return len;
}

// Whether the piece text[i, j) is whitespace: pieces are all whitespace, or have whitespace only in
// their first character (" word"), so its first two characters tell.
static int is_space_piece(const unsigned char* text, size_t len, size_t i, size_t j) {
    int n, m;
    if (utf8_class_at(text, len, i, &n) != UC_SPACE) return 0;
    return i + n == j || utf8_class_at(text, len, i + n, &m) == UC_SPACE;
}

size_t pretok_cut_scan(const unsigned char* text, size_t len, size_t pos, int complete) {
    size_t end = complete ? len : (len >= PRETOK_LOOKAHEAD ? len - PRETOK_LOOKAHEAD + 1 : 0);   // cuts < end
    size_t best = 0;
    for (size_t i = 0, j; i < len && (j = pretok_next(text, len, i)) < end; i = j) {
        if (is_space_piece(text, len, i, j)) continue;
        if (j > pos) return best ? best : j;
        best = j;
    }
    return best;
}
