// Proves that the CUDA toolkit, cuBLASLt and NCCL compile and link here (make cuda_check; CI runs
// it without a GPU). On a machine with a GPU, running the binary prints the device count and the
// library versions it linked against.
#include <cstdio>
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <nccl.h>

__global__ void add_one(float* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += 1.0f;
}

int main() {
    int devices = 0;
    cudaError_t err = cudaGetDeviceCount(&devices);
    int nccl_version = 0;
    ncclGetVersion(&nccl_version);
    printf("CUDA devices: %d (%s); cuBLASLt %zu; NCCL %d\n", err == cudaSuccess ? devices : 0,
           cudaGetErrorString(err), cublasLtGetVersion(), nccl_version);
    if (err != cudaSuccess || devices == 0) return 0;
    float* x;
    cudaMalloc(&x, sizeof(float));
    cudaMemset(x, 0, sizeof(float));
    add_one<<<1, 32>>>(x, 1);
    float host = 0.0f;
    cudaMemcpy(&host, x, sizeof(float), cudaMemcpyDeviceToHost);
    cudaFree(x);
    printf("kernel ran: %s\n", host == 1.0f ? "yes" : "NO");
    return host == 1.0f ? 0 : 1;
}
