// Token shards, the data loader (fixed windows, document starts or BOS windows) and the sink analysis's
// probe sets; see shards.h.
#include "data/shards.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"

#define SCAN_TOKENS (1u << 20)   // tokens read at a time when scanning a shard for document starts

void shard_write(const char* path, const uint16_t* tokens, size_t n) {
    if (n > INT32_MAX) fail("%s: %zu tokens do not fit one shard (at most %d)", path, n, INT32_MAX);
    int header[SHARD_HEADER_INTS] = {0};
    header[0] = SHARD_MAGIC;
    header[1] = SHARD_VERSION;
    header[2] = (int)n;
    FILE* f = atomic_open(path);
    fwrite_check(header, sizeof(int), SHARD_HEADER_INTS, f, path);
    fwrite_check(tokens, sizeof(uint16_t), n, f, path);
    atomic_commit(f, path);
}

size_t shard_check(const char* path) {
    FILE* f = fopen_check(path, "rb");
    int header[SHARD_HEADER_INTS];
    long size = file_size(f);
    if (size < (long)sizeof(header))
        fail("%s: not a token shard (%ld bytes, shorter than the 1024-byte header)", path, size);
    fread_check(header, sizeof(int), SHARD_HEADER_INTS, f, path);
    fclose(f);
    if (header[0] != SHARD_MAGIC)
        fail("%s: not a token shard (magic %d, expected %d); was it written by ./prepare?",
             path, header[0], SHARD_MAGIC);
    if (header[1] != SHARD_VERSION)
        fail("%s: shard version %d is not supported (expected %d)", path, header[1], SHARD_VERSION);
    long expected = (long)sizeof(header) + 2L * header[2];   // an int32 count: no overflow in a long
    if (header[2] < 0 || size != expected)
        fail("%s: shard is truncated or corrupt (header says %d tokens = %ld bytes, file has %ld)",
             path, header[2], expected, size);
    for (int i = 3; i < SHARD_HEADER_INTS; i++)
        if (header[i] != 0)
            fail("%s: shard header slot %d holds %d, where the format has zero: the file is corrupt", path, i,
                 header[i]);
    return (size_t)header[2];
}

static size_t batch_tokens(const DataLoader* dl) { return (size_t)dl->B * dl->T; }
static int reads_documents(const DataLoader* dl) { return dl->layout == LAYOUT_DOCUMENTS; }
static int reads_bos_windows(const DataLoader* dl) { return dl->layout == LAYOUT_BOS_WINDOWS; }
// documents and BOS windows: batch s of rank r takes B entries of the shard's list of sequence starts
static int takes_entries(const DataLoader* dl) { return dl->layout != LAYOUT_WINDOWS; }
static size_t window_step(const DataLoader* dl) { return (size_t)dl->T - 1; }   // BOS windows: shard tokens per sequence
static const char* current_path(const DataLoader* dl) { return dl->shards.gl_pathv[dl->shard_order[dl->shard_pos]]; }

static void glob_shards(const char* pattern, glob_t* found) {
    int rc = glob(pattern, 0, NULL, found);
    if (rc == GLOB_NOMATCH) fail("%s: no shard matches this pattern", pattern);
    if (rc != 0) fail("%s: glob failed (%d)", pattern, rc);
}

static void seek_token(FILE* f, const char* path, size_t token) {
    if (fseek(f, (long)(SHARD_HEADER_INTS * sizeof(int) + token * sizeof(uint16_t)), SEEK_SET) != 0)
        fail("%s: cannot seek to token %zu", path, token);
}

static void check_tokens(const uint16_t* tokens, size_t n, int vocab_size, const char* path, size_t token0) {
    for (size_t i = 0; i < n; i++) {
        if (tokens[i] >= vocab_size)
            fail("%s: token id %d at token %zu is outside the model's vocabulary (V=%d); "
                 "were the shards made with another tokenizer?", path, tokens[i], token0 + i, vocab_size);
    }
}

