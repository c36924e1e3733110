// The CUDA twins of attention/softmax_sigmoid.c (attention_cuda.h): causal attention with softmax or
// sigmoid scores, with or without ALiBi, FlashAttention-2 style (design, tiling, fragment layouts,
// ALiBi, determinism: attention/flash.cuh).
// Forward: tensor-core tiles for head sizes 32, 64 and 128 in the bf16 build, a row-wise fp32 kernel
// for everything else (other head sizes, the FP32 build, decoding with Tq < 16).
// Backward: a pre-pass computes D_i = dO_i . O_i (softmax, normalized sigmoid); then a dK/dV kernel
// (CTA per key block, looping over query tiles) and a separate dQ kernel (CTA per query block,
// looping over key tiles) each recompute S tile by tile, so every element of dqkv has one owner:
// deterministic, no atomics. Tensor cores as in the forward, row-wise fp32 kernels otherwise.
#include "attention/flash.cuh"

// Everything but the entry points lives in namespace flash, so its helpers hide any of the same name
// in the shared headers.
namespace flash {

// ---------------------------------------------------------------------------------------------------
// Row-wise fallback: one warp per query row (b, h, i), keys in chunks of 32 (a lane per key for the
// score), the output row accumulated in shared memory (a lane per 32nd channel), fp32 throughout.
// Shared memory per warp: the scaled query and the accumulator, 2 hs floats.
template <int MODE, bool ALIBI>
__global__ void __launch_bounds__(THREADS)
    attention_forward_rowwise_kernel(floatD* out, float* stat, const floatD* qkv, int B, int Tq, int Tk, int Tmax,
                                     int C, int NH, float scale, AttnScore score) {
    const int hs = C / NH, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const long row = (long)blockIdx.x * (THREADS / 32) + warp;
    if (row >= (long)B * NH * Tq) return;   // whole warps only: no block-wide barrier below
    const int i = (int)(row % Tq), h = (int)(row / Tq % NH), b = (int)(row / Tq / NH);
    const float bias = score.bias, slope = alibi_slope<ALIBI>(score, h, NH);
    float* q_s = dynamic_smem<float>() + (size_t)warp * 2 * hs;
    float* acc = q_s + hs;
    const size_t stride = 3 * (size_t)C;
    const floatD* head = qkv + (size_t)b * Tmax * stride + (size_t)h * hs;
    const int n_keys = Tk - Tq + i + 1;   // the query is position Tk - Tq + i = n_keys - 1
    for (int c = lane; c < hs; c += 32) {
        q_s[c] = scale * to_float(head[(size_t)(n_keys - 1) * stride + c]);
        acc[c] = 0.0f;
    }
    __syncwarp();
    float m = -INFINITY, l = 0.0f;   // softmax: running max and sum; normalized sigmoid: running sum
    for (int j0 = 0; j0 < n_keys; j0 += 32) {
        const int j = j0 + lane;
        float s = -INFINITY;
        if (j < n_keys) {
            const floatD* k = head + (size_t)j * stride + C;
            float dot = 0.0f;
            for (int c = 0; c < hs; c++) dot += q_s[c] * to_float(k[c]);
            s = add_alibi<ALIBI>(dot, slope, (float)(j - (n_keys - 1)));
        }
        float p;
        if (MODE == MODE_SOFTMAX) {
            const float m_new = fmaxf(m, warp_max(s));   // finite: lane 0 always holds a key
            const float alpha = expf(m - m_new);         // 0 on the first chunk (m = -inf)
            p = j < n_keys ? expf(s - m_new) : 0.0f;
            l = l * alpha + warp_sum(p);
            for (int c = lane; c < hs; c += 32) acc[c] *= alpha;
            m = m_new;
        } else {
            p = j < n_keys ? sigmoid(s + bias) : 0.0f;
            if (MODE == MODE_SIGMOID_NORM) l += warp_sum(p);
        }
        const int count = min(32, n_keys - j0);
        for (int jj = 0; jj < count; jj++) {
            const float w = __shfl_sync(0xffffffffu, p, jj);
            const floatD* v = head + (size_t)(j0 + jj) * stride + 2 * C;
            for (int c = lane; c < hs; c += 32) acc[c] += w * to_float(v[c]);
        }
    }
    const float inv = MODE == MODE_SOFTMAX         ? 1.0f / l
                      : MODE == MODE_SIGMOID_NORM ? 1.0f / (l + SIGMOID_NORM_EPS)
                                                  : 1.0f;
    floatD* out_row = out + ((size_t)b * Tq + i) * C + (size_t)h * hs;
    for (int c = lane; c < hs; c += 32) out_row[c] = from_float(acc[c] * inv);
    if (lane == 0)
        stat[((size_t)b * NH + h) * Tq + i] = MODE == MODE_SOFTMAX ? m + logf(l) : MODE == MODE_SIGMOID_NORM ? l : 0.0f;
}

template <int MODE, bool ALIBI>
static void launch_forward_rowwise(floatD* out, float* stat, const floatD* qkv, int B, int Tq, int Tk, int Tmax,
                                   int C, int NH, float scale, AttnScore score) {
    const size_t smem = (THREADS / 32) * 2 * (size_t)(C / NH) * sizeof(float);
    allow_smem(attention_forward_rowwise_kernel<MODE, ALIBI>, smem);
    attention_forward_rowwise_kernel<MODE, ALIBI><<<ceil_div((long)B * NH * Tq, THREADS / 32), THREADS, smem>>>(
        out, stat, qkv, B, Tq, Tk, Tmax, C, NH, scale, score);
    cuda_check_launch();
}

static void forward_rowwise(floatD* out, float* stat, const floatD* qkv, int B, int Tq, int Tk, int Tmax, int C,
                            int NH, float scale, AttnScore score) {
    with_score(score, [&](auto m, auto a) {
        launch_forward_rowwise<decltype(m)::value, decltype(a)::value>(out, stat, qkv, B, Tq, Tk, Tmax, C, NH, scale,
                                                                        score);
    });
}

#ifdef ATTNLAB_BF16
// ---------------------------------------------------------------------------------------------------
// Tensor-core forward: CTA = 64 query rows of one (b, h), 4 warps x 16 rows; 64-key tiles of K and V
// double buffered in shared memory: Q (64, HS+8), K and V (2 stages, 64, HS+8) bf16.
template <int HS> struct ForwardTiles {
    static constexpr int BR = 64, BC = 64, LD = HS + 8;
    static constexpr size_t SMEM = (size_t)(BR + 4 * BC) * LD * sizeof(bf16);   // 45 KB (hs 64), 85 KB (hs 128)
};

template <int HS, int MODE, bool ALIBI>
__global__ void __launch_bounds__(THREADS)
    attention_forward_flash_kernel(bf16* out, float* stat, const bf16* qkv, int Tq, int Tk, int Tmax, int C, int NH,
                                   float scale, AttnScore score) {
    constexpr int BR = ForwardTiles<HS>::BR, BC = ForwardTiles<HS>::BC, LD = ForwardTiles<HS>::LD;
    bf16* q_s = dynamic_smem<bf16>();
    bf16* k_s = q_s + BR * LD;       // [2][BC][LD]
    bf16* v_s = k_s + 2 * BC * LD;   // [2][BC][LD]
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BR, h = blockIdx.y, b = blockIdx.z;   // longest rows first
    const size_t stride = 3 * (size_t)C;
    const bf16* q_g = qkv + (size_t)b * Tmax * stride + (size_t)h * HS;
    const bf16* k_g = q_g + C;
    const bf16* v_g = q_g + 2 * C;
    const int pos_first = Tk - Tq + q0;                       // position of the tile's first query
    const int pos_last = Tk - Tq + min(q0 + BR, Tq) - 1;      // and of its last real one
    const int n_tiles = pos_last / BC + 1;

    // rows past Tk (queries past Tq, keys past Tk) are zero-filled, never read from memory
    load_tile<BR, HS, LD>(q_s, q_g, stride, pos_first, Tk);
    load_tile<BC, HS, LD>(k_s, k_g, stride, 0, Tk);
    load_tile<BC, HS, LD>(v_s, v_g, stride, 0, Tk);
    cp_async_commit();

    const int row_w = warp * 16;                 // the warp's first row in the tile
    const int pos_r = pos_first + row_w + g;     // positions of this thread's rows: pos_r, pos_r + 8
    const float sl = MODE == MODE_SOFTMAX ? scale * LOG2E : scale;   // softmax works in the log2 domain
    const float bias = score.bias, slope = alibi_slope<ALIBI>(score, h, NH, MODE == MODE_SOFTMAX ? LOG2E : 1.0f);
    float o[HS / 8][4] = {};
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

    for (int it = 0; it < n_tiles; it++) {
        kv_pipeline_step<BC, HS, LD>(k_s, v_s, k_g, v_g, stride, it, n_tiles, Tk);
        __syncthreads();
        const bf16* ks = k_s + (it & 1) * BC * LD;
        const bf16* vs = v_s + (it & 1) * BC * LD;
        const int kv0 = it * BC;
        const float o0 = slope * (float)(kv0 + 2 * t - pos_r);   // ALiBi: see fragment_score

        // S (16 x BC) = Q K^T
        float s[BC / 8][4] = {};
        warp_mma_abt<LD, HS, BC>(s, q_s, row_w, ks);

        // S -> P in place; masked weights are exactly 0 (keys past the row's position, keys past Tk)
        const bool need_mask = kv0 + BC - 1 > pos_first;
        if (MODE == MODE_SOFTMAX) {
            float mx[2] = {-INFINITY, -INFINITY};
            #pragma unroll
            for (int nb = 0; nb < BC / 8; nb++) {
                #pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int j = kv0 + nb * 8 + 2 * t + (e & 1);
                    const float x = need_mask && j > pos_r + 8 * (e >> 1)
                                        ? -INFINITY
                                        : fragment_score<ALIBI, 1>(s[nb][e], sl, slope, o0, nb, e);
                    s[nb][e] = x;
                    mx[e >> 1] = fmaxf(mx[e >> 1], x);
                }
            }
            float m_use[2];
            #pragma unroll
            for (int r = 0; r < 2; r++) {   // a row lives in the 4 lanes of a quad
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
                const float m_new = fmaxf(m[r], mx[r]);
                m_use[r] = m_new == -INFINITY ? 0.0f : m_new;   // a row with no key yet stays at 0
                const float alpha = exp2f(m[r] - m_use[r]);
                m[r] = m_new;
                l[r] *= alpha;
                #pragma unroll
                for (int nd = 0; nd < HS / 8; nd++) {
                    o[nd][2 * r] *= alpha;
                    o[nd][2 * r + 1] *= alpha;
                }
            }
            #pragma unroll
            for (int nb = 0; nb < BC / 8; nb++) {
                #pragma unroll
                for (int e = 0; e < 4; e++) {
                    const float p = exp2f(s[nb][e] - m_use[e >> 1]);
                    s[nb][e] = p;
                    l[e >> 1] += p;   // this thread's part of the row sum; the quad adds up at the end
                }
            }
        } else {
            #pragma unroll
            for (int nb = 0; nb < BC / 8; nb++) {
                #pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int j = kv0 + nb * 8 + 2 * t + (e & 1);
                    const bool masked = need_mask && j > pos_r + 8 * (e >> 1);
                    const float p =
                        masked ? 0.0f : sigmoid(fragment_score<ALIBI, 1>(s[nb][e], sl, slope, o0, nb, e) + bias);
                    s[nb][e] = p;
                    if (MODE == MODE_SIGMOID_NORM) l[e >> 1] += p;
                }
            }
        }

