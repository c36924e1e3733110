// The CUDA twins of attention/softmax_sigmoid.c (softmax_sigmoid.h): causal attention with softmax or
// sigmoid scores, with or without ALiBi, FlashAttention-2 style. The entry points pick a kernel
// family for each call: the tensor-core kernels (attention/softmax_sigmoid_tc.cu) for head sizes 32,
// 64 and 128 in the bf16 build, the row-wise fp32 kernels (attention/softmax_sigmoid_rowwise.cu) for
// everything else (other head sizes, the FP32 build, decoding with Tq < 16); what the two share is
// in attention/softmax_sigmoid.cuh (design, the score map's policy, determinism). Here too: the
// backward's pre-pass D_i = dO_i . O_i (softmax, normalized sigmoid), which both families read; then
// each family runs a dK/dV kernel and a separate dQ kernel that recompute S, so every element of dqkv
// has one owner: deterministic, no atomics.
#include "attention/softmax_sigmoid.cuh"

namespace flash {

// D (B,NH,T) = rowsum(dO * O) per head: one warp per (b, h, i).
__global__ void __launch_bounds__(THREADS)
    attention_backward_dsum_kernel(float* dsum, const floatD* dout, const floatD* out, int B, int T, int C, int NH) {
    const int hs = C / NH, lane = threadIdx.x % 32;
    const long row = (long)blockIdx.x * (THREADS / 32) + threadIdx.x / 32;
    if (row >= (long)B * NH * T) return;
    const int i = (int)(row % T), h = (int)(row / T % NH), b = (int)(row / T / NH);
    const size_t at = ((size_t)b * T + i) * C + (size_t)h * hs;
    float sum = 0.0f;
    for (int c = lane; c < hs; c += 32) sum += to_float(dout[at + c]) * to_float(out[at + c]);
    sum = warp_sum(sum);
    if (lane == 0) dsum[row] = sum;   // row = (b NH + h) T + i
}

// D (B,NH,T) = rowsum(dO * O) into a stream-ordered scratch buffer the caller frees with cudaFreeAsync.
static float* dsum_scratch(const floatD* dout, const floatD* out, int B, int T, int C, int NH) {
    float* dsum = nullptr;
    cuda_check(cudaMallocAsync(reinterpret_cast<void**>(&dsum), (size_t)B * NH * T * sizeof(float), 0));
    attention_backward_dsum_kernel<<<ceil_div((long)B * NH * T, THREADS / 32), THREADS>>>(dsum, dout, out, B, T, C,
                                                                                         NH);
    cuda_check_launch();
    return dsum;
}

}   // namespace flash

// Tensor cores where they apply (bf16, hs 32, 64 or 128, at least 16 query rows, 16-byte aligned tensors),
// else the row-wise kernel.
extern "C" void attention_forward_cuda(floatX* out, float* stat, const floatX* qkv, int B, int Tq, int Tk, int Tmax,
                                       int C, int NH, AttnScore score) {
    if (B <= 0 || Tq <= 0) return;
    const int hs = C / NH;
    const float scale = 1.0f / sqrtf((float)hs);
#ifdef ATTNLAB_BF16
    if (flash::tensor_core_head_size(hs) && Tq >= 16 && aligned16(out) && aligned16(qkv)) {
        flash::forward_tc(as_device(out), stat, as_device(qkv), B, Tq, Tk, Tmax, C, NH, scale, score);
        return;
    }
#endif
    flash::forward_rowwise(as_device(out), stat, as_device(qkv), B, Tq, Tk, Tmax, C, NH, scale, score);
}

// Tensor cores where they apply (bf16, hs 32, 64 or 128, 16-byte aligned tensors), else the row-wise kernels.
extern "C" void attention_backward_cuda(floatX* dqkv, const floatX* dout, const floatX* qkv, const floatX* out,
                                        const float* stat, int B, int T, int C, int NH, AttnScore score) {
    if (B <= 0 || T <= 0) return;
    const int hs = C / NH;
    const float scale = 1.0f / sqrtf((float)hs);
    // D = rowsum(dO * O) for softmax and normalized sigmoid; plain sigmoid needs none
    float* dsum = flash::score_mode(score) == flash::MODE_SIGMOID
                      ? nullptr
                      : flash::dsum_scratch(as_device(dout), as_device(out), B, T, C, NH);
#ifdef ATTNLAB_BF16
    if (flash::tensor_core_head_size(hs) && aligned16(dqkv) && aligned16(dout) && aligned16(qkv)) {
        flash::backward_tc(as_device(dqkv), as_device(dout), as_device(qkv), stat, dsum, B, T, C, NH, scale, score);
    } else
#endif
        flash::backward_rowwise(as_device(dqkv), as_device(dout), as_device(qkv), stat, dsum, B, T, C, NH, scale,
                                score);
    if (dsum) cuda_check(cudaFreeAsync(dsum, 0));
}

// For analysis (the sink metric, docs/MODEL.md section 13): the weights the forward used, from the
// saved row statistic; the row-wise family's weights kernel, whatever the precision and head size.
extern "C" void attention_weights_cuda(float* weights, const floatX* qkv, const float* stat, int B, int T, int C,
                                       int NH, AttnScore score) {
    if ((long)B * NH * T * T == 0) return;
    flash::weights_rowwise(weights, as_device(qkv), stat, B, T, C, NH, 1.0f / sqrtf((float)(C / NH)), score);
}