// Every token id of a shard of ntok tokens below vocab_size, read in blocks: the largest id of a block
// is a max the compiler vectorizes, so the check runs at the speed the shard is read. A failure names
// the first id outside the vocabulary.
static void check_shard_tokens(const char* path, size_t ntok, int vocab_size) {
    if (vocab_size > UINT16_MAX) return;   // every uint16 is a token
    FILE* f = fopen_check(path, "rb");
    seek_token(f, path, 0);
    uint16_t* block = malloc_for(path, sizeof(uint16_t) * SCAN_TOKENS);
    for (size_t pos = 0; pos < ntok; pos += SCAN_TOKENS) {
        size_t n = ntok - pos < SCAN_TOKENS ? ntok - pos : SCAN_TOKENS;
        fread_check(block, sizeof(uint16_t), n, f, path);
        uint16_t most = 0;
        for (size_t i = 0; i < n; i++) most = block[i] > most ? block[i] : most;
        if (most >= vocab_size) check_tokens(block, n, vocab_size, path, pos);
    }
    free(block);
    fclose(f);
}

// Positions p of the EOT token with p + len <= the shard's token count (documents that start
// there have len tokens in this shard), in order: stores the first max of them in out (out = NULL
// only counts) and returns how many, at most max. *inputs_read (if not NULL) gets the size of the
// union of [p, p + len - 1) over them: the positions the sequences' inputs read. One pass in
// blocks, so memory does not grow with the shard.
static size_t scan_document_starts(const char* path, int eot, size_t len, int* out, size_t max, size_t* inputs_read) {
    size_t ntok = shard_check(path), found = 0, covered = 0, previous = 0;
    if (inputs_read) *inputs_read = 0;
    if (ntok < len) return 0;
    size_t end = ntok - len + 1;          // usable starts lie in [0, end)
    FILE* f = fopen_check(path, "rb");
    seek_token(f, path, 0);
    uint16_t* block = malloc_for(path, sizeof(uint16_t) * SCAN_TOKENS);
    for (size_t pos = 0; pos < end && found < max; pos += SCAN_TOKENS) {
        size_t n = end - pos < SCAN_TOKENS ? end - pos : SCAN_TOKENS;
        fread_check(block, sizeof(uint16_t), n, f, path);
        for (size_t i = 0; i < n && found < max; i++) {
            if (block[i] != eot) continue;
            if (out) out[found] = (int)(pos + i);
            if (found) covered += pos + i - previous < len - 1 ? pos + i - previous : len - 1;
            previous = pos + i;
            found++;
        }
    }
    free(block);
    fclose(f);
    if (inputs_read && found) *inputs_read = covered + len - 1;
    return found;
}

// Batches of one rank in a shard with `count` samples (fixed windows), document starts or BOS windows.
static int shard_batches(const DataLoader* dl, int count) {
    return takes_entries(dl) ? (int)((size_t)count / ((size_t)dl->B * dl->num_ranks)) : count;
}

// The current shard's order: one RNG draw per shard, which dataloader_seek replays.
static void order_samples(DataLoader* dl) {
    int count = dl->shard_counts[dl->shard_order[dl->shard_pos]];
    dl->shard_num_samples = shard_batches(dl, count);
    if (dl->shuffle) rng_permutation(&dl->rng, dl->sample_order, count);
    else for (int i = 0; i < count; i++) dl->sample_order[i] = i;
}

static void open_shard(DataLoader* dl) {
    const char* path = current_path(dl);
    if (dl->file) fclose(dl->file);
    dl->file = fopen_check(path, "rb");
    order_samples(dl);
    if (!reads_documents(dl) || dl->shard_num_samples == 0) return;   // a shard without a full batch is never read
    size_t count = (size_t)dl->shard_counts[dl->shard_order[dl->shard_pos]];
    if (scan_document_starts(path, dl->bos_token, (size_t)dl->T + 1, dl->doc_starts, count, NULL) != count)
        fail("%s: shard changed since the loader opened it (fewer than its %zu document starts)", path, count);
}