        // O (16 x HS) += P (16 x BC) V (BC x HS)
        warp_mma_pb<LD, HS, BC>(o, s, vs);
        __syncthreads();   // this stage is refilled by the next iteration's prefetch
    }

    #pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        // l >= 1 for softmax (the max term), far below 2^126 for both: the fast divide is exact enough
        const float inv = MODE == MODE_SOFTMAX         ? __fdividef(1.0f, l[r])
                          : MODE == MODE_SIGMOID_NORM ? __fdividef(1.0f, l[r] + SIGMOID_NORM_EPS)
                                                      : 1.0f;
        const int i = q0 + row_w + g + 8 * r;
        if (i < Tq) {
            bf16* out_row = out + ((size_t)b * Tq + i) * C + (size_t)h * HS + 2 * t;
            #pragma unroll
            for (int nd = 0; nd < HS / 8; nd++)
                *reinterpret_cast<__nv_bfloat162*>(out_row + nd * 8) =
                    __floats2bfloat162_rn(o[nd][2 * r] * inv, o[nd][2 * r + 1] * inv);
            if (t == 0)
                stat[((size_t)b * NH + h) * Tq + i] = MODE == MODE_SOFTMAX         ? m[r] * LN2 + logf(l[r])
                                                      : MODE == MODE_SIGMOID_NORM ? l[r]
                                                                                  : 0.0f;
        }
    }
}

