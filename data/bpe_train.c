// Byte-level BPE training (rules in tokenizer.h). Words are the pieces of GPT-2's pre-tokenization,
// counted once each with their frequency. Every pair of adjacent tokens keeps its total count and
// the list of words it occurs in; a max-heap (count, then smallest pair) with lazy deletion picks
// the next merge, and only the words that hold the merged pair are rewritten, so a merge costs
// the size of those words, not of the corpus.
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "data/pretokenize.h"
#include "data/tokenizer_internal.h"

struct BpeCounts { BytesMap words; };   // word bytes -> frequency

BpeCounts* bpe_counts_new(void) {
    BpeCounts* c = malloc_check(sizeof(BpeCounts));
    bytes_map_init(&c->words, 1 << 16);
    return c;
}

void bpe_counts_add(BpeCounts* c, const unsigned char* text, size_t len) {
    for (size_t i = 0; i < len;) {
        size_t j = pretok_next(text, len, i);
        int64_t* freq = bytes_map_upsert(&c->words, text + i, j - i, bytes_hash(text + i, j - i), 0, NULL);
        (*freq)++;
        i = j;
    }
}

size_t bpe_counts_num_words(const BpeCounts* c) { return c->words.count; }

void bpe_counts_free(BpeCounts* c) {
    bytes_map_free(&c->words);
    free(c);
}

typedef struct {
    int64_t count;
    int32_t a, b;
    int32_t* words;          // words that held this pair when it was counted (may hold stale ones)
    int32_t num_words, cap_words;
    int32_t stamp;           // last merge step that touched this pair
    int32_t banned;          // its token would be longer than the file format allows
} Pair;

typedef struct { int64_t count; int32_t a, b, pair; } HeapItem;

typedef struct {
    // words: symbols in one pool, each word a [start, start+len) slice that shrinks as it merges
    int32_t num_words;
    int64_t* freq;
    size_t* start;
    int32_t* len;
    int32_t* syms;
    int32_t* word_stamp;
    // pairs
    PairMap pair_ids;
    Pair* pairs;
    int32_t num_pairs, cap_pairs;
    int32_t* touched;
    int32_t num_touched, cap_touched, step;
    HeapItem* heap;
    size_t heap_len, heap_cap;
    // the vocabulary so far
    unsigned char** tok;
    int* tok_len;
    int num_tokens;
    BytesMap tok_ids;        // token bytes -> id
    int* merges;
    int num_merges;
} Trainer;

static void* grow(void* p, size_t* cap, size_t need, size_t elem) {
    if (need <= *cap) return p;
    while (*cap < need) *cap = *cap ? 2 * *cap : 64;
    void* q = realloc(p, *cap * elem);
    if (!q) fail("out of memory training the tokenizer (%zu x %zu bytes)", *cap, elem);
    return q;
}

static int heap_better(const HeapItem* x, const HeapItem* y) {
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

static void heap_push(Trainer* tr, HeapItem v) {
    tr->heap = grow(tr->heap, &tr->heap_cap, tr->heap_len + 1, sizeof(HeapItem));
    size_t i = tr->heap_len++;
    while (i > 0 && heap_better(&v, &tr->heap[(i - 1) / 2])) { tr->heap[i] = tr->heap[(i - 1) / 2]; i = (i - 1) / 2; }
    tr->heap[i] = v;
}

static HeapItem heap_pop(Trainer* tr) {
    HeapItem top = tr->heap[0], v = tr->heap[--tr->heap_len];
    size_t i = 0, n = tr->heap_len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_better(&tr->heap[c + 1], &tr->heap[c])) c++;
        if (!heap_better(&tr->heap[c], &v)) break;
        tr->heap[i] = tr->heap[c];
        i = c;
    }
    if (n) tr->heap[i] = v;
    return top;
}

static int32_t pair_id(Trainer* tr, int a, int b) {
    uint64_t key = pair_key(a, b);
    int32_t id = pair_map_get(&tr->pair_ids, key);
    if (id >= 0) return id;
    size_t cap = (size_t)tr->cap_pairs;
    tr->pairs = grow(tr->pairs, &cap, (size_t)tr->num_pairs + 1, sizeof(Pair));
    tr->cap_pairs = (int32_t)cap;
    id = tr->num_pairs++;
    memset(&tr->pairs[id], 0, sizeof(Pair));
    tr->pairs[id].a = a;
    tr->pairs[id].b = b;
    tr->pairs[id].stamp = -1;
    pair_map_set(&tr->pair_ids, key, id);
    return id;
}