// The epoch's RNG: BOS windows draw their shift first, then the shards' order, then each shard's.
static void start_epoch(DataLoader* dl, int epoch) {
    dl->epoch = epoch;
    dl->shard_pos = 0;
    dl->sample_pos = 0;
    rng_seed(&dl->rng, dl->seed + (uint64_t)epoch);
    dl->window_shift = reads_bos_windows(dl) ? (int)(rng_u32(&dl->rng) % (uint32_t)window_step(dl)) : 0;
    if (dl->shuffle) rng_permutation(&dl->rng, dl->shard_order, dl->num_shards);
    else for (int i = 0; i < dl->num_shards; i++) dl->shard_order[i] = i;
    open_shard(dl);
}

// Samples of a shard of ntok tokens in fixed windows; a shard shorter than one batch is an error.
static int count_windows(const DataLoader* dl, const char* path, size_t ntok) {
    size_t need = batch_tokens(dl) * dl->num_ranks + 1;
    if (ntok < need)
        fail("%s: shard has %zu tokens, fewer than one batch needs (%d ranks x B=%d x T=%d + 1 = %zu); "
             "use a smaller -b or -t", path, ntok, dl->num_ranks, dl->B, dl->T, need);
    return (int)((ntok - 1) / (need - 1));
}

// BOS windows of a shard of ntok tokens: window w reads T tokens from shift + w (T-1), for any shift
// up to T-2, so every epoch has as many; a shard with fewer than one batch of them is an error.
static int count_bos_windows(const DataLoader* dl, const char* path, size_t ntok) {
    size_t step = window_step(dl), need = (size_t)dl->num_ranks * dl->B * step + step;
    if (ntok < need)
        fail("%s: shard has %zu tokens, fewer than one batch of BOS windows needs (%d ranks x B=%d x (T-1)=%zu, "
             "+ T-1 for the epoch's shift = %zu); use a smaller -b or -t", path, ntok, dl->num_ranks, dl->B, step,
             need);
    return (int)((ntok - step) / step);
}

static void fail_no_full_batch(const DataLoader* dl, const char* pattern) {
    size_t total = 0;
    int most = 0;
    for (int i = 0; i < dl->num_shards; i++) {
        total += (size_t)dl->shard_counts[i];
        if (dl->shard_counts[i] > most) most = dl->shard_counts[i];
    }
    fail("%s: no shard has a full batch of document starts: %zu found in %d shard%s (EOT %d with T+1 = %d tokens "
         "in its shard), at most %d in one, but a batch needs %d (%d ranks x B=%d); use a smaller -b or -t",
         pattern, total, dl->num_shards, dl->num_shards == 1 ? "" : "s", dl->bos_token, dl->T + 1, most,
         dl->num_ranks * dl->B, dl->num_ranks, dl->B);
}

// The loader's arguments, checked before anything is read: B = 0 would divide by zero below.
static void check_loader_args(const char* pattern, int B, int T, int rank, int num_ranks, int vocab_size,
                              int layout, int bos_token) {
    if (B < 1 || T < 1) fail("%s: batch size B=%d and sequence length T=%d must be at least 1", pattern, B, T);
    if (num_ranks < 1 || rank < 0 || rank >= num_ranks)
        fail("%s: rank %d is not one of the %d ranks", pattern, rank, num_ranks);
    if (layout < LAYOUT_WINDOWS || layout > LAYOUT_BOS_WINDOWS) fail("%s: unknown data layout %d", pattern, layout);
    if (layout == LAYOUT_BOS_WINDOWS && T < 2)
        fail("%s: bos=window needs T >= 2 (the BOS and at least one token of the shard), T=%d", pattern, T);
    if (layout != LAYOUT_WINDOWS && (bos_token < 0 || bos_token >= vocab_size))
        fail("%s: BOS token %d is outside the model's vocabulary (V=%d)", pattern, bos_token, vocab_size);
}

// Shard i's count of samples, usable document starts or BOS windows; adds the positions its
// sequences read to dl->distinct_tokens when it gives a batch.
static int count_shard(DataLoader* dl, int i, size_t ntok) {
    const char* path = dl->shards.gl_pathv[i];
    if (reads_bos_windows(dl)) return count_bos_windows(dl, path, ntok);
    if (!reads_documents(dl)) return count_windows(dl, path, ntok);
    size_t read;
    int count = (int)scan_document_starts(path, dl->bos_token, (size_t)dl->T + 1, NULL, SIZE_MAX, &read);
    if (shard_batches(dl, count) > 0) dl->distinct_tokens += read;
    return count;
}