template <int HS, int MODE, bool ALIBI>
static void launch_forward_flash(bf16* out, float* stat, const bf16* qkv, int B, int Tq, int Tk, int Tmax, int C,
                                 int NH, float scale, AttnScore score) {
    const size_t smem = ForwardTiles<HS>::SMEM;
    allow_smem(attention_forward_flash_kernel<HS, MODE, ALIBI>, smem);
    const dim3 grid(ceil_div(Tq, ForwardTiles<HS>::BR), NH, B);
    attention_forward_flash_kernel<HS, MODE, ALIBI><<<grid, THREADS, smem>>>(out, stat, qkv, Tq, Tk, Tmax, C, NH, scale,
                                                                             score);
    cuda_check_launch();
}

template <int HS>
static void forward_flash(bf16* out, float* stat, const bf16* qkv, int B, int Tq, int Tk, int Tmax, int C, int NH,
                          float scale, AttnScore score) {
    with_score(score, [&](auto m, auto a) {
        launch_forward_flash<HS, decltype(m)::value, decltype(a)::value>(out, stat, qkv, B, Tq, Tk, Tmax, C, NH, scale,
                                                                          score);
    });
}
#endif   // ATTNLAB_BF16

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
        flash::with_head_size(hs, [&](auto head_size) {
            flash::forward_flash<decltype(head_size)::value>(as_device(out), stat, as_device(qkv), B, Tq, Tk, Tmax, C,
                                                             NH, scale, score);
        });
        return;
    }