// count(a, b) += delta; word >= 0 joins the pair's word list. Marks the pair as touched this step.
static void pair_add(Trainer* tr, int a, int b, int64_t delta, int32_t word) {
    int32_t id = pair_id(tr, a, b);      // may move tr->pairs
    Pair* p = &tr->pairs[id];
    p->count += delta;
    if (word >= 0 && (p->num_words == 0 || p->words[p->num_words - 1] != word)) {
        size_t cap = (size_t)p->cap_words;
        p->words = grow(p->words, &cap, (size_t)p->num_words + 1, sizeof(int32_t));
        p->cap_words = (int32_t)cap;
        p->words[p->num_words++] = word;
    }
    if (p->stamp != tr->step) {
        p->stamp = tr->step;
        size_t cap = (size_t)tr->cap_touched;
        tr->touched = grow(tr->touched, &cap, (size_t)tr->num_touched + 1, sizeof(int32_t));
        tr->cap_touched = (int32_t)cap;
        tr->touched[tr->num_touched++] = id;
    }
}

static void push_touched(Trainer* tr) {
    for (int32_t i = 0; i < tr->num_touched; i++) {
        const Pair* p = &tr->pairs[tr->touched[i]];
        if (p->count > 0 && !p->banned) heap_push(tr, (HeapItem){p->count, p->a, p->b, tr->touched[i]});
    }
    tr->num_touched = 0;
}

// Appends a token (tok and tok_len have room for the whole vocabulary).
static int add_token(Trainer* tr, const unsigned char* s, int n) {
    int id = tr->num_tokens++;
    tr->tok[id] = malloc_check(n + 1);
    memcpy(tr->tok[id], s, n);
    tr->tok_len[id] = n;
    bytes_map_upsert(&tr->tok_ids, s, n, bytes_hash(s, n), id, NULL);
    return id;
}

static void load_words(Trainer* tr, const BpeCounts* c) {
    const BytesMap* m = &c->words;
    tr->num_words = (int32_t)m->count;
    tr->freq = malloc_check(m->count * sizeof(int64_t));
    tr->start = malloc_check(m->count * sizeof(size_t));
    tr->len = malloc_check(m->count * sizeof(int32_t));
    tr->word_stamp = calloc_check(m->count + 1, sizeof(int32_t));
    tr->syms = malloc_check((m->arena_len + 1) * sizeof(int32_t));
    size_t w = 0, pos = 0;
    for (size_t i = 0; i < m->cap; i++) {         // slot order: deterministic for a given corpus
        const BytesSlot* e = &m->slots[i];
        if (!e->hash) continue;
        const unsigned char* s = bytes_map_key(m, e);
        tr->freq[w] = e->value;
        tr->start[w] = pos;
        tr->len[w] = (int32_t)e->len;
        for (uint32_t k = 0; k < e->len; k++) tr->syms[pos++] = s[k];
        w++;
    }
}

static void count_pairs(Trainer* tr) {
    tr->step = 0;
    for (int32_t w = 0; w < tr->num_words; w++) {
        const int32_t* s = tr->syms + tr->start[w];
        for (int32_t k = 0; k + 1 < tr->len[w]; k++) pair_add(tr, s[k], s[k + 1], tr->freq[w], w);
    }
    push_touched(tr);
}

// Rewrites word w with every (a, b), left to right, as token t; moves the pair counts along.
static void merge_word(Trainer* tr, int32_t w, int a, int b, int t) {
    int32_t* s = tr->syms + tr->start[w];
    int32_t n = tr->len[w], k = 0;
    while (k + 1 < n && !(s[k] == a && s[k + 1] == b)) k++;
    if (k + 1 >= n) return;                       // a stale entry: the pair left this word
    int64_t f = tr->freq[w];
    for (k = 0; k + 1 < n; k++) pair_add(tr, s[k], s[k + 1], -f, -1);
    int32_t m = 0;
    for (k = 0; k < n;) {
        if (k + 1 < n && s[k] == a && s[k + 1] == b) { s[m++] = t; k += 2; }
        else s[m++] = s[k++];
    }
    tr->len[w] = m;
    for (k = 0; k + 1 < m; k++) pair_add(tr, s[k], s[k + 1], f, s[k] == t || s[k + 1] == t ? w : -1);
}

