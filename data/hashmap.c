// Open-addressing hash maps for the tokenizer (see hashmap.h): linear probing, load factor <= 1/2.
#include "data/hashmap.h"

#include <stdlib.h>

#include "common/check.h"

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

void bytes_map_init(BytesMap* m, size_t expected) {
    m->cap = pow2_at_least(2 * expected);
    m->count = 0;
    m->slots = calloc_check(m->cap, sizeof(BytesSlot));
    m->arena_cap = 1024 + 8 * expected;
    m->arena_len = 0;
    m->arena = malloc_check(m->arena_cap);
}

void bytes_map_free(BytesMap* m) {
    free(m->slots);
    free(m->arena);
    memset(m, 0, sizeof(*m));
}

static void bytes_map_grow(BytesMap* m) {
    size_t cap = m->cap * 2;
    BytesSlot* slots = calloc_check(cap, sizeof(BytesSlot));
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].hash) continue;
        size_t j = m->slots[i].hash & (cap - 1);
        while (slots[j].hash) j = (j + 1) & (cap - 1);
        slots[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
}

static size_t arena_append(BytesMap* m, const unsigned char* s, size_t n) {
    if (m->arena_len + n > m->arena_cap) {
        while (m->arena_len + n > m->arena_cap) m->arena_cap *= 2;
        unsigned char* a = realloc(m->arena, m->arena_cap);
        if (!a) fail("out of memory growing a string table to %zu bytes", m->arena_cap);
        m->arena = a;
    }
    memcpy(m->arena + m->arena_len, s, n);
    m->arena_len += n;
    return m->arena_len - n;
}

int64_t* bytes_map_upsert(BytesMap* m, const unsigned char* s, size_t n, uint64_t h, int64_t init, int* inserted) {
    if (2 * (m->count + 1) > m->cap) bytes_map_grow(m);
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        BytesSlot* e = &m->slots[i];
        if (e->hash == h && e->len == n && memcmp(m->arena + e->offset, s, n) == 0) {
            if (inserted) *inserted = 0;
            return &e->value;
        }
        if (e->hash == 0) {
            e->hash = h;
            e->len = (uint32_t)n;
            e->offset = arena_append(m, s, n);
            e->value = init;
            m->count++;
            if (inserted) *inserted = 1;
            return &e->value;
        }
    }
}

void pair_map_init(PairMap* m, size_t expected) {
    m->cap = pow2_at_least(2 * expected);
    m->count = 0;
    m->keys = malloc_check(m->cap * sizeof(uint64_t));
    m->values = malloc_check(m->cap * sizeof(int32_t));
    memset(m->keys, 0xFF, m->cap * sizeof(uint64_t));
}

void pair_map_free(PairMap* m) {
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof(*m));
}

static void pair_map_insert_new(uint64_t* keys, int32_t* values, size_t cap, uint64_t key, int32_t value) {
    size_t i = pair_slot(key, cap);
    while (keys[i] != PAIR_EMPTY && keys[i] != key) i = (i + 1) & (cap - 1);
    keys[i] = key;
    values[i] = value;
}

static void pair_map_grow(PairMap* m) {
    PairMap g;
    pair_map_init(&g, m->cap);      // twice the slots
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] != PAIR_EMPTY) pair_map_insert_new(g.keys, g.values, g.cap, m->keys[i], m->values[i]);
    g.count = m->count;
    pair_map_free(m);
    *m = g;
}

void pair_map_set(PairMap* m, uint64_t key, int32_t value) {
    if (2 * (m->count + 1) > m->cap) pair_map_grow(m);
    size_t i = pair_slot(key, m->cap);
    while (m->keys[i] != PAIR_EMPTY && m->keys[i] != key) i = (i + 1) & (m->cap - 1);
    if (m->keys[i] == PAIR_EMPTY) m->count++;
    m->keys[i] = key;
    m->values[i] = value;
}
