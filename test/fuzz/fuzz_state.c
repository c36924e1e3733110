// Fuzz target: a training state file through gpt_load_state (model/checkpoint.c) for a fixed tiny
// model, then what a resume does with it: the train loader (over a shard written at start) seeks
// to the state's position and reads two batches. Every input goes in as it is and re-signed (its
// checksum computed again), so that mutated header values reach the checks behind the checksum.
// Every error must name the state file or the shard. test/fuzz/seeds.py makes its seeds with the
// same model, shard and loader settings.
#include <stdint.h>

#include "data/shards.h"
#include "model/gpt.h"
#include "test/fuzz/harness.h"

#define MODEL "L=1,C=8,H=2,T=8,V=257"
#define SHARD_TOKENS 4096          // token i is i % 257
#define B 2
#define T 8
#define STATE_CHECKSUM_SLOT 18     // docs/FORMATS.md

static GPT model;
static const char* shard;

typedef struct {
    const char* path;
} Case;

static void resume(void* ctx) {
    const Case* c = ctx;
    TrainState s;
    gpt_load_state(&model, &s, c->path);
    DataLoader dl;
    dataloader_init(&dl, shard, B, T, 0, 1, 1, (uint64_t)s.seed, 257, LAYOUT_WINDOWS, -1);
    dataloader_seek(&dl, s.epoch, s.shard_pos, s.sample_pos);
    dataloader_next_batch(&dl);
    dataloader_next_batch(&dl);
    dataloader_free(&dl);
}

// The model, its optimizer memory (allocated here, so that loading a state does not) and the shard.
static void set_up(void) {
    GPTConfig c = gpt_config_from_descriptor(MODEL);
    gpt_build(&model, &c, default_kernels());
    size_t bytes = model.num_parameters * sizeof(float);
    model.m_memory = model.k->alloc(bytes);
    model.v_memory = model.k->alloc(bytes);
    static uint16_t tokens[SHARD_TOKENS];
    for (int i = 0; i < SHARD_TOKENS; i++) tokens[i] = (uint16_t)(i % 257);
    shard = fuzz_scratch_path("train_000000.bin");
    shard_write(shard, tokens, SHARD_TOKENS);
}

static void try_state(const char* path) {
    Case c = {.path = path};
    const char* message = fuzz_run(resume, &c);
    if (message && !fuzz_names(message, c.path) && !fuzz_names(message, shard))
        fuzz_finding("an error that names neither the state file nor the shard", message);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (!model.k) set_up();
    try_state(fuzz_input_file(data, size));
    const char* resigned = fuzz_resigned_file(data, size, STATE_CHECKSUM_SLOT);
    if (resigned) try_state(resigned);
    return 0;
}
