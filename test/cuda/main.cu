// test_cuda: runs every CUDA-vs-CPU kernel check (test/cuda/test_*.cu) and exits non-zero on any
// failure. Prints one line per check and "N passed, M failed" last.
#include <cstdio>
#include <cstring>

#include "test/cuda/harness.cuh"

int& checks_counter() {
    static int count = 0;
    return count;
}

int test_layers(void);
int test_matmul(void);
int test_attention(void);
int test_model(void);
int test_mlstm(void);
int test_mixers(void);

// With arguments, only the groups named (layers matmul attention model mlstm mixers), e.g. to rerun
// one group in the slow CPU emulation: build/emu/FP32/test_cuda_emu layers model.
static bool wanted(int argc, char** argv, const char* group) {
    if (argc < 2) return true;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], group)) return true;
    return false;
}

int main(int argc, char** argv) {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        fprintf(stderr, "error: test_cuda: no CUDA device; run it on a machine with an NVIDIA GPU\n");
        return 1;
    }
    cudaDeviceProp prop;
    cuda_check(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s (sm_%d%d), precision %s\n", prop.name, prop.major, prop.minor,
           sizeof(floatX) == 2 ? "bf16" : "fp32");
    static const struct {
        const char* name;
        int (*run)(void);
    } groups[] = {{"layers", test_layers}, {"matmul", test_matmul}, {"attention", test_attention},
                  {"model", test_model},   {"mlstm", test_mlstm},   {"mixers", test_mixers}};
    int failed = 0;
    for (const auto& g : groups)
        if (wanted(argc, argv, g.name)) failed += g.run();
    int total = checks_run();
    printf("%d passed, %d failed\n", total - failed, failed);
    return failed ? 1 : 0;
}