void dataloader_init(DataLoader* dl, const char* pattern, int B, int T, int rank, int num_ranks,
                     int shuffle, uint64_t seed, int vocab_size, int layout, int bos_token) {
    check_loader_args(pattern, B, T, rank, num_ranks, vocab_size, layout, bos_token);
    memset(dl, 0, sizeof(*dl));
    dl->B = B; dl->T = T; dl->rank = rank; dl->num_ranks = num_ranks; dl->layout = layout;
    dl->shuffle = shuffle; dl->seed = seed; dl->vocab_size = vocab_size; dl->bos_token = bos_token;
    dl->pattern = malloc_check(strlen(pattern) + 1);
    strcpy(dl->pattern, pattern);
    glob_shards(pattern, &dl->shards);
    dl->num_shards = (int)dl->shards.gl_pathc;
    dl->shard_counts = malloc_check(sizeof(int) * dl->num_shards);
    int most = 1;   // the longest order any shard needs
    for (int i = 0; i < dl->num_shards; i++) {
        size_t ntok = shard_check(dl->shards.gl_pathv[i]);
        check_shard_tokens(dl->shards.gl_pathv[i], ntok, vocab_size);   // all of it, batches read or not
        dl->shard_counts[i] = count_shard(dl, i, ntok);
        if (dl->shard_counts[i] > most) most = dl->shard_counts[i];
        dl->num_tokens += ntok;
        dl->num_batches += shard_batches(dl, dl->shard_counts[i]);
    }
    if (dl->num_batches == 0) fail_no_full_batch(dl, pattern);
    dl->num_sequences = (size_t)dl->num_batches * B * num_ranks;
    // fixed and BOS windows read disjoint inputs (BOS windows T-1 of the shard's tokens each)
    if (!reads_documents(dl)) dl->distinct_tokens = dl->num_sequences * (reads_bos_windows(dl) ? T - 1 : T);
    dl->shard_order = malloc_check(sizeof(int) * dl->num_shards);
    dl->sample_order = malloc_for(pattern, sizeof(int) * most);
    if (reads_documents(dl)) dl->doc_starts = malloc_for(pattern, sizeof(int) * most);
    dl->buffer = malloc_for(pattern, sizeof(uint16_t) * (batch_tokens(dl) + 1));
    dl->inputs = malloc_for(pattern, sizeof(int) * batch_tokens(dl));
    dl->targets = malloc_for(pattern, sizeof(int) * batch_tokens(dl));
    start_epoch(dl, 0);
}

const char* dataloader_layout_name(int layout) {
    static const char* const names[] = {"fixed windows (bos=0)", "document starts (bos=1)", "BOS windows (bos=window)"};
    return layout >= LAYOUT_WINDOWS && layout <= LAYOUT_BOS_WINDOWS ? names[layout] : "an unknown layout";
}

size_t dataloader_epoch_tokens(const DataLoader* dl) {
    return takes_entries(dl) ? dl->num_sequences * dl->T : dl->num_tokens;
}

// Tokens [token0, token0 + n] of the open shard: n inputs and, shifted by one, n targets.
static void load_row(DataLoader* dl, size_t token0, size_t n, int* inputs, int* targets) {
    const char* path = current_path(dl);
    seek_token(dl->file, path, token0);
    fread_check(dl->buffer, sizeof(uint16_t), n + 1, dl->file, path);
    check_tokens(dl->buffer, n + 1, dl->vocab_size, path, token0);
    for (size_t i = 0; i < n; i++) {
        inputs[i] = dl->buffer[i];
        targets[i] = dl->buffer[i + 1];
    }
}

// The BOS window at token o: inputs [BOS, x_o .. x_o+T-2], targets [x_o .. x_o+T-1].
static void load_bos_window(DataLoader* dl, size_t o, int* inputs, int* targets) {
    load_row(dl, o, window_step(dl), inputs + 1, targets + 1);
    inputs[0] = dl->bos_token;
    targets[0] = dl->buffer[0];
}

