// The tensor-core family of the CUDA softmax / sigmoid attention (attention/softmax_sigmoid.cuh;
// entry points in attention/softmax_sigmoid.cu): bf16 build, head sizes 32, 64 and 128, mma.sync
// on tiles staged in shared memory (attention/flash.cuh). 4 warps = 128 threads per CTA, each warp
// owns 16 rows:
//  forward   CTA = 64 query rows of one (b, h); loops over 64-key tiles of K and V (double buffered)
//            up to the diagonal. Per warp: S (16 x 64) = Q K^T, online softmax on S in registers
//            (running max m and sum l per row, log2 domain; sigmoid: no max, no sum, no rescale;
//            normalized sigmoid: running sum only), O (16 x HS) += P V with P re-packed from the S
//            accumulators into bf16 A fragments (no trip through shared memory).
//  dK, dV    CTA = 64 keys of one (b, h); K, V stay in shared memory; loops over query tiles of BQ rows
//            (64 for hs 32 and 64, 32 for hs 128, to bound registers) from the diagonal to T, Q, dO, LSE and
//            D double buffered. Per warp (16 keys): S^T = K Q^T and dP^T = V dO^T (16 x BQ), then
//            P^T and dS^T elementwise, dV (16 x HS) += P^T dO, dK += dS^T Q.
//  dQ        CTA = 64 query rows; Q, dO stay in shared memory; loops over key tiles of BK keys (64 for
//            hs 32 and 64, 32 for hs 128, to stay under 99 KB of shared memory) up to the diagonal. Per warp:
//            S = Q K^T, dP = dO V^T (16 x BK), dS, dQ (16 x HS) += dS K.
// The scores are C fragments; ScoreMap::fragment_logit forms their logits (ALiBi's offset: one FMA
// per element). The FP32 build compiles this file to nothing.
#include "attention/softmax_sigmoid.cuh"

#ifdef ATTNLAB_BF16
namespace flash {

// ---------------------------------------------------------------------------------------------------
// Forward: CTA = 64 query rows of one (b, h), 4 warps x 16 rows; 64-key tiles of K and V
// double buffered in shared memory: Q (64, HS+8), K and V (2 stages, 64, HS+8) bf16.
template <int HS> struct ForwardTiles {
    static constexpr int BR = 64, BC = 64, LD = HS + 8;
    static constexpr size_t SMEM = (size_t)(BR + 4 * BC) * LD * sizeof(bf16);   // 45 KB (hs 64), 85 KB (hs 128)
};

template <int HS, class Map>
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
    constexpr bool SOFTMAX = Map::MODE == MODE_SOFTMAX;
    const float sl = SOFTMAX ? scale * LOG2E : scale;   // softmax works in the log2 domain
    const Map map = Map::of_head(score, h, NH, SOFTMAX ? LOG2E : 1.0f);
    float o[HS / 8][4] = {};
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

