// The CUDA attention forward (attention_cuda.h), twin of attention_forward in attention/softmax.c:
// FlashAttention-2 tiles on tensor cores for head sizes 64 and 128 in the bf16 build, a row-wise fp32
// kernel for everything else (other head sizes, the FP32 build, decoding with Tq < 16). Design,
// tiling, fragment layouts and determinism: attention/flash.cuh.
#include "attention/flash.cuh"

// Everything but the entry point lives in namespace flash, so its helpers hide any of the same name
// in the shared headers.
namespace flash {

// ---------------------------------------------------------------------------------------------------
// Row-wise fallback: one warp per query row (b, h, i), keys in chunks of 32 (a lane per key for the
// score), the output row accumulated in shared memory (a lane per 32nd channel), fp32 throughout.
// Shared memory per warp: the scaled query and the accumulator, 2 hs floats.
template <int MODE>
__global__ void __launch_bounds__(THREADS)
    attention_forward_rowwise_kernel(floatD* out, float* stat, const floatD* qkv, int B, int Tq, int Tk, int Tmax,
                                     int C, int NH, float scale, float bias) {
    const int hs = C / NH, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const long row = (long)blockIdx.x * (THREADS / 32) + warp;
    if (row >= (long)B * NH * Tq) return;   // whole warps only: no block-wide barrier below
    const int i = (int)(row % Tq), h = (int)(row / Tq % NH), b = (int)(row / Tq / NH);
    float* q_s = dynamic_smem<float>() + (size_t)warp * 2 * hs;
    float* acc = q_s + hs;
    const size_t stride = 3 * (size_t)C;
    const floatD* head = qkv + (size_t)b * Tmax * stride + (size_t)h * hs;
    const int n_keys = Tk - Tq + i + 1;   // the query is position Tk - Tq + i
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
            s = dot;
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
            p = j < n_keys ? sigmoid<false>(s + bias) : 0.0f;
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

template <int MODE>
static void launch_forward_rowwise(floatD* out, float* stat, const floatD* qkv, int B, int Tq, int Tk, int Tmax,
                                   int C, int NH, float scale, float bias) {
    const size_t smem = (THREADS / 32) * 2 * (size_t)(C / NH) * sizeof(float);
    allow_smem(attention_forward_rowwise_kernel<MODE>, smem);
    attention_forward_rowwise_kernel<MODE><<<ceil_div((long)B * NH * Tq, THREADS / 32), THREADS, smem>>>(
        out, stat, qkv, B, Tq, Tk, Tmax, C, NH, scale, bias);
    cuda_check_launch();
}

static void forward_rowwise(floatD* out, float* stat, const floatD* qkv, int B, int Tq, int Tk, int Tmax, int C,
                            int NH, float scale, int mode, float bias) {
    if (mode == MODE_SOFTMAX)
        launch_forward_rowwise<MODE_SOFTMAX>(out, stat, qkv, B, Tq, Tk, Tmax, C, NH, scale, bias);
    else if (mode == MODE_SIGMOID)
        launch_forward_rowwise<MODE_SIGMOID>(out, stat, qkv, B, Tq, Tk, Tmax, C, NH, scale, bias);
    else
        launch_forward_rowwise<MODE_SIGMOID_NORM>(out, stat, qkv, B, Tq, Tk, Tmax, C, NH, scale, bias);
}

#ifdef ATTNLAB_BF16
// ---------------------------------------------------------------------------------------------------
// Tensor-core forward: CTA = 64 query rows of one (b, h), 4 warps x 16 rows; 64-key tiles of K and V
// double buffered in shared memory: Q (64, HS+8), K and V (2 stages, 64, HS+8) bf16.
template <int HS> struct ForwardTiles {
    static constexpr int BR = 64, BC = 64, LD = HS + 8;
    static constexpr size_t SMEM = (size_t)(BR + 4 * BC) * LD * sizeof(bf16);   // 45 KB (hs 64), 85 KB (hs 128)
};

template <int HS, int MODE>
__global__ void __launch_bounds__(THREADS)
    attention_forward_flash_kernel(bf16* out, float* stat, const bf16* qkv, int Tq, int Tk, int Tmax, int C, int NH,
                                   float scale, float bias) {
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
    float o[HS / 8][4] = {};
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

    for (int it = 0; it < n_tiles; it++) {
        kv_pipeline_step<BC, HS, LD>(k_s, v_s, k_g, v_g, stride, it, n_tiles, Tk);
        __syncthreads();
        const bf16* ks = k_s + (it & 1) * BC * LD;
        const bf16* vs = v_s + (it & 1) * BC * LD;
        const int kv0 = it * BC;

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
                    const float x = need_mask && j > pos_r + 8 * (e >> 1) ? -INFINITY : s[nb][e] * sl;
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
                    const float p = need_mask && j > pos_r + 8 * (e >> 1) ? 0.0f : sigmoid<true>(s[nb][e] * sl + bias);
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

template <int HS, int MODE>
static void launch_forward_flash(bf16* out, float* stat, const bf16* qkv, int B, int Tq, int Tk, int Tmax, int C,
                                 int NH, float scale, float bias) {
    const size_t smem = ForwardTiles<HS>::SMEM;
    allow_smem(attention_forward_flash_kernel<HS, MODE>, smem);
    const dim3 grid(ceil_div(Tq, ForwardTiles<HS>::BR), NH, B);
    attention_forward_flash_kernel<HS, MODE><<<grid, THREADS, smem>>>(out, stat, qkv, Tq, Tk, Tmax, C, NH, scale, bias);
    cuda_check_launch();
}

template <int HS>
static void forward_flash(bf16* out, float* stat, const bf16* qkv, int B, int Tq, int Tk, int Tmax, int C, int NH,
                          float scale, int mode, float bias) {
    with_score_mode(mode, [&](auto m) {
        launch_forward_flash<HS, decltype(m)::value>(out, stat, qkv, B, Tq, Tk, Tmax, C, NH, scale, bias);
    });
}
#endif   // ATTNLAB_BF16

}   // namespace flash

// Tensor cores where they apply (bf16, hs 32, 64 or 128, at least 16 query rows, 16-byte aligned tensors),
// else the row-wise kernel.
extern "C" void attention_forward_cuda(floatX* out, float* stat, const floatX* qkv, int B, int Tq, int Tk, int Tmax,
                                       int C, int NH, AttnScore score) {
    if (B <= 0 || Tq <= 0) return;
    const int hs = C / NH, mode = flash::score_mode(score);
    const float scale = 1.0f / sqrtf((float)hs), bias = score.bias;
#ifdef ATTNLAB_BF16
    if (flash::tensor_core_head_size(hs) && Tq >= 16 && flash::aligned16(out) && flash::aligned16(qkv)) {
        flash::with_head_size(hs, [&](auto head_size) {
            flash::forward_flash<decltype(head_size)::value>(as_device(out), stat, as_device(qkv), B, Tq, Tk, Tmax, C,
                                                             NH, scale, mode, bias);
        });
        return;
    }
#endif
    flash::forward_rowwise(as_device(out), stat, as_device(qkv), B, Tq, Tk, Tmax, C, NH, scale, mode, bias);
}
