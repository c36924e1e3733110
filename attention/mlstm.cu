// The CUDA twins of attention/mlstm.c (mlstm.h): the mLSTM cell (docs/MODEL.md section 11)
// in its chunkwise form, in the spirit of Tiled Flash Linear Attention (Beck et al., arXiv 2503.14376):
// the chunk states are materialized by a kernel that runs over the chunks of each (b, h) in order
// (into a stream-ordered scratch buffer, cudaMallocAsync), and every output row of a chunk is its query
// read against the state entering the chunk plus the keys of the chunk up to itself. Same arguments,
// layouts, gradient convention (n_out and m_out constants) and accumulation (+=) as the CPU kernels.
//
// Two kernel families, as attention/softmax_sigmoid.cu, each in a file of its own (what the three
// files share: attention/mlstm.cuh):
//  - tensor-core kernels (attention/mlstm_tc.cu; bf16 build, head size 32, 64 or 128, chunk 64 or
//    128, 16-byte aligned tensors): mma.sync bf16 -> fp32 for the state products, Q K^T, (S * D) V
//    and their backward products, the gate matrix applied in registers;
//  - fp32 kernels (attention/mlstm_fp32.cu; everything else: the FP32 build, other head sizes, other
//    chunk sizes), which sum the log weights as the CPU does.
// This file: the entry points, which pick the family, and the two kernels outside the chunkwise form,
// fp32 in both builds: the recurrent step (decoding) and the analysis matrix.
//
// Determinism: no atomics anywhere; every output element (h, n_out, m_out, each element of dqkv and
// dgates, each scratch value) is written by exactly one thread, and every sum has a fixed order
// (warp shuffles in a fixed tree, loops and mma k-steps in a fixed order), so the results are bitwise
// reproducible run to run.
#include "attention/mlstm.cuh"

namespace mlstm {

// ---------------------------------------------------------------------------------------------------
// The recurrent step: one CTA per (b, h). Thread 0 computes the gates, the threads update n (over c),
// warp 0 reduces n.q in a fixed order, then each thread owns columns j of C: the update and the read-out.
constexpr int STEP_THREADS = 128;
__global__ void __launch_bounds__(STEP_THREADS)
    recurrent_step_kernel(floatD* h_out, float* c_state, float* n_state, float* m_state, const floatD* qkv,
                          const floatD* gates, int C, int NH, int sig_igate, float scale) {
    __shared__ float scal_s[4];
    const int hs = C / NH, h = blockIdx.x, b = blockIdx.y;
    const size_t bh = (size_t)b * NH + h;
    const floatD* q = qkv + (size_t)b * 3 * C + (size_t)h * hs;
    const floatD* kv = q + C;
    const floatD* v = q + 2 * C;
    float* Cm = c_state + bh * hs * hs;
    float* n = n_state + bh * hs;
    if (threadIdx.x == 0) {
        const floatD* g = gates + (size_t)b * 2 * NH + h;
        const float zi = soft_cap(to_float(g[0])), li = sig_igate ? log_sigmoid(zi) : zi;
        const float lf = log_sigmoid(soft_cap(to_float(g[NH])));
        const float m_old = m_state[bh];
        const float m_new = sig_igate ? 0.0f : fmaxf(lf + m_old, li);
        scal_s[0] = expf(lf + m_old - m_new);   // decay
        scal_s[1] = expf(li - m_new);           // input weight
        scal_s[2] = m_new;
    }
    __syncthreads();
    const float decay = scal_s[0], e = scal_s[1], m_new = scal_s[2];
    for (int c = threadIdx.x; c < hs; c += STEP_THREADS) n[c] = decay * n[c] + e * to_float(kv[c]);
    __syncthreads();
    if (threadIdx.x < 32) {
        float dot = 0.0f;
        for (int c = threadIdx.x; c < hs; c += 32) dot += scale * to_float(q[c]) * n[c];
        dot = warp_sum(dot);
        if (threadIdx.x == 0) {
            scal_s[3] = 1.0f / (fmaxf(fabsf(dot), expf(-m_new)) + MLSTM_EPS);
            m_state[bh] = m_new;
        }
    }
    __syncthreads();
    const float inv = scal_s[3];
    for (int j = threadIdx.x; j < hs; j += STEP_THREADS) {
        const float vj = to_float(v[j]);
        float sum = 0.0f;
        for (int c = 0; c < hs; c++) {
            const float x = decay * Cm[(size_t)c * hs + j] + e * to_float(kv[c]) * vj;
            Cm[(size_t)c * hs + j] = x;
            sum += scale * to_float(q[c]) * x;
        }
        h_out[(size_t)b * C + (size_t)h * hs + j] = from_float(sum * inv);
    }
}

// ---------------------------------------------------------------------------------------------------
// The analysis matrix: one thread per row (b, h, t): the log weights summed from t downwards (as the CPU),
// their max, then |q_t.k_s / sqrt(hs)| exp(logw_s - m) for s <= t and 0 after.
__global__ void __launch_bounds__(THREADS)
    score_matrix_kernel(float* weights, const floatD* qkv, const float* li_all, const float* lf_all, int B, int T,
                        int C, int NH, float scale) {
    const long row = (long)blockIdx.x * THREADS + threadIdx.x;
    if (row >= (long)B * NH * T) return;
    const int t = (int)(row % T);
    const size_t bh = (size_t)(row / T);
    const int h = (int)(bh % NH), b = (int)(bh / NH), hs = C / NH;
    const float* li = li_all + bh * T;
    const float* lf = lf_all + bh * T;
    float m = -INFINITY, acc = 0.0f;
    for (int s = t; s >= 0; s--) {
        m = fmaxf(m, acc + li[s]);
        acc += lf[s];
    }
    const size_t stride = 3 * (size_t)C;
    const floatD* q = qkv + ((size_t)b * T + t) * stride + (size_t)h * hs;
    float* w = weights + (size_t)row * T;
    for (int s = t + 1; s < T; s++) w[s] = 0.0f;
    acc = 0.0f;
    for (int s = t; s >= 0; s--) {
        const floatD* kr = qkv + ((size_t)b * T + s) * stride + C + (size_t)h * hs;
        float dot = 0.0f;
        for (int c = 0; c < hs; c++) dot += to_float(q[c]) * to_float(kr[c]);
        w[s] = fabsf(scale * dot) * expf(acc + li[s] - m);
        acc += lf[s];
    }
}

}   // namespace mlstm

