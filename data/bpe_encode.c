// BPE encoding, tiktoken's algorithm: split text with GPT-2's pattern; a piece that is a token is
// that token; otherwise start from its byte tokens and repeatedly merge the adjacent pair whose
// joined bytes form the lowest-id token, the leftmost one on ties, until no pair forms a token.
// Short pieces use a linear scan, long ones (runs of digits or symbols) a heap, so the work stays
// O(n log n). A piece longer than TOKENIZER_MAX_PIECE_BYTES merges in parts (tokenizer.h). A small
// cache per chunk remembers recent multi-token pieces; large inputs are cut at safe positions
// (pretok_cut_after) and encoded by OpenMP threads, each chunk in place.
#include <limits.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "data/pretokenize.h"
#include "data/tokenizer_internal.h"

#define CACHE_SLOTS 4096
#define CACHE_KEY_BYTES 22
#define CACHE_TOKENS 8
#define SCAN_MAX 128                     // pieces up to this many bytes merge by linear scan
#define PARALLEL_MIN_BYTES (1u << 20)    // smaller inputs encode on one thread
#define CHUNK_MIN_BYTES (256u << 10)

typedef struct {
    uint64_t hash;                       // 0: empty
    uint8_t len, ntok;
    unsigned char bytes[CACHE_KEY_BYTES];
    int32_t tokens[CACHE_TOKENS];
} CacheEntry;

static inline int pair_rank(const TokenIndex* x, int a, int b) {
    int32_t id = pair_map_get(&x->pairs, pair_key(a, b));
    return id < 0 ? INT_MAX : id;
}

static void bytes_to_tokens(const TokenIndex* x, const unsigned char* s, size_t n, int* ids) {
    for (size_t i = 0; i < n; i++) {
        ids[i] = x->byte_token[s[i]];
        if (ids[i] < 0) fail("tokenizer has no token for byte 0x%02x, so it cannot encode this text", s[i]);
    }
}

// Merges ids (n) in place by linear scans; returns the new count.
static size_t merge_scan(const TokenIndex* x, int* ids, size_t n) {
    int rank[SCAN_MAX];
    for (size_t k = 0; k + 1 < n; k++) rank[k] = pair_rank(x, ids[k], ids[k + 1]);
    while (n > 1) {
        int best = INT_MAX;
        size_t bi = 0;
        for (size_t k = 0; k + 1 < n; k++)
            if (rank[k] < best) { best = rank[k]; bi = k; }
        if (best == INT_MAX) break;
        ids[bi] = best;
        memmove(ids + bi + 1, ids + bi + 2, (n - bi - 2) * sizeof(int));
        if (bi + 3 <= n) memmove(rank + bi + 1, rank + bi + 2, (n - bi - 3) * sizeof(int));
        n--;
        if (bi > 0) rank[bi - 1] = pair_rank(x, ids[bi - 1], ids[bi]);
        if (bi + 1 < n) rank[bi] = pair_rank(x, ids[bi], ids[bi + 1]);
    }
    return n;
}

// Min-heap of (rank << 32 | position): the lowest rank first, the leftmost on ties.
typedef struct { uint64_t* items; size_t len; } MinHeap;

static void heap_push(MinHeap* h, uint64_t v) {
    size_t i = h->len++;
    while (i > 0 && h->items[(i - 1) / 2] > v) { h->items[i] = h->items[(i - 1) / 2]; i = (i - 1) / 2; }
    h->items[i] = v;
}

static uint64_t heap_pop(MinHeap* h) {
    uint64_t top = h->items[0], v = h->items[--h->len];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->len) break;
        if (c + 1 < h->len && h->items[c + 1] < h->items[c]) c++;
        if (h->items[c] >= v) break;
        h->items[i] = h->items[c];
        i = c;
    }
    if (h->len) h->items[i] = v;
    return top;
}

// Sets the rank of the pair that starts at part p (-1 if p is removed) and queues it.
static void update_rank(const TokenIndex* x, const int* ids, const size_t* next, int* rank, size_t n,
                        MinHeap* h, size_t p) {
    rank[p] = next[p] < n ? pair_rank(x, ids[p], ids[next[p]]) : INT_MAX;
    if (rank[p] != INT_MAX) heap_push(h, (uint64_t)rank[p] << 32 | p);
}

// The same merges as merge_scan for long pieces, with a linked list of parts and a heap.
static size_t merge_heap(const TokenIndex* x, int* ids, size_t n) {
    size_t* next = malloc_check(n * sizeof(size_t));
    size_t* prev = malloc_check(n * sizeof(size_t));
    int* rank = malloc_check(n * sizeof(int));
    MinHeap h = {malloc_check(3 * n * sizeof(uint64_t)), 0};   // n - 1 pairs + 2 per merge
    for (size_t p = 0; p < n; p++) { next[p] = p + 1; prev[p] = p - 1; }
    for (size_t p = 0; p < n; p++) update_rank(x, ids, next, rank, n, &h, p);
    while (h.len) {
        uint64_t top = heap_pop(&h);
        size_t p = (size_t)(top & 0xFFFFFFFFu);
        int r = (int)(top >> 32);
        if (rank[p] != r) continue;                      // stale: p was removed or re-ranked
        size_t q = next[p];
        ids[p] = r;
        rank[q] = -1;
        next[p] = next[q];
        if (next[q] < n) prev[next[q]] = p;
        update_rank(x, ids, next, rank, n, &h, p);
        if (p > 0) update_rank(x, ids, next, rank, n, &h, prev[p]);
    }
    size_t m = 0;
    for (size_t p = 0; p < n; p = next[p]) ids[m++] = ids[p];
    free(next); free(prev); free(rank); free(h.items);
    return m;
}

