// Fuzz target: a model checkpoint through gpt_load_checkpoint (model/checkpoint.c) with the CPU
// kernels; a model that loads is freed again. Every input goes in as it is and re-signed (its
// whole-file checksum computed again), so that mutated header slots reach the checks behind the
// checksum. Every error must name the file.
#include "model/gpt.h"
#include "test/fuzz/harness.h"

static void load_checkpoint(void* path) {
    GPT model;
    gpt_load_checkpoint(&model, path, default_kernels());
    gpt_free(&model);
}

#define MODEL_CHECKSUM_SLOT 14     // docs/FORMATS.md

static void try_checkpoint(const char* path) {
    const char* message = fuzz_run(load_checkpoint, (void*)path);
    if (message && !fuzz_names(message, path)) fuzz_finding("an error that does not name the checkpoint", message);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try_checkpoint(fuzz_input_file(data, size));
    const char* resigned = fuzz_resigned_file(data, size, MODEL_CHECKSUM_SLOT);
    if (resigned) try_checkpoint(resigned);
    return 0;
}