static void load_batch(DataLoader* dl) {
    size_t n = batch_tokens(dl);
    if (!takes_entries(dl)) {
        size_t sample = (size_t)dl->sample_order[dl->sample_pos];
        load_row(dl, sample * n * dl->num_ranks + (size_t)dl->rank * n, n, dl->inputs, dl->targets);
        return;
    }
    size_t first = ((size_t)dl->sample_pos * dl->num_ranks + dl->rank) * dl->B;   // this rank's B entries
    for (int b = 0; b < dl->B; b++) {
        size_t entry = (size_t)dl->sample_order[first + b];
        int *inputs = dl->inputs + (size_t)b * dl->T, *targets = dl->targets + (size_t)b * dl->T;
        if (reads_documents(dl)) load_row(dl, (size_t)dl->doc_starts[entry], dl->T, inputs, targets);
        else load_bos_window(dl, (size_t)dl->window_shift + entry * window_step(dl), inputs, targets);
    }
}

void dataloader_next_batch(DataLoader* dl) {
    while (dl->sample_pos >= dl->shard_num_samples) {   // the shard's end (documents: or a shard without a batch)
        dl->shard_pos++;
        dl->sample_pos = 0;
        if (dl->shard_pos >= dl->num_shards) start_epoch(dl, dl->epoch + 1);
        else open_shard(dl);
    }
    load_batch(dl);
    dl->sample_pos++;
}
void dataloader_reset(DataLoader* dl) { start_epoch(dl, 0); }

static void fail_no_position(const DataLoader* dl, int epoch, int shard_pos, int sample_pos) {
    fail("%s: the saved loader position (epoch %d, shard %d, batch %d) does not exist in these %d shard%s "
         "with B=%d, T=%d; were the shards, -b or -t changed?", dl->pattern, epoch, shard_pos, sample_pos,
         dl->num_shards, dl->num_shards == 1 ? "" : "s", dl->B, dl->T);
}

void dataloader_seek(DataLoader* dl, int epoch, int shard_pos, int sample_pos) {
    // INT_MAX: the next epoch's number would overflow
    if (epoch < 0 || epoch == INT_MAX || shard_pos < 0 || shard_pos >= dl->num_shards)
        fail_no_position(dl, epoch, shard_pos, sample_pos);
    start_epoch(dl, epoch);
    // sample_pos == the shard's batch count is the shard's end: the next batch opens the next shard
    if (sample_pos < 0 || sample_pos > shard_batches(dl, dl->shard_counts[dl->shard_order[shard_pos]]))
        fail_no_position(dl, epoch, shard_pos, sample_pos);
    for (int s = 1; s < shard_pos; s++) {   // replay the RNG draws of the shards before, without reading them
        dl->shard_pos = s;
        order_samples(dl);
    }
    if (shard_pos > 0) {
        dl->shard_pos = shard_pos;
        open_shard(dl);
    }
    dl->sample_pos = sample_pos;
}

void dataloader_free(DataLoader* dl) {
    if (dl->file) fclose(dl->file);
    free(dl->pattern);
    globfree(&dl->shards);
    free(dl->shard_counts);
    free(dl->shard_order);
    free(dl->sample_order);
    free(dl->doc_starts);
    free(dl->buffer);
    free(dl->inputs);
    free(dl->targets);
}

// A probe set (shard_document_starts, shard_line_starts): what its spans start at, and their length.
typedef struct {
    int eot;                         // document starts: spans start at this token, and hold no other
    const unsigned char* line_end;   // line starts (eot = -1): spans start right after these tokens
    int vocab_size;
    size_t len;
    size_t skipped;                  // document starts passed over: another EOT inside the span
} ProbeSet;

static int holds(const uint16_t* tokens, size_t n, int token) {
    for (size_t i = 0; i < n; i++)
        if (tokens[i] == token) return 1;
    return 0;
}

// Whether the scan's token makes a candidate: an EOT, where a document span starts; a line end, after
// which a line span starts.
static int is_candidate(const ProbeSet* p, int token) {
    return p->line_end ? p->line_end[token] : token == p->eot;
}

