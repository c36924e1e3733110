// Fuzz target: a token shard through shard_check, the data loader (fixed windows, document starts and
// BOS windows, a few batches, a seek to a position taken from the input) and the sink analysis's
// probe sets (shard_document_starts, shard_line_starts). The
// loader's settings come from header slots 3..8, which the format leaves zero, so the mutator
// varies them along with the file; the shard the loader reads has slots 3..9 zero again (shard_check
// refuses a set slot), unless slot 9 is odd. Every error must name the shard.
#include <stdlib.h>
#include <string.h>

#include "data/shards.h"
#include "test/fuzz/harness.h"

#define V 257
#define EOT 256

static int header_int(const uint8_t* data, size_t size, int slot) {
    int v = 0;
    if (size >= (size_t)(slot + 1) * sizeof(int)) memcpy(&v, data + slot * sizeof(int), sizeof(int));
    return v;
}

typedef struct {
    const char* path;
    int B, T, shuffle, epoch, shard, sample;
} Case;

static void read_shard(void* ctx) {
    const Case* c = ctx;
    shard_check(c->path);
    for (int layout = LAYOUT_WINDOWS; layout <= LAYOUT_BOS_WINDOWS; layout++) {
        if (layout == LAYOUT_BOS_WINDOWS && c->T < 2) continue;   // refused before reading: no shard error
        DataLoader dl;
        dataloader_init(&dl, c->path, c->B, c->T, 0, 1, c->shuffle, 1, V, layout, EOT);
        for (int i = 0; i < 3; i++) dataloader_next_batch(&dl);
        dataloader_seek(&dl, c->epoch, c->shard, c->sample);
        dataloader_next_batch(&dl);
        dataloader_free(&dl);
    }
    int rows[4 * 32];
    shard_document_starts(c->path, EOT, V, c->T, 4, rows, NULL);
    unsigned char line_end[V] = {0};
    line_end['\n'] = 1;
    shard_line_starts(c->path, line_end, V, c->T, 4, rows);
}

// The input with slots 3..9 (the loader's settings and the switch) zeroed; slot 9 odd: as it is.
static const char* shard_file(const uint8_t* data, size_t size) {
    if (size < 10 * sizeof(int) || header_int(data, size, 9) & 1) return fuzz_input_file(data, size);
    uint8_t* copy = malloc(size);
    if (!copy) fuzz_finding("harness", "out of memory copying the input");
    memcpy(copy, data, size);
    memset(copy + 3 * sizeof(int), 0, 7 * sizeof(int));
    const char* path = fuzz_input_file(copy, size);
    free(copy);
    return path;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Case c = {.path = shard_file(data, size)};
    c.B = 1 + (unsigned)header_int(data, size, 3) % 4;
    c.T = 1 + (unsigned)header_int(data, size, 4) % 32;
    c.shuffle = header_int(data, size, 5) & 1;
    // the position as signed bytes: negative, valid and past-the-end values all a mutation away
    c.epoch = (int8_t)header_int(data, size, 6);
    c.shard = (int8_t)header_int(data, size, 7);
    c.sample = (int8_t)header_int(data, size, 8);
    const char* message = fuzz_run(read_shard, &c);
    if (message && !fuzz_names(message, c.path)) fuzz_finding("an error that does not name the shard", message);
    return 0;
}
