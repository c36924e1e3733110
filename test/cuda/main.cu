// test_cuda: runs every CUDA-vs-CPU kernel check (test/cuda/test_*.cu) and exits non-zero on any
// failure. Prints one line per check and "N passed, M failed" last.
#include <cstdio>

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

int main(void) {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        fprintf(stderr, "error: test_cuda: no CUDA device; run it on a machine with an NVIDIA GPU\n");
        return 1;
    }
    cudaDeviceProp prop;
    cuda_check(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s (sm_%d%d), precision %s\n", prop.name, prop.major, prop.minor,
           sizeof(floatX) == 2 ? "bf16" : "fp32");
    int failed = test_layers() + test_matmul() + test_attention() + test_model();
    failed += test_mlstm();
    failed += test_mixers();
    int total = checks_run();
    printf("%d passed, %d failed\n", total - failed, failed);
    return failed ? 1 : 0;
}
