// The CUDA token-mixer kernels alone, forward and forward+backward, at T in {1k, 4k, 16k}, head sizes
// 64 and 128, 16 heads, B*T = 16k tokens (the same B and heads for every mixer): the flash softmax
// kernel, sigmoid attention (b = -ln T) and the mLSTM cell (docs/MODEL.md section 11; exp and sig input
// gates, chunk 64 and 128). Prints time, achieved TFLOP/s, the fraction of the chip's dense bf16 peak
// (the first argument in TFLOP/s; 989 for H100/H200 SXM) and the forward+backward time relative to
// softmax at the same shape. The FLOP counts (per (b, h), causal, multiply-add = 2):
//   attention   F = 2 T^2 hs                   half of the 4 T^2 hs of Q K^T and P V
//   mLSTM       F = 2 T L hs + 4 T hs^2        chunk L: the intra-chunk Q K^T and (S o D) V (causal half
//                                              of 4 T L hs), the inter-chunk Q C_k and state update K^T V
//   fwd+bwd     3.5 F for both: the backward's 5 products per product pair of the forward (S or the
//               states recomputed, dP or the state gradients, dQ, dK, dV), as FlashAttention counts;
//               work a kernel repeats beyond that (the mLSTM dK/dV kernel recomputes dP) is not counted.
// The shapes can be made smaller (scripts/gpu_check.sh --emulate runs it in the CPU emulation of CUDA):
//   make bench_attention_cuda && ./bench_attention_cuda [PEAK [TOKENS [HEADS [REPS [T...]]]]]
//   (defaults 989, 16384 tokens, 16 heads, 10 reps, T = 1024 4096 16384)
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "common/cuda_common.cuh"

extern "C" {
#include "common/check.h"
#include "attention/mlstm.h"
#include "attention/softmax_sigmoid.h"
}

struct Problem {
    int B, T, C, NH;
    floatX *qkv, *out, *dout, *dqkv, *gates, *dgates;
    float *stat, *m_out;
    int mlstm, chunk, sig_igate;   // mlstm = 0: attention with `score`
    AttnScore score;
};

static void forward(const Problem& p) {
    if (p.mlstm)
        mlstm_chunkwise_forward_cuda(p.out, p.stat, p.m_out, p.qkv, p.gates, p.B, p.T, p.C, p.NH, p.chunk,
                                     p.sig_igate);
    else
        attention_forward_cuda(p.out, p.stat, p.qkv, p.B, p.T, p.T, p.T, p.C, p.NH, p.score);
}

static void forward_backward(const Problem& p) {
    forward(p);
    if (p.mlstm)
        mlstm_chunkwise_backward_cuda(p.dqkv, p.dgates, p.dout, p.qkv, p.gates, p.stat, p.m_out, p.B, p.T, p.C, p.NH,
                                      p.chunk, p.sig_igate);
    else
        attention_backward_cuda(p.dqkv, p.dout, p.qkv, p.out, p.stat, p.B, p.T, p.C, p.NH, p.score);
}

// Mean ms of one call of fn over `reps` calls after one warm-up call.
static float time_ms(int reps, void (*fn)(const Problem&), const Problem& p) {
    cudaEvent_t start, stop;
    cuda_check(cudaEventCreate(&start));
    cuda_check(cudaEventCreate(&stop));
    fn(p);
    cuda_check(cudaEventRecord(start));
    for (int i = 0; i < reps; i++) fn(p);
    cuda_check(cudaEventRecord(stop));
    cuda_check(cudaEventSynchronize(stop));
    float ms = 0.0f;
    cuda_check(cudaEventElapsedTime(&ms, start, stop));
    cuda_check(cudaEventDestroy(start));
    cuda_check(cudaEventDestroy(stop));
    return ms / reps;
}

// n values uniform in [lo, hi) on the device.
static floatX* random_device(size_t n, float lo, float hi) {
    std::vector<floatX> h(n);
    for (size_t i = 0; i < n; i++) h[i] = floatx_from_float(lo + (hi - lo) * (float)rand() / RAND_MAX);
    floatX* d;
    cuda_check(cudaMalloc(&d, n * sizeof(floatX)));
    cuda_check(cudaMemcpy(d, h.data(), n * sizeof(floatX), cudaMemcpyHostToDevice));
    return d;
}

// The kernels' per-call scratch (cudaMallocAsync) stays in the pool between calls, as in the trainer
// (model/cuda_kernels.cu).
static void keep_pool_memory(void) {
    cudaMemPool_t pool;
    cuda_check(cudaDeviceGetDefaultMemPool(&pool, 0));
    uint64_t threshold = UINT64_MAX;
    cuda_check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
}