// Merges the pair; returns 1 if that made a new token.
static int apply_merge(Trainer* tr, int32_t pid) {
    int a = tr->pairs[pid].a, b = tr->pairs[pid].b;
    int la = tr->tok_len[a], lb = tr->tok_len[b];
    unsigned char joined[2 * TOKENIZER_MAX_TOKEN_BYTES];
    memcpy(joined, tr->tok[a], la);
    memcpy(joined + la, tr->tok[b], lb);
    const int64_t* existing = bytes_map_find(&tr->tok_ids, joined, la + lb, bytes_hash(joined, la + lb));
    int t = existing ? (int)*existing : add_token(tr, joined, la + lb);
    tr->step++;
    for (int32_t i = 0; i < tr->pairs[pid].num_words; i++) {
        int32_t w = tr->pairs[pid].words[i];
        if (tr->word_stamp[w] == tr->step) continue;
        tr->word_stamp[w] = tr->step;
        merge_word(tr, w, a, b, t);
    }
    push_touched(tr);
    return !existing;
}

static void run_merges(Trainer* tr, int max_merges) {
    while (tr->num_merges < max_merges && tr->heap_len > 0) {
        HeapItem top = heap_pop(tr);
        Pair* p = &tr->pairs[top.pair];
        if (p->banned || p->count != top.count || p->count <= 0) continue;   // stale entry
        if (tr->tok_len[p->a] + tr->tok_len[p->b] > TOKENIZER_MAX_TOKEN_BYTES) { p->banned = 1; continue; }
        int a = p->a, b = p->b;
        if (apply_merge(tr, top.pair)) {
            tr->merges[2 * tr->num_merges] = a;
            tr->merges[2 * tr->num_merges + 1] = b;
            tr->num_merges++;
        }
    }
}

static void to_tokenizer(Trainer* tr, Tokenizer* t) {
    tokenizer_alloc(t, tr->num_tokens + 1, tr->num_tokens, "trained tokenizer");
    for (int i = 0; i < tr->num_tokens; i++) tokenizer_set_token(t, i, tr->tok[i], tr->tok_len[i]);
    tokenizer_set_token(t, t->eot_token, (const unsigned char*)TOKENIZER_EOT_TEXT, (int)strlen(TOKENIZER_EOT_TEXT));
    t->num_merges = tr->num_merges;
    t->merges = tr->merges;
    tr->merges = NULL;
    tokenizer_finish(t, "trained tokenizer");
}

static void trainer_free(Trainer* tr) {
    free(tr->freq); free(tr->start); free(tr->len); free(tr->syms); free(tr->word_stamp);
    for (int32_t i = 0; i < tr->num_pairs; i++) free(tr->pairs[i].words);
    free(tr->pairs); free(tr->touched); free(tr->heap);
    pair_map_free(&tr->pair_ids);
    for (int i = 0; i < tr->num_tokens; i++) free(tr->tok[i]);
    free(tr->tok); free(tr->tok_len); free(tr->merges);
    bytes_map_free(&tr->tok_ids);
}

void tokenizer_train(Tokenizer* t, const BpeCounts* c, int vocab_size) {
    if (vocab_size < 257) fail("a vocabulary needs at least 257 tokens (256 bytes + EOT), not %d", vocab_size);
    Trainer tr;
    memset(&tr, 0, sizeof(tr));
    bytes_map_init(&tr.tok_ids, vocab_size);
    pair_map_init(&tr.pair_ids, 1 << 16);
    tr.tok = malloc_check(sizeof(unsigned char*) * (size_t)vocab_size);
    tr.tok_len = malloc_check(sizeof(int) * (size_t)vocab_size);
    for (int b = 0; b < 256; b++) {
        unsigned char byte = (unsigned char)b;
        add_token(&tr, &byte, 1);
    }
    tr.merges = malloc_check(sizeof(int) * 2 * (size_t)(vocab_size - 256));
    load_words(&tr, c);
    count_pairs(&tr);
    run_merges(&tr, vocab_size - 257);
    to_tokenizer(&tr, t);
    trainer_free(&tr);
}

void tokenizer_train_text(Tokenizer* t, const unsigned char* text, size_t len, int vocab_size) {
    BpeCounts* c = bpe_counts_new();
    bpe_counts_add(c, text, len);
    tokenizer_train(t, c, vocab_size);
    bpe_counts_free(c);
}