#endif
    flash::forward_rowwise(as_device(out), stat, as_device(qkv), B, Tq, Tk, Tmax, C, NH, scale, score);
}

// ===================================================================================================
// For analysis (the sink metric, docs/MODEL.md section 13): the weights of the training form as the
// forward used them, from the saved row statistic. Small T: one thread per (b, h, query, key).

namespace flash {

__global__ void __launch_bounds__(THREADS)
    attention_weights_kernel(float* weights, const floatD* qkv, const float* stat, int B, int T, int C, int NH,
                             float scale, AttnScore score) {
    const long idx = (long)blockIdx.x * THREADS + threadIdx.x;
    if (idx >= (long)B * NH * T * T) return;
    const int j = (int)(idx % T), i = (int)(idx / T % T), h = (int)(idx / T / T % NH), b = (int)(idx / T / T / NH);
    if (j > i) {
        weights[idx] = 0.0f;
        return;
    }
    const int hs = C / NH;
    const floatD* q = qkv + ((size_t)b * T + i) * 3 * C + (size_t)h * hs;
    const floatD* k = q + (long)(j - i) * 3 * C + C;
    float dot = 0.0f;
    for (int c = 0; c < hs; c++) dot += to_float(q[c]) * to_float(k[c]);
    const float s = scale * dot - attn_alibi_slope(score, h, NH) * (float)(i - j);
    const float row_stat = stat[((long)b * NH + h) * T + i];
    if (!score.sigmoid) weights[idx] = expf(s - row_stat);
    else weights[idx] = sigmoid(s + score.bias) / (score.normalize ? row_stat + SIGMOID_NORM_EPS : 1.0f);
}

}   // namespace flash

extern "C" void attention_weights_cuda(float* weights, const floatX* qkv, const float* stat, int B, int T, int C,
                                       int NH, AttnScore score) {
    const long n = (long)B * NH * T * T;
    if (n == 0) return;
    flash::attention_weights_kernel<<<ceil_div(n, flash::THREADS), flash::THREADS>>>(
        weights, as_device(qkv), stat, B, T, C, NH, 1.0f / sqrtf((float)(C / NH)), score);
    cuda_check_launch();
}

// ===================================================================================================
// The backward