// The first max spans of one shard into out (max, len); returns how many. One pass in blocks for the
// candidates, each span read on a second handle and checked.
static size_t scan_probes(const char* path, ProbeSet* p, int* out, size_t max) {
    size_t ntok = shard_check(path), found = 0, next_free = 0;   // line starts: spans do not overlap
    if (ntok < p->len || max == 0) return 0;
    size_t end = ntok - p->len + 1;   // spans start in [0, end)
    FILE *f = fopen_check(path, "rb"), *g = fopen_check(path, "rb");
    seek_token(f, path, 0);
    uint16_t* block = malloc_for(path, sizeof(uint16_t) * SCAN_TOKENS);
    uint16_t* span = malloc_for(path, sizeof(uint16_t) * p->len);
    for (size_t pos = 0; pos < end && found < max; pos += SCAN_TOKENS) {
        size_t n = end - pos < SCAN_TOKENS ? end - pos : SCAN_TOKENS;
        fread_check(block, sizeof(uint16_t), n, f, path);
        check_tokens(block, n, p->vocab_size, path, pos);
        for (size_t i = 0; i < n && found < max; i++) {
            size_t start = pos + i + (p->line_end != NULL);   // a line starts after its predecessor's end
            if (!is_candidate(p, block[i]) || start >= end || start < next_free) continue;
            seek_token(g, path, start);
            fread_check(span, sizeof(uint16_t), p->len, g, path);
            check_tokens(span, p->len, p->vocab_size, path, start);
            if (!p->line_end && holds(span + 1, p->len - 1, p->eot)) {
                p->skipped++;
                continue;
            }
            for (size_t t = 0; t < p->len; t++) out[found * p->len + t] = span[t];
            found++;
            next_free = start + p->len;
        }
    }
    free(span);
    free(block);
    fclose(g);
    fclose(f);
    return found;
}

// The first n spans of the probe set over the shards of pattern, in glob order.
static size_t probe_spans(const char* pattern, ProbeSet* p, int n, int* tokens_out) {
    if (p->len < 1 || n < 0) fail("%s: %d sequences of %zu tokens: the length must be at least 1", pattern, n, p->len);
    glob_t shards;
    glob_shards(pattern, &shards);
    size_t found = 0;
    for (size_t i = 0; i < shards.gl_pathc && found < (size_t)n; i++)
        found += scan_probes(shards.gl_pathv[i], p, tokens_out + found * p->len, (size_t)n - found);
    globfree(&shards);
    return found;
}

size_t shard_document_starts(const char* pattern, int eot, int vocab_size, int len, int n, int* tokens_out,
                             size_t* skipped) {
    ProbeSet p = {eot, NULL, vocab_size, len > 0 ? (size_t)len : 0, 0};
    size_t found = probe_spans(pattern, &p, n, tokens_out);
    if (skipped) *skipped = p.skipped;
    return found;
}

size_t shard_line_starts(const char* pattern, const unsigned char* line_end, int vocab_size, int len, int n,
                         int* tokens_out) {
    ProbeSet p = {-1, line_end, vocab_size, len > 0 ? (size_t)len : 0, 0};
    return probe_spans(pattern, &p, n, tokens_out);
}

size_t shard_read_stream(const char* pattern, int vocab_size, size_t n, int* tokens_out) {
    glob_t shards;
    glob_shards(pattern, &shards);
    size_t got = 0;
    for (size_t i = 0; i < shards.gl_pathc && got < n; i++) {
        const char* path = shards.gl_pathv[i];
        size_t ntok = shard_check(path), take = ntok < n - got ? ntok : n - got;
        FILE* f = fopen_check(path, "rb");
        seek_token(f, path, 0);
        uint16_t* block = malloc_for(path, sizeof(uint16_t) * (take + 1));
        fread_check(block, sizeof(uint16_t), take, f, path);
        fclose(f);
        check_tokens(block, take, vocab_size, path, 0);
        for (size_t t = 0; t < take; t++) tokens_out[got + t] = block[t];
        got += take;
        free(block);
    }
    globfree(&shards);
    return got;
}
