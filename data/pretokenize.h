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
// The quick test: p qualifies when text[p-1] is printable non-space ASCII and text[p] is ' ' or '\n'.
// Largest qualifying p <= pos (0 if none); smallest qualifying p >= pos (len if none).
size_t pretok_cut_before(const unsigned char* text, size_t len, size_t pos);
size_t pretok_cut_after(const unsigned char* text, size_t len, size_t pos);

// Bytes past a piece's end that the scanner may read to decide the pieces up to it.
#define PRETOK_LOOKAHEAD 8
// The full test, for any bytes (text that the quick test finds no cut in: most scripts but Latin,
// NUL bytes, long runs): scans the pieces of text[0, len), which must start a piece, and takes
// the ends of pieces that are not whitespace (a whitespace piece's end depends on what follows
// it; another piece's does not, beyond the character after it). With complete = 0 the text may go
// on past len, so only ends at least PRETOK_LOOKAHEAD bytes before len count. Returns the largest
// such cut in (0, pos], else the smallest in (pos, len), else 0.
size_t pretok_cut_scan(const unsigned char* text, size_t len, size_t pos, int complete);