    for (int it = 0; it < n_tiles; it++) {
        kv_pipeline_step<BC, HS, LD>(k_s, v_s, k_g, v_g, stride, it, n_tiles, Tk);
        __syncthreads();
        const bf16* ks = k_s + (it & 1) * BC * LD;
        const bf16* vs = v_s + (it & 1) * BC * LD;
        const int kv0 = it * BC;
        const float o0 = map.tile_offset(kv0 + 2 * t - pos_r);   // see ScoreMap::fragment_logit

        // S (16 x BC) = Q K^T
        float s[BC / 8][4] = {};
        warp_mma_abt<LD, HS, BC>(s, q_s, row_w, ks);

        // S -> P in place; masked weights are exactly 0 (keys past the row's position, keys past Tk)
        const bool need_mask = kv0 + BC - 1 > pos_first;
        if (SOFTMAX) {
            float mx[2] = {-INFINITY, -INFINITY};
            #pragma unroll
            for (int nb = 0; nb < BC / 8; nb++) {
                #pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int j = kv0 + nb * 8 + 2 * t + (e & 1);
                    const float x = need_mask && j > pos_r + 8 * (e >> 1)
                                        ? -INFINITY
                                        : map.template fragment_logit<1>(s[nb][e], sl, o0, nb, e);
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
                    const float p = map.softmax_weight_log2(s[nb][e], m_use[e >> 1]);
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
                        masked ? 0.0f : map.sigmoid_weight(map.template fragment_logit<1>(s[nb][e], sl, o0, nb, e));
                    s[nb][e] = p;
                    if (Map::MODE == MODE_SIGMOID_NORM) l[e >> 1] += p;
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
        const float inv = map.template row_scale<true>(l[r]);
        const int i = q0 + row_w + g + 8 * r;
        if (i < Tq) {
            bf16* out_row = out + ((size_t)b * Tq + i) * C + (size_t)h * HS + 2 * t;
            #pragma unroll
            for (int nd = 0; nd < HS / 8; nd++)
                *reinterpret_cast<__nv_bfloat162*>(out_row + nd * 8) =
                    __floats2bfloat162_rn(o[nd][2 * r] * inv, o[nd][2 * r + 1] * inv);
            if (t == 0)
                stat[((size_t)b * NH + h) * Tq + i] = map.row_stat(m[r] * LN2, l[r]);
        }
    }
}

template <int HS, class Map>
static void launch_forward_flash(bf16* out, float* stat, const bf16* qkv, int B, int Tq, int Tk, int Tmax, int C,
                                 int NH, float scale, AttnScore score) {
    const size_t smem = ForwardTiles<HS>::SMEM;
    allow_smem(attention_forward_flash_kernel<HS, Map>, smem);
    const dim3 grid(ceil_div(Tq, ForwardTiles<HS>::BR), NH, B);
    attention_forward_flash_kernel<HS, Map><<<grid, THREADS, smem>>>(out, stat, qkv, Tq, Tk, Tmax, C, NH, scale, score);
    cuda_check_launch();
}

void forward_tc(bf16* out, float* stat, const bf16* qkv, int B, int Tq, int Tk, int Tmax, int C, int NH, float scale,
                AttnScore score) {
    with_head_size(C / NH, [&](auto head_size) {
        with_score(score, [&](auto map) {
            launch_forward_flash<decltype(head_size)::value, decltype(map)>(out, stat, qkv, B, Tq, Tk, Tmax, C, NH,
                                                                            scale, score);
        });
    });
}

// ---------------------------------------------------------------------------------------------------
// Backward. Tiles (see the head of this file): dK/dV CTA = BC keys x BQ-query tiles, dQ CTA = BR
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
template <int HS, class Map>
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
        if (Map::ROW_STAT && threadIdx.x < BQ) {
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
    const Map map = Map::of_head(score, h, NH);
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
        const float o0 = map.tile_offset(j_r - q0 - 2 * t);   // see ScoreMap::fragment_logit (columns: queries)

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
                const float stat_i = Map::ROW_STAT ? stat_t[col] : 0.0f;
                const float D_i = Map::ROW_STAT ? dsum_t[col] : 0.0f;
                float w, ds;
                map.template weight_and_grad<true>(map.template fragment_logit<-1>(st[nb][e], scale, o0, nb, e),
                                                   dpt[nb][e], stat_i, D_i, w, ds);
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
template <int HS, class Map>
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
    const Map map = Map::of_head(score, h, NH);
    float stat_r[2], D_r[2];
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        const bool use = Map::ROW_STAT && i_r + 8 * r < T;
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
        const float o0 = map.tile_offset(kv0 + 2 * t - i_r);   // see ScoreMap::fragment_logit

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
                map.template weight_and_grad<true>(map.template fragment_logit<1>(s[nb][e], scale, o0, nb, e),
                                                   dp[nb][e], stat_r[r], D_r[r], w, ds);
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

template <int HS, class Map>
static void launch_backward_flash(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* stat, const float* dsum,
                                  int B, int T, int C, int NH, float scale, AttnScore score) {
    typedef BackwardTiles<HS> Tiles;
    const dim3 grid_dkdv(ceil_div(T, Tiles::BC), NH, B), grid_dq(ceil_div(T, Tiles::BR), NH, B);
    allow_smem(attention_backward_dkdv_flash_kernel<HS, Map>, Tiles::SMEM_DKDV);
    attention_backward_dkdv_flash_kernel<HS, Map><<<grid_dkdv, THREADS, Tiles::SMEM_DKDV>>>(dqkv, dout, qkv, stat, dsum,
                                                                                            T, C, NH, scale, score);
    cuda_check_launch();
    allow_smem(attention_backward_dq_flash_kernel<HS, Map>, Tiles::SMEM_DQ);
    attention_backward_dq_flash_kernel<HS, Map><<<grid_dq, THREADS, Tiles::SMEM_DQ>>>(dqkv, dout, qkv, stat, dsum, T, C,
                                                                                      NH, scale, score);
    cuda_check_launch();
}

void backward_tc(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* stat, const float* dsum, int B, int T,
                 int C, int NH, float scale, AttnScore score) {
    with_head_size(C / NH, [&](auto head_size) {
        with_score(score, [&](auto map) {
            launch_backward_flash<decltype(head_size)::value, decltype(map)>(dqkv, dout, qkv, stat, dsum, B, T, C, NH,
                                                                             scale, score);
        });
    });
}

}   // namespace flash
#endif   // ATTNLAB_BF16