namespace flash {

// ---------------------------------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------------------------------
// Row-wise fallback, fp32. dQ: one warp per query row i, keys 0..i in chunks of 32 (a lane per key for
// the two dot products), dq accumulated in shared memory (a lane per 32nd channel).
// Shared memory per warp: q, dO and the dq accumulator, 3 hs floats.
template <int MODE, bool ALIBI>
__global__ void __launch_bounds__(THREADS)
    attention_backward_dq_rowwise_kernel(floatD* dqkv, const floatD* dout, const floatD* qkv, const float* stat,
                                         const float* dsum, int B, int T, int C, int NH, float scale, AttnScore score) {
    const int hs = C / NH, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const long row = (long)blockIdx.x * (THREADS / 32) + warp;
    if (row >= (long)B * NH * T) return;
    const int i = (int)(row % T), h = (int)(row / T % NH), b = (int)(row / T / NH);
    const float bias = score.bias, slope = alibi_slope<ALIBI>(score, h, NH);
    float* q_s = dynamic_smem<float>() + (size_t)warp * 3 * hs;
    float* do_s = q_s + hs;
    float* acc = do_s + hs;
    const size_t stride = 3 * (size_t)C;
    const floatD* head = qkv + (size_t)b * T * stride + (size_t)h * hs;
    const floatD* dout_row = dout + ((size_t)b * T + i) * C + (size_t)h * hs;
    for (int c = lane; c < hs; c += 32) {
        q_s[c] = to_float(head[(size_t)i * stride + c]);
        do_s[c] = to_float(dout_row[c]);
        acc[c] = 0.0f;
    }
    __syncwarp();
    const float st = MODE == MODE_SIGMOID ? 0.0f : stat[row];   // row = (b NH + h) T + i
    const float D = MODE == MODE_SIGMOID ? 0.0f : dsum[row];
    for (int j0 = 0; j0 <= i; j0 += 32) {
        const int j = j0 + lane;
        float ds = 0.0f;
        if (j <= i) {
            const floatD* k = head + (size_t)j * stride + C;
            const floatD* v = k + C;
            float qk = 0.0f, dp = 0.0f;
            for (int c = 0; c < hs; c++) {
                qk += q_s[c] * to_float(k[c]);
                dp += do_s[c] * to_float(v[c]);
            }
            float w;
            weight_and_grad<MODE, false>(add_alibi<ALIBI>(scale * qk, slope, (float)(j - i)), dp, st, D, bias, w, ds);
        }
        const int count = min(32, i + 1 - j0);
        for (int jj = 0; jj < count; jj++) {
            const float x = __shfl_sync(0xffffffffu, ds, jj);
            const floatD* k = head + (size_t)(j0 + jj) * stride + C;
            for (int c = lane; c < hs; c += 32) acc[c] += x * to_float(k[c]);
        }
    }
    floatD* dq = dqkv + ((size_t)b * T + i) * stride + (size_t)h * hs;
    for (int c = lane; c < hs; c += 32) dq[c] = from_float(to_float(dq[c]) + scale * acc[c]);
}

// dK, dV: one warp per key row j, queries j..T-1 in chunks of 32 (a lane per query), dk and dv
// accumulated in shared memory. Shared memory per warp: k, v, dk, dv, 4 hs floats.
template <int MODE, bool ALIBI>
__global__ void __launch_bounds__(THREADS)
    attention_backward_dkdv_rowwise_kernel(floatD* dqkv, const floatD* dout, const floatD* qkv, const float* stat,
                                           const float* dsum, int B, int T, int C, int NH, float scale,
                                           AttnScore score) {
    const int hs = C / NH, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const long row = (long)blockIdx.x * (THREADS / 32) + warp;
    if (row >= (long)B * NH * T) return;
    const int j = (int)(row % T), h = (int)(row / T % NH), b = (int)(row / T / NH);
    const float bias = score.bias, slope = alibi_slope<ALIBI>(score, h, NH);
    float* k_s = dynamic_smem<float>() + (size_t)warp * 4 * hs;
    float* v_s = k_s + hs;
    float* dk = v_s + hs;
    float* dv = dk + hs;
    const size_t stride = 3 * (size_t)C;
    const floatD* head = qkv + (size_t)b * T * stride + (size_t)h * hs;
    const floatD* dout_head = dout + (size_t)b * T * C + (size_t)h * hs;
    const size_t stat_at = ((size_t)b * NH + h) * T;
    for (int c = lane; c < hs; c += 32) {
        k_s[c] = to_float(head[(size_t)j * stride + C + c]);
        v_s[c] = to_float(head[(size_t)j * stride + 2 * C + c]);
        dk[c] = dv[c] = 0.0f;
    }
    __syncwarp();
    for (int i0 = j; i0 < T; i0 += 32) {
        const int i = i0 + lane;
        float w = 0.0f, ds = 0.0f;
        if (i < T) {
            const floatD* q = head + (size_t)i * stride;
            const floatD* dor = dout_head + (size_t)i * C;
            float qk = 0.0f, dp = 0.0f;
            for (int c = 0; c < hs; c++) {
                qk += to_float(q[c]) * k_s[c];
                dp += to_float(dor[c]) * v_s[c];
            }
            const float st = MODE == MODE_SIGMOID ? 0.0f : stat[stat_at + i];
            const float D = MODE == MODE_SIGMOID ? 0.0f : dsum[stat_at + i];
            weight_and_grad<MODE, false>(add_alibi<ALIBI>(scale * qk, slope, (float)(j - i)), dp, st, D, bias, w, ds);
        }
        const int count = min(32, T - i0);
        for (int ii = 0; ii < count; ii++) {
            const float xw = __shfl_sync(0xffffffffu, w, ii), xs = __shfl_sync(0xffffffffu, ds, ii);
            const floatD* q = head + (size_t)(i0 + ii) * stride;
            const floatD* dor = dout_head + (size_t)(i0 + ii) * C;
            for (int c = lane; c < hs; c += 32) {
                dv[c] += xw * to_float(dor[c]);
                dk[c] += xs * to_float(q[c]);
            }
        }
    }
    floatD* dk_row = dqkv + ((size_t)b * T + j) * stride + C + (size_t)h * hs;
    floatD* dv_row = dk_row + C;
    for (int c = lane; c < hs; c += 32) {
        dk_row[c] = from_float(to_float(dk_row[c]) + scale * dk[c]);
        dv_row[c] = from_float(to_float(dv_row[c]) + dv[c]);
    }
}

template <int MODE, bool ALIBI>
static void launch_backward_rowwise(floatD* dqkv, const floatD* dout, const floatD* qkv, const float* stat,
                                    const float* dsum, int B, int T, int C, int NH, float scale, AttnScore score) {
    const int blocks = ceil_div((long)B * NH * T, THREADS / 32);
    const size_t hs_bytes = (size_t)(C / NH) * sizeof(float), smem_dq = (THREADS / 32) * 3 * hs_bytes,
                 smem_dkdv = (THREADS / 32) * 4 * hs_bytes;
    allow_smem(attention_backward_dq_rowwise_kernel<MODE, ALIBI>, smem_dq);
    attention_backward_dq_rowwise_kernel<MODE, ALIBI><<<blocks, THREADS, smem_dq>>>(dqkv, dout, qkv, stat, dsum, B, T,
                                                                                     C, NH, scale, score);
    cuda_check_launch();
    allow_smem(attention_backward_dkdv_rowwise_kernel<MODE, ALIBI>, smem_dkdv);
    attention_backward_dkdv_rowwise_kernel<MODE, ALIBI><<<blocks, THREADS, smem_dkdv>>>(dqkv, dout, qkv, stat, dsum, B,
                                                                                         T, C, NH, scale, score);
    cuda_check_launch();
}

static void backward_rowwise(floatD* dqkv, const floatD* dout, const floatD* qkv, const float* stat, const float* dsum,
                             int B, int T, int C, int NH, float scale, AttnScore score) {
    with_score(score, [&](auto m, auto a) {
        launch_backward_rowwise<decltype(m)::value, decltype(a)::value>(dqkv, dout, qkv, stat, dsum, B, T, C, NH,
                                                                         scale, score);
    });
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

#ifdef ATTNLAB_BF16
// ---------------------------------------------------------------------------------------------------
// Tensor-core backward. Tiles (see flash.cuh): dK/dV CTA = BC keys x BQ-query tiles, dQ CTA = BR
// queries x BK-key tiles; BQ and BK halve for hs 128 to bound registers and shared memory.
template <int HS> struct BackwardTiles {
    static constexpr int BC = 64, BQ = HS == 128 ? 32 : 64;   // dK/dV kernel
    static constexpr int BR = 64, BK = HS == 128 ? 32 : 64;   // dQ kernel
    static constexpr int LD = HS + 8;
    // K, V (BC, LD); Q, dO (2 stages, BQ, LD); stat, D (2 stages, BQ) floats: 55 KB (hs 64), 69 KB (hs 128)
    static constexpr size_t SMEM_DKDV = (size_t)(2 * BC + 4 * BQ) * LD * sizeof(bf16) + 4 * BQ * sizeof(float);
    // Q, dO (BR, LD); K, V (2 stages, BK, LD): 54 KB (hs 64), 68 KB (hs 128)
    static constexpr size_t SMEM_DQ = (size_t)(2 * BR + 4 * BK) * LD * sizeof(bf16);
};

// dK, dV of BC keys of one (b, h); warp w owns keys kv0 + 16 w .. + 15 and their dK, dV rows.
template <int HS, int MODE, bool ALIBI>
__global__ void __launch_bounds__(THREADS)
    attention_backward_dkdv_flash_kernel(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* stat,
                                         const float* dsum, int T, int C, int NH, float scale, AttnScore score) {
    constexpr int BC = BackwardTiles<HS>::BC, BQ = BackwardTiles<HS>::BQ, LD = BackwardTiles<HS>::LD;
    bf16* k_s = dynamic_smem<bf16>();   // [BC][LD]
    bf16* v_s = k_s + BC * LD;          // [BC][LD]
    bf16* q_s = v_s + BC * LD;          // [2][BQ][LD]
    bf16* do_s = q_s + 2 * BQ * LD;     // [2][BQ][LD]
    float* stat_s = reinterpret_cast<float*>(do_s + 2 * BQ * LD);   // [2][BQ]
    float* d_s = stat_s + 2 * BQ;                                   // [2][BQ]
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int kv0 = blockIdx.x * BC, h = blockIdx.y, b = blockIdx.z;   // early keys (most queries) first
    const size_t stride = 3 * (size_t)C;
    const bf16* q_g = qkv + (size_t)b * T * stride + (size_t)h * HS;
    const bf16* do_g = dout + (size_t)b * T * C + (size_t)h * HS;
    const size_t stat_at = ((size_t)b * NH + h) * T;

    // query tile qt (rows qt BQ ..) into stage `stage`: Q, dO and the rows' statistics
    auto load_queries = [&](int qt, int stage) {
        load_tile<BQ, HS, LD>(q_s + stage * BQ * LD, q_g, stride, qt * BQ, T);
        load_tile<BQ, HS, LD>(do_s + stage * BQ * LD, do_g, C, qt * BQ, T);
        if (MODE != MODE_SIGMOID && threadIdx.x < BQ) {
            const int i = qt * BQ + threadIdx.x;
            const bool valid = i < T;
            cp_async_4(stat_s + stage * BQ + threadIdx.x, stat + stat_at + (valid ? i : 0), valid);
            cp_async_4(d_s + stage * BQ + threadIdx.x, dsum + stat_at + (valid ? i : 0), valid);
        }
    };

    const int qt_first = kv0 / BQ, n_qt = (T + BQ - 1) / BQ;   // the first query tile that sees a key here
    load_tile<BC, HS, LD>(k_s, q_g + C, stride, kv0, T);
    load_tile<BC, HS, LD>(v_s, q_g + 2 * C, stride, kv0, T);
    load_queries(qt_first, 0);
    cp_async_commit();

    const int key_w = warp * 16;             // the warp's first key in the block
    const int j_r = kv0 + key_w + g;         // keys of this thread's rows: j_r, j_r + 8
    const float bias = score.bias, slope = alibi_slope<ALIBI>(score, h, NH);
    float dk[HS / 8][4] = {}, dv[HS / 8][4] = {};

    for (int qt = qt_first; qt < n_qt; qt++) {
        const int stage = (qt - qt_first) & 1;
        if (qt + 1 < n_qt) {
            load_queries(qt + 1, stage ^ 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const bf16* qs = q_s + stage * BQ * LD;
        const bf16* dos = do_s + stage * BQ * LD;
        const float* stat_t = stat_s + stage * BQ;
        const float* dsum_t = d_s + stage * BQ;
        const int q0 = qt * BQ;
        const float o0 = slope * (float)(j_r - q0 - 2 * t);   // ALiBi: see fragment_score (columns are queries)

        // S^T (16 keys x BQ queries) = K Q^T, dP^T = V dO^T
        float st[BQ / 8][4] = {}, dpt[BQ / 8][4] = {};
        warp_mma_abt<LD, HS, BQ>(st, k_s, key_w, qs);
        warp_mma_abt<LD, HS, BQ>(dpt, v_s, key_w, dos);

        // st <- the weights W^T, dpt <- dS^T; masked: key after query, or a query past T
        const bool need_mask = !(q0 >= kv0 + BC - 1 && q0 + BQ <= T);
        #pragma unroll
        for (int nb = 0; nb < BQ / 8; nb++) {
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                const int col = nb * 8 + 2 * t + (e & 1), i = q0 + col, j = j_r + 8 * (e >> 1);
                const float stat_i = MODE == MODE_SIGMOID ? 0.0f : stat_t[col];
                const float D_i = MODE == MODE_SIGMOID ? 0.0f : dsum_t[col];
                float w, ds;
                weight_and_grad<MODE, true>(fragment_score<ALIBI, -1>(st[nb][e], scale, slope, o0, nb, e), dpt[nb][e],
                                            stat_i, D_i, bias, w, ds);
                const bool masked = need_mask && (j > i || i >= T);
                st[nb][e] = masked ? 0.0f : w;
                dpt[nb][e] = masked ? 0.0f : ds;
            }
        }

        // dV (16 x HS) += W^T dO, dK += dS^T Q over the tile's queries
        warp_mma_pb<LD, HS, BQ>(dv, st, dos);
        warp_mma_pb<LD, HS, BQ>(dk, dpt, qs);
        __syncthreads();   // this stage is refilled by the next iteration's prefetch
    }

    #pragma unroll
    for (int r = 0; r < 2; r++) {
        const int j = j_r + 8 * r;
        if (j < T) {
            bf16* dk_row = dqkv + ((size_t)b * T + j) * stride + C + (size_t)h * HS + 2 * t;
            bf16* dv_row = dk_row + C;
            #pragma unroll
            for (int nd = 0; nd < HS / 8; nd++) {
                add_pair(dk_row + nd * 8, scale * dk[nd][2 * r], scale * dk[nd][2 * r + 1]);
                add_pair(dv_row + nd * 8, dv[nd][2 * r], dv[nd][2 * r + 1]);
            }
        }
    }
}

// dQ of BR query rows of one (b, h); warp w owns rows q0 + 16 w .. + 15.
template <int HS, int MODE, bool ALIBI>
__global__ void __launch_bounds__(THREADS)
    attention_backward_dq_flash_kernel(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* stat,
                                       const float* dsum, int T, int C, int NH, float scale, AttnScore score) {
    constexpr int BR = BackwardTiles<HS>::BR, BK = BackwardTiles<HS>::BK, LD = BackwardTiles<HS>::LD;
    bf16* q_s = dynamic_smem<bf16>();   // [BR][LD]
    bf16* do_s = q_s + BR * LD;         // [BR][LD]
    bf16* k_s = do_s + BR * LD;         // [2][BK][LD]
    bf16* v_s = k_s + 2 * BK * LD;      // [2][BK][LD]
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BR, h = blockIdx.y, b = blockIdx.z;   // longest rows first
    const size_t stride = 3 * (size_t)C;
    const bf16* q_g = qkv + (size_t)b * T * stride + (size_t)h * HS;
    const bf16* k_g = q_g + C;
    const bf16* v_g = q_g + 2 * C;
    const size_t stat_at = ((size_t)b * NH + h) * T;

    load_tile<BR, HS, LD>(q_s, q_g, stride, q0, T);
    load_tile<BR, HS, LD>(do_s, dout + (size_t)b * T * C + (size_t)h * HS, C, q0, T);
    load_tile<BK, HS, LD>(k_s, k_g, stride, 0, T);
    load_tile<BK, HS, LD>(v_s, v_g, stride, 0, T);
    cp_async_commit();

    const int row_w = warp * 16;
    const int i_r = q0 + row_w + g;   // rows of this thread: i_r, i_r + 8
    const float bias = score.bias, slope = alibi_slope<ALIBI>(score, h, NH);
    float stat_r[2], D_r[2];
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        const bool use = MODE != MODE_SIGMOID && i_r + 8 * r < T;
        stat_r[r] = use ? stat[stat_at + i_r + 8 * r] : 0.0f;
        D_r[r] = use ? dsum[stat_at + i_r + 8 * r] : 0.0f;
    }
    const int n_tiles = (min(q0 + BR, T) - 1) / BK + 1;
    float dq[HS / 8][4] = {};

    for (int it = 0; it < n_tiles; it++) {
        kv_pipeline_step<BK, HS, LD>(k_s, v_s, k_g, v_g, stride, it, n_tiles, T);
        __syncthreads();
        const bf16* ks = k_s + (it & 1) * BK * LD;
        const bf16* vs = v_s + (it & 1) * BK * LD;
        const int kv0 = it * BK;
        const float o0 = slope * (float)(kv0 + 2 * t - i_r);   // ALiBi: see fragment_score

        // S (16 x BK) = Q K^T, dP = dO V^T
        float s[BK / 8][4] = {}, dp[BK / 8][4] = {};
        warp_mma_abt<LD, HS, BK>(s, q_s, row_w, ks);
        warp_mma_abt<LD, HS, BK>(dp, do_s, row_w, vs);

        // dp <- dS; masked: key after query, or a query past T
        const bool need_mask = !(kv0 + BK - 1 <= q0 && q0 + BR <= T);
        #pragma unroll
        for (int nb = 0; nb < BK / 8; nb++) {
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                const int r = e >> 1, i = i_r + 8 * r, j = kv0 + nb * 8 + 2 * t + (e & 1);
                float w, ds;
                weight_and_grad<MODE, true>(fragment_score<ALIBI, 1>(s[nb][e], scale, slope, o0, nb, e), dp[nb][e],
                                            stat_r[r], D_r[r], bias, w, ds);
                dp[nb][e] = need_mask && (j > i || i >= T) ? 0.0f : ds;
            }
        }

        // dQ (16 x HS) += dS (16 x BK) K (BK x HS)
        warp_mma_pb<LD, HS, BK>(dq, dp, ks);
        __syncthreads();   // this stage is refilled by the next iteration's prefetch
    }

    #pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = i_r + 8 * r;
        if (i < T) {
            bf16* dq_row = dqkv + ((size_t)b * T + i) * stride + (size_t)h * HS + 2 * t;
            #pragma unroll
            for (int nd = 0; nd < HS / 8; nd++)
                add_pair(dq_row + nd * 8, scale * dq[nd][2 * r], scale * dq[nd][2 * r + 1]);
        }
    }
}

