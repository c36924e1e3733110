// Open-addressing hash maps for the tokenizer: byte strings -> int64 (token ids, word counts) and
// id pairs -> int32 (merges). Both grow by doubling; neither deletes.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

// A hash of a byte string, never 0 (0 marks an empty slot).
static inline uint64_t bytes_hash(const unsigned char* s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, s, n);
        h = (h ^ w) * 0x94D049BB133111EBull;
    }
    h ^= h >> 32;
    h *= 0xD6E8FEB86659FD93ull;
    h ^= h >> 32;
    return h | 1;
}

typedef struct {
    uint64_t hash;      // 0: empty
    size_t offset;      // key bytes in the arena
    uint32_t len;
    int64_t value;
} BytesSlot;

typedef struct {
    BytesSlot* slots;
    size_t cap, count;  // cap is a power of two
    unsigned char* arena;
    size_t arena_len, arena_cap;
} BytesMap;

void bytes_map_init(BytesMap* m, size_t expected);
void bytes_map_free(BytesMap* m);
// The value slot of key s (n bytes, hash h from bytes_hash), or NULL if absent.
static inline const int64_t* bytes_map_find(const BytesMap* m, const unsigned char* s, size_t n, uint64_t h) {
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const BytesSlot* e = &m->slots[i];
        if (e->hash == 0) return NULL;
        if (e->hash == h && e->len == n && memcmp(m->arena + e->offset, s, n) == 0) return &e->value;
    }
}
// The value slot of key s, inserted with value `init` if absent (*inserted says which).
int64_t* bytes_map_upsert(BytesMap* m, const unsigned char* s, size_t n, uint64_t h, int64_t init, int* inserted);
// The key bytes of a slot.
static inline const unsigned char* bytes_map_key(const BytesMap* m, const BytesSlot* e) { return m->arena + e->offset; }

#define PAIR_EMPTY UINT64_MAX

typedef struct {
    uint64_t* keys;     // (uint64_t)a << 32 | b; PAIR_EMPTY: empty
    int32_t* values;
    size_t cap, count;
} PairMap;

static inline uint64_t pair_key(int a, int b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }
static inline size_t pair_slot(uint64_t key, size_t cap) {
    key ^= key >> 31;                    // fold a into the low bits, which the product keeps
    key *= 0x9E3779B97F4A7C15ull;
    key ^= key >> 29;
    return (size_t)key & (cap - 1);
}

void pair_map_init(PairMap* m, size_t expected);
void pair_map_free(PairMap* m);
// The value of pair key, or -1.
static inline int32_t pair_map_get(const PairMap* m, uint64_t key) {
    for (size_t i = pair_slot(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) return m->values[i];
        if (m->keys[i] == PAIR_EMPTY) return -1;
    }
}
void pair_map_set(PairMap* m, uint64_t key, int32_t value);
