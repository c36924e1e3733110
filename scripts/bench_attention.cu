// The CUDA attention kernels alone: forward and forward+backward, causal softmax, T in {1k, 4k,
// 16k}, head dims 64 and 128, 16 heads, B*T = 16k tokens; prints achieved TFLOP/s and the fraction
// of the chip's dense bf16 peak (given as the first argument in TFLOP/s; 989 for H100/H200 SXM).
//   make bench_attention_cuda && ./bench_attention_cuda 989
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "common/cuda_common.cuh"

extern "C" {
#include "attention/attention_cuda.h"
}

static float time_ms(int reps, void (*fn)(void*), void* arg) {
    cudaEvent_t start, stop;
    cuda_check(cudaEventCreate(&start));
    cuda_check(cudaEventCreate(&stop));
    fn(arg);   // warm-up
    cuda_check(cudaEventRecord(start));
    for (int i = 0; i < reps; i++) fn(arg);
    cuda_check(cudaEventRecord(stop));
    cuda_check(cudaEventSynchronize(stop));
    float ms = 0.0f;
    cuda_check(cudaEventElapsedTime(&ms, start, stop));
    return ms / reps;
}

struct Problem {
    int B, T, C, NH;
    floatX *qkv, *out, *dout, *dqkv;
    float* stat;
    AttnScore score;
};

static void forward(void* p) {
    Problem* q = (Problem*)p;
    attention_forward_cuda(q->out, q->stat, q->qkv, q->B, q->T, q->T, q->T, q->C, q->NH, q->score);
}

static void forward_backward(void* p) {
    Problem* q = (Problem*)p;
    forward(p);
    attention_backward_cuda(q->dqkv, q->dout, q->qkv, q->out, q->stat, q->B, q->T, q->C, q->NH, q->score);
}

static floatX* random_device(size_t n) {
    std::vector<floatX> h(n);
    for (size_t i = 0; i < n; i++) h[i] = floatx_from_float((float)rand() / RAND_MAX - 0.5f);
    floatX* d;
    cuda_check(cudaMalloc(&d, n * sizeof(floatX)));
    cuda_check(cudaMemcpy(d, h.data(), n * sizeof(floatX), cudaMemcpyHostToDevice));
    return d;
}

int main(int argc, char** argv) {
    double peak = argc > 1 ? atof(argv[1]) : 989.0;
    printf("| T | head dim | fwd ms | fwd TFLOP/s | fwd %% peak | fwd+bwd ms | fwd+bwd TFLOP/s | %% peak |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (int hs : {64, 128}) {
        for (int T : {1024, 4096, 16384}) {
            Problem p = {16384 / T, T, 16 * hs, 16, nullptr, nullptr, nullptr, nullptr, nullptr, {0, 0.0f, 0, 0}};
            size_t rows = (size_t)p.B * T;
            p.qkv = random_device(rows * 3 * p.C);
            p.dout = random_device(rows * p.C);
            cuda_check(cudaMalloc(&p.out, rows * p.C * sizeof(floatX)));
            cuda_check(cudaMalloc(&p.dqkv, rows * 3 * p.C * sizeof(floatX)));
            cuda_check(cudaMalloc(&p.stat, rows * p.NH * sizeof(float)));
            // causal: half of the 4 B NH T^2 hs FLOPs of QK^T and PV; the backward does 2.5x the forward
            double fwd_flops = 2.0 * p.B * p.NH * (double)T * T * hs;
            float fwd = time_ms(10, forward, &p), both = time_ms(10, forward_backward, &p);
            double fwd_tf = fwd_flops / (fwd * 1e9), both_tf = 3.5 * fwd_flops / (both * 1e9);
            printf("| %d | %d | %.3f | %.1f | %.1f%% | %.3f | %.1f | %.1f%% |\n", T, hs, fwd, fwd_tf,
                   100 * fwd_tf / peak, both, both_tf, 100 * both_tf / peak);
            cudaFree(p.qkv); cudaFree(p.dout); cudaFree(p.out); cudaFree(p.dqkv); cudaFree(p.stat);
        }
    }
    return 0;
}
