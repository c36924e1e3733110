// GPT-2's pre-tokenization, as a hand-written scanner over UTF-8 bytes:
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// BPE never merges across the pieces this splits text into. Bytes that are not valid UTF-8 count
// as one "other" character each (neither letter, number nor space), so any byte string splits.
#pragma once
#include <stddef.h>
#include <stdint.h>

// Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF): the code point at
// text[i] and its length in *nbytes, or -1 and length 1 for an invalid byte.
int32_t utf8_decode(const unsigned char* text, size_t len, size_t i, int* nbytes);
// Class (UC_* from data/unicode.h) of the character at text[i]; *nbytes gets its UTF-8 length
// (1 for an invalid byte).
int utf8_class_at(const unsigned char* text, size_t len, size_t i, int* nbytes);

// End of the piece that starts at text[i] (i < len).
size_t pretok_next(const unsigned char* text, size_t len, size_t i);

// Safe cuts: positions p where text[:p] and text[p:] split into exactly the pieces text does.
// p qualifies when text[p-1] is printable non-space ASCII and text[p] is ' ' or '\n'.
// Largest qualifying p <= pos (0 if none); smallest qualifying p >= pos (len if none).
size_t pretok_cut_before(const unsigned char* text, size_t len, size_t pos);
size_t pretok_cut_after(const unsigned char* text, size_t len, size_t pos);