static size_t encode_piece(const TokenIndex* x, const unsigned char* s, size_t n, int* out, CacheEntry* cache) {
    if (n == 1) { bytes_to_tokens(x, s, 1, out); return 1; }
    uint64_t h = bytes_hash(s, n);
    if (n <= (size_t)x->max_len) {
        const int64_t* id = bytes_map_find(&x->tokens, s, n, h);
        if (id) { out[0] = (int)*id; return 1; }
    }
    CacheEntry* e = &cache[h & (CACHE_SLOTS - 1)];
    if (e->hash == h && e->len == n && memcmp(e->bytes, s, n) == 0) {
        for (int k = 0; k < e->ntok; k++) out[k] = e->tokens[k];
        return e->ntok;
    }
    bytes_to_tokens(x, s, n, out);
    size_t m = n <= SCAN_MAX ? merge_scan(x, out, n) : merge_heap(x, out, n);
    if (n <= CACHE_KEY_BYTES && m <= CACHE_TOKENS) {
        e->hash = h; e->len = (uint8_t)n; e->ntok = (uint8_t)m;
        memcpy(e->bytes, s, n);
        for (size_t k = 0; k < m; k++) e->tokens[k] = out[k];
    }
    return m;
}

// A piece in parts of at most TOKENIZER_MAX_PIECE_BYTES, each ending before a UTF-8 character
// start (as far as the bytes allow): merging a part takes about 40 bytes per byte.
static size_t encode_in_parts(const TokenIndex* x, const unsigned char* s, size_t n, int* out, CacheEntry* cache) {
    size_t m = 0;
    for (size_t i = 0, part; i < n; i += part) {
        part = n - i;
        if (part > TOKENIZER_MAX_PIECE_BYTES) {
            part = TOKENIZER_MAX_PIECE_BYTES;
            for (int k = 0; k < 3 && (s[i + part] & 0xC0) == 0x80; k++) part--;
        }
        m += encode_piece(x, s + i, part, out + m, cache);
    }
    return m;
}

// Encodes text[0, len) into out (room for len ids); returns the count.
static size_t encode_range(const TokenIndex* x, const unsigned char* text, size_t len, int* out) {
    CacheEntry* cache = calloc_check(CACHE_SLOTS, sizeof(CacheEntry));
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t j = pretok_next(text, len, i);
        n += encode_in_parts(x, text + i, j - i, out + n, cache);
        i = j;
    }
    free(cache);
    return n;
}

// Chunks of text that encode independently: bounds[0] = 0 < ... < bounds[count] = len.
static int chunk_bounds(const unsigned char* text, size_t len, size_t* bounds, int max_chunks) {
    int count = 0;
    bounds[0] = 0;
    for (int c = 1; c < max_chunks; c++) {
        size_t cut = pretok_cut_after(text, len, len / max_chunks * c);
        if (cut > bounds[count] && cut < len) bounds[++count] = cut;
    }
    bounds[++count] = len;
    return count;
}

// Encodes into out (room for len ids) on all threads; each chunk lands in place, then compacts.
static size_t encode_parallel(const TokenIndex* x, const unsigned char* text, size_t len, int* out) {
    int max_chunks = 4 * omp_get_max_threads();
    if (len / max_chunks < CHUNK_MIN_BYTES) max_chunks = (int)(len / CHUNK_MIN_BYTES) + 1;
    size_t* bounds = malloc_check((max_chunks + 1) * sizeof(size_t));
    size_t* counts = malloc_check(max_chunks * sizeof(size_t));
    int chunks = chunk_bounds(text, len, bounds, max_chunks);
    #pragma omp parallel for schedule(dynamic, 1)
    for (int c = 0; c < chunks; c++)
        counts[c] = encode_range(x, text + bounds[c], bounds[c + 1] - bounds[c], out + bounds[c]);
    size_t n = 0;
    for (int c = 0; c < chunks; c++) {
        memmove(out + n, out + bounds[c], counts[c] * sizeof(int));
        n += counts[c];
    }
    free(bounds);
    free(counts);
    return n;
}

size_t tokenizer_encode(const Tokenizer* t, const unsigned char* text, size_t len, int* out, size_t cap) {
    if (!t->index) fail("tokenizer_encode: the tokenizer was not loaded or built");
    int* buf = cap >= len ? out : malloc_check(len * sizeof(int));
    size_t n = len >= PARALLEL_MIN_BYTES && omp_get_max_threads() > 1 ? encode_parallel(t->index, text, len, buf)
                                                                       : encode_range(t->index, text, len, buf);
    if (buf != out) {
        memcpy(out, buf, (n < cap ? n : cap) * sizeof(int));
        free(buf);
    }
    return n;
}