static void check_chunk(const char* fn, int chunk) {
    if (chunk <= 0) fail("%s: chunk size %d is not positive; use a chunk size >= 1 (64 is usual)", fn, chunk);
}

extern "C" void mlstm_chunkwise_forward_cuda(floatX* h, float* n_out, float* m_out, const floatX* qkv,
                                             const floatX* gates, int B, int T, int C, int NH, int chunk,
                                             int sig_igate) {
    using namespace mlstm;
    check_chunk("mlstm_chunkwise_forward_cuda", chunk);
    if (B <= 0 || T <= 0) return;
#ifdef ATTNLAB_BF16
    if (tc_applies(C / NH, chunk) && aligned16(h) && aligned16(qkv)) {
        tc_forward(as_device(h), n_out, m_out, as_device(qkv), as_device(gates), B, T, C, NH, chunk, sig_igate);
        return;
    }
#endif
    fp32_forward(as_device(h), n_out, m_out, as_device(qkv), as_device(gates), B, T, C, NH, chunk, sig_igate);
}

extern "C" void mlstm_chunkwise_backward_cuda(floatX* dqkv, floatX* dgates, const floatX* dh, const floatX* qkv,
                                              const floatX* gates, const float* n_out, const float* m_out, int B,
                                              int T, int C, int NH, int chunk, int sig_igate) {
    using namespace mlstm;
    check_chunk("mlstm_chunkwise_backward_cuda", chunk);
    if (B <= 0 || T <= 0) return;
#ifdef ATTNLAB_BF16
    if (tc_applies(C / NH, chunk) && aligned16(dqkv) && aligned16(dh) && aligned16(qkv)) {
        tc_backward(as_device(dqkv), as_device(dgates), as_device(dh), as_device(qkv), as_device(gates), n_out, B, T,
                    C, NH, chunk, sig_igate);
        return;
    }
#endif
    fp32_backward(as_device(dqkv), as_device(dgates), as_device(dh), as_device(qkv), as_device(gates), n_out, m_out, B,
                  T, C, NH, chunk, sig_igate);
}

extern "C" void mlstm_recurrent_step_cuda(floatX* h, float* c_state, float* n_state, float* m_state,
                                          const floatX* qkv, const floatX* gates, int B, int C, int NH,
                                          int sig_igate) {
    using namespace mlstm;
    if (B <= 0) return;
    recurrent_step_kernel<<<dim3(NH, B), STEP_THREADS>>>(as_device(h), c_state, n_state, m_state, as_device(qkv),
                                                         as_device(gates), C, NH, sig_igate,
                                                         1.0f / sqrtf((float)(C / NH)));
    cuda_check_launch();
}

extern "C" void mlstm_score_matrix_cuda(float* weights, const floatX* qkv, const floatX* gates, int B, int T, int C,
                                        int NH, int sig_igate) {
    using namespace mlstm;
    if (B <= 0 || T <= 0) return;
    const Shape s = make_shape(B, T, C, NH, T, sig_igate);
    Scratch scratch(2 * Scratch::round(s.bhT()));
    float* li = scratch.take(s.bhT());
    float* lf = scratch.take(s.bhT());
    log_gates(li, lf, as_device(gates), s);
    score_matrix_kernel<<<ceil_div((long)s.bhT(), THREADS), THREADS>>>(weights, as_device(qkv), li, lf, B, T, C, NH,
                                                                      s.scale);
    cuda_check_launch();
}