struct Mixer {
    const char* name;
    int mlstm, chunk, sig_igate, sigmoid;
};

static const Mixer MIXERS[] = {
    {"softmax", 0, 0, 0, 0},
    {"sigmoid b=-ln T", 0, 0, 0, 1},
    {"mLSTMexp chunk 64", 1, 64, 0, 0},
    {"mLSTMexp chunk 128", 1, 128, 0, 0},
    {"mLSTMsig chunk 64", 1, 64, 1, 0},
    {"mLSTMsig chunk 128", 1, 128, 1, 0},
};

static double flops_forward(const Problem& p, int hs) {
    double bh = (double)p.B * p.NH, T = p.T;
    return p.mlstm ? bh * (2.0 * T * p.chunk * hs + 4.0 * T * hs * hs) : bh * 2.0 * T * T * hs;
}

int main(int argc, char** argv) {
    const double peak = argc > 1 ? atof(argv[1]) : 989.0;
    const int tokens = argc > 2 ? atoi(argv[2]) : 16384, NH = argc > 3 ? atoi(argv[3]) : 16,
              reps = argc > 4 ? atoi(argv[4]) : 10;
    std::vector<int> lengths = {1024, 4096, 16384};
    if (argc > 5) lengths.assign(argc - 5, 0);
    for (int i = 5; i < argc; i++) lengths[i - 5] = atoi(argv[i]);
    if (peak <= 0 || NH < 1 || reps < 1) fail("bench_attention_cuda: PEAK, HEADS and REPS must be positive");
    for (int T : lengths)
        if (T < 1 || tokens % T != 0) fail("bench_attention_cuda: T=%d must be positive and divide TOKENS=%d", T, tokens);
    keep_pool_memory();
    printf("token mixers alone: B*T = %d tokens, %d heads, bf16 peak %.0f TFLOP/s; FLOPs per (b, h): attention "
           "2 T^2 hs, mLSTM 2 T L hs + 4 T hs^2 (chunk L), fwd+bwd 3.5x (scripts/bench/bench_attention.cu)\n\n",
           tokens, NH, peak);
    printf("| mixer | T | head dim | fwd ms | fwd TFLOP/s | fwd %% peak | fwd+bwd ms | fwd+bwd TFLOP/s | %% peak | "
           "fwd+bwd time / softmax |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    for (int hs : {64, 128}) {
        for (int T : lengths) {
            Problem p = {};
            p.B = tokens / T, p.T = T, p.C = NH * hs, p.NH = NH;
            const size_t rows = (size_t)p.B * T;
            p.qkv = random_device(rows * 3 * p.C, -0.5f, 0.5f);
            p.dout = random_device(rows * p.C, -0.5f, 0.5f);
            p.gates = random_device(rows * 2 * NH, -4.0f, 4.0f);
            cuda_check(cudaMalloc(&p.out, rows * p.C * sizeof(floatX)));
            cuda_check(cudaMalloc(&p.dqkv, rows * 3 * p.C * sizeof(floatX)));
            cuda_check(cudaMalloc(&p.dgates, rows * 2 * NH * sizeof(floatX)));
            cuda_check(cudaMalloc(&p.stat, rows * NH * sizeof(float)));
            cuda_check(cudaMalloc(&p.m_out, rows * NH * sizeof(float)));
            float softmax_both = 0.0f;
            for (const Mixer& mx : MIXERS) {
                p.mlstm = mx.mlstm, p.chunk = mx.chunk, p.sig_igate = mx.sig_igate;
                p.score = {mx.sigmoid, mx.sigmoid ? -logf((float)T) : 0.0f, 0, 0};
                const double fwd_flops = flops_forward(p, hs);
                const float fwd = time_ms(reps, forward, p), both = time_ms(reps, forward_backward, p);
                if (!mx.mlstm && !mx.sigmoid) softmax_both = both;
                const double fwd_tf = fwd_flops / (fwd * 1e9), both_tf = 3.5 * fwd_flops / (both * 1e9);
                printf("| %s | %d | %d | %.3f | %.1f | %.1f%% | %.3f | %.1f | %.1f%% | %.2f |\n", mx.name, T, hs, fwd,
                       fwd_tf, 100 * fwd_tf / peak, both, both_tf, 100 * both_tf / peak, both / softmax_both);
            }
            for (void* ptr : {(void*)p.qkv, (void*)p.dout, (void*)p.gates, (void*)p.out, (void*)p.dqkv,
                              (void*)p.dgates, (void*)p.stat, (void*)p.m_out})
                cuda_check(cudaFree(ptr));
        }
    }
    cuda_check(cudaGetLastError());
    return 0;
}
