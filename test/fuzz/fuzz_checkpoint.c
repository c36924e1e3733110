// Fuzz target: a model checkpoint through gpt_load_checkpoint (model/checkpoint.c) with the CPU
// kernels; a model that loads is freed again. Every error must name the file.
#include "model/gpt.h"
#include "test/fuzz/harness.h"

static void load_checkpoint(void* path) {
    GPT model;
    gpt_load_checkpoint(&model, path, default_kernels());
    gpt_free(&model);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* path = fuzz_input_file(data, size);
    const char* message = fuzz_run(load_checkpoint, (void*)path);
    if (message && !fuzz_names(message, path)) fuzz_finding("an error that does not name the checkpoint", message);
    return 0;
}
