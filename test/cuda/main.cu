// test_cuda: runs the CUDA-vs-CPU kernel checks (test/cuda/test_*.cu) of every group, or of the groups
// named on the command line, and exits non-zero on any failure. Prints one line per check and
// "N passed, M failed" last. A CUDA or cuBLASLt error ends the process (fail()), so that one group's
// error hides no other group's verdicts, scripts/gpu_check.sh runs each group in a process of its own.
//   test_cuda [GROUP...]        GROUP: layers matmul attention model mlstm mixers stream
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
int test_stream(void);

struct Group {
    const char* name;
    int (*run)(void);   // returns its number of failures
};

static const Group GROUPS[] = {
    {"layers", test_layers}, {"matmul", test_matmul}, {"attention", test_attention},
    {"model", test_model},   {"mlstm", test_mlstm},   {"mixers", test_mixers}, {"stream", test_stream},
};
static const int NUM_GROUPS = sizeof(GROUPS) / sizeof(GROUPS[0]);

static const Group* find_group(const char* name) {
    for (const Group& g : GROUPS)
        if (strcmp(g.name, name) == 0) return &g;
    fprintf(stderr, "error: test_cuda: no group '%s' (groups:", name);
    for (const Group& g : GROUPS) fprintf(stderr, " %s", g.name);
    fprintf(stderr, ")\n");
    return NULL;
}

int main(int argc, char** argv) {
    const Group* chosen[NUM_GROUPS];
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const Group* g = find_group(argv[i]);
        if (!g) return 2;
        if (n < NUM_GROUPS) chosen[n++] = g;
    }
    if (n == 0)
        for (const Group& g : GROUPS) chosen[n++] = &g;
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        fprintf(stderr, "error: test_cuda: no CUDA device; run it on a machine with an NVIDIA GPU\n");
        return 1;
    }
    cudaDeviceProp prop;
    cuda_check(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s (sm_%d%d), precision %s\n", prop.name, prop.major, prop.minor,
           sizeof(floatX) == 2 ? "bf16" : "fp32");
    int failed = 0;
    for (int i = 0; i < n; i++) failed += chosen[i]->run();
    int total = checks_run();
    printf("%d passed, %d failed\n", total - failed, failed);
    return failed ? 1 : 0;
}