template <int HS, int MODE, bool ALIBI>
static void launch_backward_flash(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* stat, const float* dsum,
                                  int B, int T, int C, int NH, float scale, AttnScore score) {
    typedef BackwardTiles<HS> Tiles;
    const dim3 grid_dkdv(ceil_div(T, Tiles::BC), NH, B), grid_dq(ceil_div(T, Tiles::BR), NH, B);
    allow_smem(attention_backward_dkdv_flash_kernel<HS, MODE, ALIBI>, Tiles::SMEM_DKDV);
    attention_backward_dkdv_flash_kernel<HS, MODE, ALIBI><<<grid_dkdv, THREADS, Tiles::SMEM_DKDV>>>(
        dqkv, dout, qkv, stat, dsum, T, C, NH, scale, score);
    cuda_check_launch();
    allow_smem(attention_backward_dq_flash_kernel<HS, MODE, ALIBI>, Tiles::SMEM_DQ);
    attention_backward_dq_flash_kernel<HS, MODE, ALIBI><<<grid_dq, THREADS, Tiles::SMEM_DQ>>>(
        dqkv, dout, qkv, stat, dsum, T, C, NH, scale, score);
    cuda_check_launch();
}

template <int HS>
static void backward_flash(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* stat, const float* dsum, int B,
                           int T, int C, int NH, float scale, AttnScore score) {
    with_score(score, [&](auto m, auto a) {
        launch_backward_flash<HS, decltype(m)::value, decltype(a)::value>(dqkv, dout, qkv, stat, dsum, B, T, C, NH,
                                                                           scale, score);
    });
}
#endif   // ATTNLAB_BF16

}   // namespace flash

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
        flash::with_head_size(hs, [&](auto head_size) {
            flash::backward_flash<decltype(head_size)::value>(as_device(dqkv), as_device(dout), as_device(qkv), stat,
                                                              dsum, B, T, C, NH, scale, score);
        });
    } else
#endif
        flash::backward_rowwise(as_device(dqkv), as_device(dout), as_device(qkv), stat, dsum, B, T, C, NH, scale,
                                score);
    if (dsum) cuda_check(cudaFreeAsync(dsum, 0));
}
