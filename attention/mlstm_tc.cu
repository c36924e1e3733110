// The tensor-core kernels of the CUDA mLSTM's chunkwise form (the entry points and the dispatch
// between the families: attention/mlstm.cu; what the files share: attention/mlstm.cuh), in the bf16
// build for head sizes 32, 64, 128, chunks of 64 or 128 and 16-byte aligned tensors; every other shape
// takes the fp32 kernels (attention/mlstm_fp32.cu). Products: mma.sync m16n8k16 bf16 x bf16 -> fp32
// (flash.cuh's fragment helpers and layouts), tiles staged in shared memory with cp.async, rows
// padded to HS + 8 bf16 as in flash.cuh. The gates enter through two per-position numbers from
// tc_prep_kernel, with b_t = sum_{r=t0..t} lf_r (chunk-local, upwards):
//   c_s = li_s - b_s,   R_t = max(m_k, max_{t0<=s<=t} c_s) (exp) or -b_t (sig),   m_t = b_t + R_t or 0,
// so that every gate factor of the chunk is one exp of a difference (the b_t of the row cancels):
//   D'_ts = exp(logw_s - m_t) = exp(c_s - R_t) (s <= t),   beta_t = exp(b_t + m_k - m_t) = exp(m_k - R_t),
//   the state update's exp(a_s - m_new) = exp(c_s - R_last) and decay exp(m_k - R_last),
// and with the exp gate every such factor is exactly <= 1 (R_t is a max over the same floats). The
// chunk-local b_t stays short (at most 128 terms). The backward recomputes c and R from the gates (its
// m_t = b_t + R_t is the forward's m_out up to rounding) and reads n_out.
// Kernels (CTA = 4 warps, a warp owns 16 rows, except the state kernels: HS / 16 warps):
//  tc_prep_kernel        one warp per (b, h): c, R (B,NH,T), the stabilisers m_k entering each chunk,
//                        and m_out; warp scans over 32 positions at a time, chunks in order.
//  tc_states_kernel      CTA = (b, h, 64 value columns of the state); runs over the chunks in order
//  (BWD = false)         (TFLA's recurrent kernel): C <- decay C + (e o K)^T V, the A operand K^T read with
//                        ldmatrix.trans and scaled by e_s in registers; C stays in fp32 registers, each
//                        state entering chunks 1..NC-1 is stored as bf16 (it is an mma operand), n in fp32.
//  (BWD = true)          the same in reverse for the state gradients G <- decay G + (w o Q)^T dH,
//                        w_t = beta_t / sqrt(hs) / (n_out_t + eps).
//  tc_forward_kernel     CTA = 64 query rows of one chunk: O = beta (Q C_k) / sqrt(hs), then per 64-key
//                        tile of the chunk S = Q K^T, C~ = S D' / sqrt(hs) in registers (mask, gates),
//                        O += C~ V with C~ re-packed as A fragments; the row sums of C~ and beta q.n give
//                        the normaliser. h = O / (max(|den|, exp(-m)) + eps).
//  tc_backward_dq_kernel CTA = 64 query rows: dQ = w (dH C_k^T), then per key tile dP = dH V^T,
//                        dS = dP D' / sqrt(hs) / (n + eps), dQ += dS K.
//  tc_backward_dkdv_kernel CTA = 64 key rows: dK = e (V G^T), dV = e (K G) (the state after the chunk),
//                        then per query tile (BQ columns) S^T = K Q^T, dP^T = V dH^T, dV += C~'^T dH,
//                        dK += dS^T Q.
// The gate gradients then come from gate_grads_kernel as in the fp32 path (attention/mlstm_fp32.cu).
#include "attention/mlstm.cuh"

#ifdef ATTNLAB_BF16
namespace mlstm {

using flash::a_from_acc;
using flash::add_pair;
using flash::load_a;
using flash::load_b_kn;
using flash::load_b_nk;
using flash::pack_bf16;
using flash::warp_mma_abt;
using flash::warp_mma_pb;

static __device__ __forceinline__ float warp_inclusive_max(float x) {
    const int lane = threadIdx.x & 31;
    #pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
        const float y = __shfl_sync(FULL, x, lane >= d ? lane - d : lane);
        if (lane >= d) x = fmaxf(x, y);
    }
    return x;
}

// The sum over the 4 lanes of a quad (the lanes that share a row of an mma fragment), fixed order.
static __device__ __forceinline__ float quad_sum(float x) {
    x += __shfl_xor_sync(FULL, x, 1);
    return x + __shfl_xor_sync(FULL, x, 2);
}

// c, R (B,NH,T), ms (B,NH,NC) and, when m_out is not NULL, m_out (B,NH,T): one warp per (b, h).
__global__ void __launch_bounds__(THREADS)
    tc_prep_kernel(float* cv, float* rv, float* ms, float* m_out, const bf16* gates, int B, int T, int NH, int L,
                   int NC, int sig_igate) {
    const int lane = threadIdx.x & 31;
    const long bh = (long)blockIdx.x * WARPS + threadIdx.x / 32;
    if (bh >= (long)B * NH) return;
    const int h = (int)(bh % NH), b = (int)(bh / NH);
    float m_state = 0.0f;
    for (int k = 0; k < NC; k++) {
        const int t0 = k * L, t1 = min(T, t0 + L);
        if (lane == 0) ms[bh * NC + k] = m_state;
        float carry_b = 0.0f, carry_max = -INFINITY, m_last = 0.0f;
        for (int lo = t0; lo < t1; lo += 32) {
            const int t = lo + lane;
            const bool valid = t < t1;
            float li = 0.0f, lf = 0.0f;
            if (valid) {
                const bf16* g = gates + ((size_t)b * T + t) * 2 * NH + h;
                const float zi = soft_cap(to_float(g[0]));
                li = sig_igate ? log_sigmoid(zi) : zi;
                lf = log_sigmoid(soft_cap(to_float(g[NH])));
            }
            const float incl = warp_inclusive_sum(lf);
            const float b_t = carry_b + incl, c = li - b_t;
            const float pm = fmaxf(carry_max, warp_inclusive_max(valid ? c : -INFINITY));
            const float R = sig_igate ? -b_t : fmaxf(m_state, pm), m = sig_igate ? 0.0f : b_t + R;
            if (valid) {
                cv[bh * T + t] = c;
                rv[bh * T + t] = R;
                if (m_out) m_out[bh * T + t] = m;
            }
            if (t1 - 1 - lo < 32) m_last = __shfl_sync(FULL, m, t1 - 1 - lo);
            carry_b += __shfl_sync(FULL, incl, 31);
            carry_max = __shfl_sync(FULL, pm, 31);
        }
        m_state = m_last;
    }
}

// ROWS x COLS bf16 of src (rows `stride` elements apart, from row0; rows at or past n_rows become
// zeros) into dst (ROWS, LD) by NT threads with cp.async.
template <int ROWS, int COLS, int LD, int NT>
static __device__ __forceinline__ void load_rows(bf16* dst, const bf16* src, size_t stride, int row0, int n_rows) {
    constexpr int CHUNKS = COLS / 8;
    for (int idx = threadIdx.x; idx < ROWS * CHUNKS; idx += NT) {
        const int r = idx / CHUNKS, c = idx % CHUNKS * 8;
        const bool valid = row0 + r < n_rows;
        cp_async_16(dst + r * LD + c, src + (valid ? (size_t)(row0 + r) * stride + c : 0), valid);
    }
}

// A (16 x 16) at rows m0.., k-step k0 of A = M^T for a row-major [k][m] tile M (ldmatrix.trans; see flash.cuh:
// matrix i of the x4 is rows k0 + 8 (i >> 1).., columns m0 + 8 (i & 1)..).
template <int LD> static __device__ __forceinline__ void load_a_km(uint32_t a[4], const bf16* tile, int m0, int k0) {
    const int lane = threadIdx.x & 31;
    ldmatrix_x4_trans(a, tile + (k0 + (lane & 7) + ((lane >> 4) << 3)) * LD + m0 + (((lane >> 3) & 1) << 3));
}

// A bf16 pair times (x0, x1), rounded back to a bf16 pair.
static __device__ __forceinline__ uint32_t scale_pair(uint32_t u, float x0, float x1) {
    __nv_bfloat162 v;
    memcpy(&v, &u, sizeof(v));
    const float2 f = __bfloat1622float2(v);
    return pack_bf16(f.x * x0, f.y * x1);
}

// acc (16 x N) += A B: A = rows a_row.. of the row-major [m][k] smem tile a_s (K columns), B = the
// row-major [k][n] smem tile b_s (K rows, N columns).
template <int LDA, int LDB, int K, int N>
static __device__ __forceinline__ void warp_mma_ab(float (*acc)[4], const bf16* a_s, int a_row, const bf16* b_s) {
    #pragma unroll
    for (int kk = 0; kk < K / 16; kk++) {
        uint32_t a[4];
        load_a<LDA>(a, a_s, a_row, kk * 16);
        #pragma unroll
        for (int nb = 0; nb < N / 8; nb += 2) {
            uint32_t bb[4];
            load_b_kn<LDB>(bb, b_s, kk * 16, nb * 8);
            mma_bf16(acc[nb], a, bb[0], bb[1]);
            mma_bf16(acc[nb + 1], a, bb[2], bb[3]);
        }
    }
}

// Multiplies the rows of a warp's C fragments (16 x 8 NB) by x[0] (row g) and x[1] (row g + 8).
template <int NB> static __device__ __forceinline__ void scale_rows(float (*acc)[4], const float x[2]) {
    #pragma unroll
    for (int nb = 0; nb < NB; nb++) {
        acc[nb][0] *= x[0];
        acc[nb][1] *= x[0];
        acc[nb][2] *= x[1];
        acc[nb][3] *= x[1];
    }
}

// The row-major tile sizes shared by the kernels below.
template <int HS> struct TcTiles {
    static constexpr int LD = HS + 8;
    static constexpr size_t tile(int rows) { return (size_t)rows * LD * sizeof(bf16); }
};

// ---------------------------------------------------------------------------------------------------
// The chunk states (BWD = false) or their gradients (BWD = true), one CTA per (b, h, NV value columns),
// HS / 16 warps, warp w owning rows (key dims) 16 w .. 16 w + 15. Forward: out slot k = the state
// entering chunk k + 1 (k = 0..NC-2) as bf16 (B,NH,NC-1,HS,HS), ns likewise in fp32 (block x = 0 only).
// Backward: out slot k - 1 = the gradient of the state entering chunk k (k = NC-1..1).
template <int HS, int L> struct StateTiles {
    static constexpr int NV = HS < 64 ? HS : 64, LDA = HS + 8, LDB = NV + 8, NT = 2 * HS;
    static constexpr size_t SMEM = (size_t)L * (LDA + LDB) * sizeof(bf16) + L * sizeof(float);
};

template <int HS, int L, bool BWD>
__global__ void __launch_bounds__(2 * HS)
    tc_states_kernel(bf16* out, float* ns, const bf16* qkv, const bf16* dh, const float* cv, const float* rv,
                     const float* ms, const float* n_out, int T, int C, int NH, int NC, float scale) {
    typedef StateTiles<HS, L> Tiles;
    constexpr int NV = Tiles::NV, LDA = Tiles::LDA, LDB = Tiles::LDB, NT = Tiles::NT;
    bf16* a_s = dynamic_smem<bf16>();   // [L][LDA]: K (forward) or Q (backward) rows of the chunk
    bf16* b_s = a_s + L * LDA;          // [L][LDB]: V or dH, this CTA's NV columns
    float* w_s = reinterpret_cast<float*>(b_s + L * LDB);   // [L]: e_s or w_t
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane / 4, tq = lane % 4;
    const int j0 = blockIdx.x * NV, h = blockIdx.y, b = blockIdx.z;
    const size_t bh = (size_t)b * NH + h, stride = 3 * (size_t)C;
    const bf16* a_g = qkv + (size_t)b * T * stride + (BWD ? 0 : C) + (size_t)h * HS;
    const bf16* b_g = BWD ? dh + (size_t)b * T * C + (size_t)h * HS + j0
                          : qkv + (size_t)b * T * stride + 2 * C + (size_t)h * HS + j0;
    const size_t b_stride = BWD ? (size_t)C : stride;
    const bool with_n = !BWD && ns && blockIdx.x == 0 && threadIdx.x < HS;
    float acc[NV / 8][4] = {};
    float n_reg = 0.0f;
    for (int it = 0; it < NC - 1; it++) {
        const int k = BWD ? NC - 1 - it : it, t0 = k * L;
        load_rows<L, HS, LDA, NT>(a_s, a_g, stride, t0, T);
        load_rows<L, NV, LDB, NT>(b_s, b_g, b_stride, t0, T);
        cp_async_commit();
        const float m_k = ms[bh * NC + k];
        // the decay of chunk k (a full chunk: all but the last), 1 for the backward's first (last) chunk
        const float decay = BWD && k == NC - 1 ? 1.0f : expf(m_k - rv[bh * T + t0 + L - 1]);
        for (int i = threadIdx.x; i < L; i += NT) {
            const int t = t0 + i;
            float w = 0.0f;
            if (!BWD) w = expf(cv[bh * T + t] - rv[bh * T + t0 + L - 1]);
            else if (t < T) w = expf(m_k - rv[bh * T + t]) * scale / (n_out[bh * T + t] + MLSTM_EPS);
            w_s[i] = w;
        }
        cp_async_wait<0>();
        __syncthreads();
        if (with_n) {
            float sum = 0.0f;
            for (int i = 0; i < L; i++) sum += w_s[i] * to_float(a_s[i * LDA + threadIdx.x]);
            n_reg = decay * n_reg + sum;
            ns[(bh * (NC - 1) + k) * HS + threadIdx.x] = n_reg;
        }
        #pragma unroll
        for (int nb = 0; nb < NV / 8; nb++)
            #pragma unroll
            for (int e = 0; e < 4; e++) acc[nb][e] *= decay;
        #pragma unroll 2
        for (int kk = 0; kk < L / 16; kk++) {
            uint32_t a[4];
            load_a_km<LDA>(a, a_s, warp * 16, kk * 16);
            const float w0 = w_s[kk * 16 + 2 * tq], w1 = w_s[kk * 16 + 2 * tq + 1];
            const float w8 = w_s[kk * 16 + 2 * tq + 8], w9 = w_s[kk * 16 + 2 * tq + 9];
            a[0] = scale_pair(a[0], w0, w1);
            a[1] = scale_pair(a[1], w0, w1);
            a[2] = scale_pair(a[2], w8, w9);
            a[3] = scale_pair(a[3], w8, w9);
            #pragma unroll
            for (int nb = 0; nb < NV / 8; nb += 2) {
                uint32_t bb[4];
                load_b_kn<LDB>(bb, b_s, kk * 16, nb * 8);
                mma_bf16(acc[nb], a, bb[0], bb[1]);
                mma_bf16(acc[nb + 1], a, bb[2], bb[3]);
            }
        }
        bf16* dst = out + (bh * (NC - 1) + (BWD ? k - 1 : k)) * HS * HS + (size_t)(warp * 16 + g) * HS + j0 + 2 * tq;
        #pragma unroll
        for (int nb = 0; nb < NV / 8; nb++) {
            *reinterpret_cast<__nv_bfloat162*>(dst + nb * 8) = __floats2bfloat162_rn(acc[nb][0], acc[nb][1]);
            *reinterpret_cast<__nv_bfloat162*>(dst + 8 * HS + nb * 8) = __floats2bfloat162_rn(acc[nb][2], acc[nb][3]);
        }
        __syncthreads();   // a_s, b_s, w_s are refilled for the next chunk
    }
}

// ---------------------------------------------------------------------------------------------------
// The forward rows: CTA = 64 query rows q0.. of chunk k = q0 / L, 4 warps x 16 rows; the keys t0..q0+63
// of the chunk (NK = 64 or 128 rows) and the state entering the chunk in shared memory.
template <int HS, int L> struct ForwardTcTiles {
    typedef TcTiles<HS> Tl;
    static constexpr size_t SMEM = Tl::tile(64) + 2 * Tl::tile(L) + Tl::tile(HS) + (HS + L + 64) * sizeof(float);
};

template <int HS, int L>
__global__ void __launch_bounds__(THREADS)
    tc_forward_kernel(bf16* h_out, float* n_out, const float* m_out, const bf16* qkv, const bf16* Cs, const float* ns,
                      const float* cv, const float* rv, const float* ms, int T, int C, int NH, int NC, float scale) {
    constexpr int LD = TcTiles<HS>::LD;
    bf16* q_s = dynamic_smem<bf16>();   // [64][LD]
    bf16* k_s = q_s + 64 * LD;          // [L][LD]
    bf16* v_s = k_s + L * LD;           // [L][LD]
    bf16* c_s = v_s + L * LD;           // [HS][LD]: the state C [key dim][value dim]
    float* n_s = reinterpret_cast<float*>(c_s + HS * LD);   // [HS]
    float* cval = n_s + HS;                                 // [L]: c of the keys t0..
    float* rval = cval + L;                                 // [64]: R of the rows q0..
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane / 4, tq = lane % 4;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * 64, h = blockIdx.y, b = blockIdx.z;
    const int k = q0 / L, t0 = k * L, nk = q0 + 64 - t0;
    const size_t bh = (size_t)b * NH + h, stride = 3 * (size_t)C;
    const bf16* q_g = qkv + (size_t)b * T * stride + (size_t)h * HS;
    load_rows<64, HS, LD, THREADS>(q_s, q_g, stride, q0, T);
    load_rows<L, HS, LD, THREADS>(k_s, q_g + C, stride, t0, min(T, q0 + 64));
    load_rows<L, HS, LD, THREADS>(v_s, q_g + 2 * C, stride, t0, min(T, q0 + 64));
    if (k > 0) load_rows<HS, HS, LD, THREADS>(c_s, Cs + (bh * (NC - 1) + k - 1) * HS * HS, HS, 0, HS);
    cp_async_commit();
    for (int i = threadIdx.x; i < HS; i += THREADS) n_s[i] = k > 0 ? ns[(bh * (NC - 1) + k - 1) * HS + i] : 0.0f;
    for (int i = threadIdx.x; i < L; i += THREADS) cval[i] = t0 + i < T ? cv[bh * T + t0 + i] : 0.0f;
    for (int i = threadIdx.x; i < 64; i += THREADS) rval[i] = q0 + i < T ? rv[bh * T + q0 + i] : 0.0f;
    cp_async_wait<0>();
    __syncthreads();

    const int row_w = warp * 16, i_r = q0 + row_w + g;   // this thread's rows: i_r, i_r + 8
    const float m_k = ms[bh * NC + k];
    float o[HS / 8][4] = {}, den[2] = {0.0f, 0.0f};
    if (k > 0) {   // the state term: beta_t (Q C)_t / sqrt(hs) and beta_t q_t.n / sqrt(hs)
        warp_mma_ab<LD, LD, HS, HS>(o, q_s, row_w, c_s);
        float beta[2];
        #pragma unroll
        for (int r = 0; r < 2; r++) {
            beta[r] = expf(m_k - rval[row_w + g + 8 * r]) * scale;
            float dot = 0.0f;
            for (int c = tq; c < HS; c += 4) dot += to_float(q_s[(row_w + g + 8 * r) * LD + c]) * n_s[c];
            den[r] = beta[r] * dot;   // this lane's part; the quad adds up at the end
        }
        scale_rows<HS / 8>(o, beta);
    }
    for (int kt = 0; kt * 64 < nk; kt++) {
        float s[8][4] = {};
        warp_mma_abt<LD, HS, 64>(s, q_s, row_w, k_s + kt * 64 * LD);
        #pragma unroll
        for (int nb = 0; nb < 8; nb++) {
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                const int j = kt * 64 + nb * 8 + 2 * tq + (e & 1), r = row_w + g + 8 * (e >> 1);   // key t0 + j, row q0 + r
                const float x = t0 + j <= q0 + r ? s[nb][e] * scale * expf(cval[j] - rval[r]) : 0.0f;
                s[nb][e] = x;
                den[e >> 1] += x;
            }
        }
        warp_mma_pb<LD, HS, 64>(o, s, v_s + kt * 64 * LD);
    }
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        const float d = quad_sum(den[r]);
        const int i = i_r + 8 * r;
        if (i < T) {
            const float n = fmaxf(fabsf(d), expf(-m_out[bh * T + i])), inv = 1.0f / (n + MLSTM_EPS);
            bf16* out = h_out + ((size_t)b * T + i) * C + (size_t)h * HS + 2 * tq;
            #pragma unroll
            for (int nd = 0; nd < HS / 8; nd++)
                *reinterpret_cast<__nv_bfloat162*>(out + nd * 8) =
                    __floats2bfloat162_rn(o[nd][2 * r] * inv, o[nd][2 * r + 1] * inv);
            if (tq == 0) n_out[bh * T + i] = n;
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// dQ: CTA = 64 query rows of one chunk; the keys of the chunk up to the tile in BK-row steps.
template <int HS, int L> struct DqTcTiles {
    typedef TcTiles<HS> Tl;
    static constexpr int BK = HS == 128 ? 32 : 64;
    static constexpr size_t SMEM = 2 * Tl::tile(64) + 2 * Tl::tile(L) + Tl::tile(HS) + (L + 2 * 64) * sizeof(float);
};

template <int HS, int L>
__global__ void __launch_bounds__(THREADS)
    tc_backward_dq_kernel(bf16* dqkv, float* P, const bf16* dh, const bf16* qkv, const bf16* Cs, const float* cv,
                          const float* rv, const float* ms, const float* n_out, int T, int C, int NH, int NC,
                          float scale) {
    constexpr int LD = TcTiles<HS>::LD, BK = DqTcTiles<HS, L>::BK;
    bf16* q_s = dynamic_smem<bf16>();   // [64][LD]
    bf16* dh_s = q_s + 64 * LD;         // [64][LD]
    bf16* k_s = dh_s + 64 * LD;         // [L][LD]
    bf16* v_s = k_s + L * LD;           // [L][LD]
    bf16* c_s = v_s + L * LD;           // [HS][LD]
    float* cval = reinterpret_cast<float*>(c_s + HS * LD);   // [L]
    float* rval = cval + L;                                  // [64]
    float* inv_s = rval + 64;                                // [64]: 1 / (n_out + eps) of the rows
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane / 4, tq = lane % 4;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * 64, h = blockIdx.y, b = blockIdx.z;
    const int k = q0 / L, t0 = k * L, nk = q0 + 64 - t0;
    const size_t bh = (size_t)b * NH + h, stride = 3 * (size_t)C;
    const bf16* q_g = qkv + (size_t)b * T * stride + (size_t)h * HS;
    load_rows<64, HS, LD, THREADS>(q_s, q_g, stride, q0, T);
    load_rows<64, HS, LD, THREADS>(dh_s, dh + (size_t)b * T * C + (size_t)h * HS, C, q0, T);
    load_rows<L, HS, LD, THREADS>(k_s, q_g + C, stride, t0, min(T, q0 + 64));
    load_rows<L, HS, LD, THREADS>(v_s, q_g + 2 * C, stride, t0, min(T, q0 + 64));
    if (k > 0) load_rows<HS, HS, LD, THREADS>(c_s, Cs + (bh * (NC - 1) + k - 1) * HS * HS, HS, 0, HS);
    cp_async_commit();
    for (int i = threadIdx.x; i < L; i += THREADS) cval[i] = t0 + i < T ? cv[bh * T + t0 + i] : 0.0f;
    for (int i = threadIdx.x; i < 64; i += THREADS) {
        const bool valid = q0 + i < T;
        rval[i] = valid ? rv[bh * T + q0 + i] : 0.0f;
        inv_s[i] = valid ? 1.0f / (n_out[bh * T + q0 + i] + MLSTM_EPS) : 0.0f;
    }
    cp_async_wait<0>();
    __syncthreads();

    const int row_w = warp * 16, i_r = q0 + row_w + g;
    float dq[HS / 8][4] = {};
    if (k > 0) {   // dq_t = beta_t / sqrt(hs) / (n_t + eps) (C dh_t) = w_t (dH C^T)_t
        warp_mma_abt<LD, HS, HS>(dq, dh_s, row_w, c_s);
        const float m_k = ms[bh * NC + k];
        float w[2];
        #pragma unroll
        for (int r = 0; r < 2; r++) {
            const int rr = row_w + g + 8 * r;
            w[r] = expf(m_k - rval[rr]) * scale * inv_s[rr];
        }
        scale_rows<HS / 8>(dq, w);
    }
    for (int kt = 0; kt * BK < nk; kt++) {
        float dp[BK / 8][4] = {};
        warp_mma_abt<LD, HS, BK>(dp, dh_s, row_w, v_s + kt * BK * LD);
        #pragma unroll
        for (int nb = 0; nb < BK / 8; nb++) {
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                const int j = kt * BK + nb * 8 + 2 * tq + (e & 1), r = row_w + g + 8 * (e >> 1);
                dp[nb][e] = t0 + j <= q0 + r ? dp[nb][e] * scale * expf(cval[j] - rval[r]) * inv_s[r] : 0.0f;
            }
        }
        warp_mma_pb<LD, HS, BK>(dq, dp, k_s + kt * BK * LD);
    }
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = i_r + 8 * r, rr = row_w + g + 8 * r;
        float p = 0.0f;
        #pragma unroll
        for (int nd = 0; nd < HS / 8; nd++)
            p += to_float(q_s[rr * LD + nd * 8 + 2 * tq]) * dq[nd][2 * r] +
                 to_float(q_s[rr * LD + nd * 8 + 2 * tq + 1]) * dq[nd][2 * r + 1];
        p = quad_sum(p);
        if (i < T) {
            bf16* dq_row = dqkv + ((size_t)b * T + i) * stride + (size_t)h * HS + 2 * tq;
            #pragma unroll
            for (int nd = 0; nd < HS / 8; nd++) add_pair(dq_row + nd * 8, dq[nd][2 * r], dq[nd][2 * r + 1]);
            if (tq == 0) P[bh * T + i] = p;
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// dK, dV: CTA = 64 key rows kv0.. of one chunk; the queries kv0 .. t0+L-1 of the chunk in BQ-column steps,
// and the gradient G of the state after the chunk.
template <int HS, int L> struct DkdvTcTiles {
    typedef TcTiles<HS> Tl;
    static constexpr int BQ = HS == 128 ? 32 : 64;
    static constexpr size_t SMEM = 2 * Tl::tile(64) + 2 * Tl::tile(L) + Tl::tile(HS) + (64 + 2 * L) * sizeof(float);
};

template <int HS, int L>
__global__ void __launch_bounds__(THREADS)
    tc_backward_dkdv_kernel(bf16* dqkv, float* Kd, const bf16* dh, const bf16* qkv, const bf16* Gs, const float* cv,
                            const float* rv, const float* n_out, int T, int C, int NH, int NC, float scale) {
    constexpr int LD = TcTiles<HS>::LD, BQ = DkdvTcTiles<HS, L>::BQ;
    bf16* k_s = dynamic_smem<bf16>();   // [64][LD]
    bf16* v_s = k_s + 64 * LD;          // [64][LD]
    bf16* q_s = v_s + 64 * LD;          // [L][LD]: queries kv0..
    bf16* dh_s = q_s + L * LD;          // [L][LD]
    bf16* g_s = dh_s + L * LD;          // [HS][LD]: G [key dim][value dim]
    float* cval = reinterpret_cast<float*>(g_s + HS * LD);   // [64]: c of the keys
    float* rval = cval + 64;                                 // [L]: R of the queries kv0..
    float* inv_s = rval + L;                                 // [L]
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane / 4, tq = lane % 4;
    const int kv0 = blockIdx.x * 64, h = blockIdx.y, b = blockIdx.z;
    const int k = kv0 / L, t0 = k * L, nq = t0 + L - kv0;
    const size_t bh = (size_t)b * NH + h, stride = 3 * (size_t)C;
    const bf16* q_g = qkv + (size_t)b * T * stride + (size_t)h * HS;
    load_rows<64, HS, LD, THREADS>(k_s, q_g + C, stride, kv0, T);
    load_rows<64, HS, LD, THREADS>(v_s, q_g + 2 * C, stride, kv0, T);
    const int t_end = min(T, t0 + L);   // the chunk's end
    load_rows<L, HS, LD, THREADS>(q_s, q_g, stride, kv0, t_end);
    load_rows<L, HS, LD, THREADS>(dh_s, dh + (size_t)b * T * C + (size_t)h * HS, C, kv0, t_end);
    const bool has_state = k + 1 < NC;
    if (has_state) load_rows<HS, HS, LD, THREADS>(g_s, Gs + (bh * (NC - 1) + k) * HS * HS, HS, 0, HS);
    cp_async_commit();
    for (int i = threadIdx.x; i < 64; i += THREADS) cval[i] = kv0 + i < T ? cv[bh * T + kv0 + i] : 0.0f;
    for (int i = threadIdx.x; i < L; i += THREADS) {
        const bool valid = kv0 + i < t_end;
        rval[i] = valid ? rv[bh * T + kv0 + i] : 0.0f;
        inv_s[i] = valid ? 1.0f / (n_out[bh * T + kv0 + i] + MLSTM_EPS) : 0.0f;
    }
    cp_async_wait<0>();
    __syncthreads();

    const int row_w = warp * 16, j_r = kv0 + row_w + g;   // this thread's keys: j_r, j_r + 8
    float dk[HS / 8][4] = {}, dv[HS / 8][4] = {};
    if (has_state) {   // dk_s = e_s G v_s = e_s (V G^T)_s, dv_s = e_s G^T k_s = e_s (K G)_s
        warp_mma_abt<LD, HS, HS>(dk, v_s, row_w, g_s);
        warp_mma_ab<LD, LD, HS, HS>(dv, k_s, row_w, g_s);
        const float r_last = rv[bh * T + t0 + L - 1];   // a full chunk: not the last
        float e[2];
        #pragma unroll
        for (int r = 0; r < 2; r++) e[r] = expf(cval[row_w + g + 8 * r] - r_last);
        scale_rows<HS / 8>(dk, e);
        scale_rows<HS / 8>(dv, e);
    }
    for (int qt = 0; qt * BQ < nq; qt++) {
        float st[BQ / 8][4] = {}, dpt[BQ / 8][4] = {};
        warp_mma_abt<LD, HS, BQ>(st, k_s, row_w, q_s + qt * BQ * LD);
        warp_mma_abt<LD, HS, BQ>(dpt, v_s, row_w, dh_s + qt * BQ * LD);
        #pragma unroll
        for (int nb = 0; nb < BQ / 8; nb++) {
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                const int col = qt * BQ + nb * 8 + 2 * tq + (e & 1), r = row_w + g + 8 * (e >> 1);   // query kv0 + col, key kv0 + r
                const bool valid = col >= r && kv0 + col < T;
                const float f = valid ? scale * expf(cval[r] - rval[col]) * inv_s[col] : 0.0f;
                st[nb][e] *= f;
                dpt[nb][e] *= f;
            }
        }
        warp_mma_pb<LD, HS, BQ>(dv, st, dh_s + qt * BQ * LD);
        warp_mma_pb<LD, HS, BQ>(dk, dpt, q_s + qt * BQ * LD);
    }
    #pragma unroll
    for (int r = 0; r < 2; r++) {
        const int j = j_r + 8 * r, rr = row_w + g + 8 * r;
        float kk = 0.0f;
        #pragma unroll
        for (int nd = 0; nd < HS / 8; nd++)
            kk += to_float(k_s[rr * LD + nd * 8 + 2 * tq]) * dk[nd][2 * r] +
                  to_float(k_s[rr * LD + nd * 8 + 2 * tq + 1]) * dk[nd][2 * r + 1];
        kk = quad_sum(kk);
        if (j < T) {
            bf16* dk_row = dqkv + ((size_t)b * T + j) * stride + C + (size_t)h * HS + 2 * tq;
            bf16* dv_row = dk_row + C;
            #pragma unroll
            for (int nd = 0; nd < HS / 8; nd++) {
                add_pair(dk_row + nd * 8, dk[nd][2 * r], dk[nd][2 * r + 1]);
                add_pair(dv_row + nd * 8, dv[nd][2 * r], dv[nd][2 * r + 1]);
            }
            if (tq == 0) Kd[bh * T + j] = kk;
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Host side of the tensor-core path.
bool tc_applies(int hs, int chunk) { return flash::tensor_core_head_size(hs) && (chunk == 64 || chunk == 128); }

// f(integral_constant HS, integral_constant L) for hs in {32, 64, 128}, chunk in {64, 128}.
template <typename F> static void with_tc_shape(int hs, int chunk, F f) {
    flash::with_head_size(hs, [&](auto head_size) {
        if (chunk == 64) f(head_size, std::integral_constant<int, 64>());
        else f(head_size, std::integral_constant<int, 128>());
    });
}

// c, R (B,NH,T) and ms (B,NH,NC); m_out too when not NULL.
static void tc_prep(float* cv, float* rv, float* ms, float* m_out, const bf16* gates, int B, int T, int NH, int L,
                    int NC, int sig_igate) {
    tc_prep_kernel<<<ceil_div((long)B * NH, WARPS), THREADS>>>(cv, rv, ms, m_out, gates, B, T, NH, L, NC, sig_igate);
    cuda_check_launch();
}

template <int HS, int L, bool BWD>
static void tc_states(bf16* out, float* ns, const bf16* qkv, const bf16* dh, const float* cv, const float* rv,
                      const float* ms, const float* n_out, int B, int T, int C, int NH, int NC, float scale) {
    typedef StateTiles<HS, L> Tiles;
    if (NC < 2) return;
    flash::allow_smem(tc_states_kernel<HS, L, BWD>, Tiles::SMEM);
    tc_states_kernel<HS, L, BWD><<<dim3(HS / Tiles::NV, NH, B), Tiles::NT, Tiles::SMEM>>>(
        out, ns, qkv, dh, cv, rv, ms, n_out, T, C, NH, NC, scale);
    cuda_check_launch();
}

void tc_forward(bf16* h, float* n_out, float* m_out, const bf16* qkv, const bf16* gates, int B, int T, int C,
                       int NH, int L, int sig_igate) {
    const int hs = C / NH, NC = (T + L - 1) / L;
    const size_t bhT = (size_t)B * NH * T, states = (size_t)B * NH * (NC - 1);
    // c, R, ms, ns (fp32), the states (bf16)
    Scratch scratch(2 * Scratch::round(bhT) + Scratch::round((size_t)B * NH * NC) + Scratch::round(states * hs) +
                    Scratch::round(states * hs * hs / 2));
    float* cv = scratch.take(bhT);
    float* rv = scratch.take(bhT);
    float* ms = scratch.take((size_t)B * NH * NC);
    float* ns = scratch.take(states * hs);
    bf16* Cs = reinterpret_cast<bf16*>(scratch.take(states * hs * hs / 2));
    const float scale = 1.0f / sqrtf((float)hs);
    tc_prep(cv, rv, ms, m_out, gates, B, T, NH, L, NC, sig_igate);
    with_tc_shape(hs, L, [&](auto head_size, auto chunk) {
        constexpr int HS = decltype(head_size)::value, LL = decltype(chunk)::value;
        tc_states<HS, LL, false>(Cs, ns, qkv, nullptr, cv, rv, ms, nullptr, B, T, C, NH, NC, scale);
        const size_t smem = ForwardTcTiles<HS, LL>::SMEM;
        flash::allow_smem(tc_forward_kernel<HS, LL>, smem);
        tc_forward_kernel<HS, LL><<<dim3(ceil_div(T, 64), NH, B), THREADS, smem>>>(h, n_out, m_out, qkv, Cs, ns, cv, rv,
                                                                                   ms, T, C, NH, NC, scale);
        cuda_check_launch();
    });
}

void tc_backward(bf16* dqkv, bf16* dgates, const bf16* dh, const bf16* qkv, const bf16* gates,
                        const float* n_out, int B, int T, int C, int NH, int L, int sig_igate) {
    const int hs = C / NH, NC = (T + L - 1) / L;
    const size_t bhT = (size_t)B * NH * T, states = (size_t)B * NH * (NC - 1);
    // c, R, P, K, ms (fp32), the states and their gradients (bf16)
    Scratch scratch(4 * Scratch::round(bhT) + Scratch::round((size_t)B * NH * NC) +
                    2 * Scratch::round(states * hs * hs / 2));
    float* cv = scratch.take(bhT);
    float* rv = scratch.take(bhT);
    float* P = scratch.take(bhT);
    float* K = scratch.take(bhT);
    float* ms = scratch.take((size_t)B * NH * NC);
    bf16* Cs = reinterpret_cast<bf16*>(scratch.take(states * hs * hs / 2));
    bf16* Gs = reinterpret_cast<bf16*>(scratch.take(states * hs * hs / 2));
    const float scale = 1.0f / sqrtf((float)hs);
    tc_prep(cv, rv, ms, nullptr, gates, B, T, NH, L, NC, sig_igate);
    with_tc_shape(hs, L, [&](auto head_size, auto chunk) {
        constexpr int HS = decltype(head_size)::value, LL = decltype(chunk)::value;
        tc_states<HS, LL, false>(Cs, nullptr, qkv, nullptr, cv, rv, ms, nullptr, B, T, C, NH, NC, scale);
        tc_states<HS, LL, true>(Gs, nullptr, qkv, dh, cv, rv, ms, n_out, B, T, C, NH, NC, scale);
        const size_t smem_dq = DqTcTiles<HS, LL>::SMEM, smem_dkdv = DkdvTcTiles<HS, LL>::SMEM;
        flash::allow_smem(tc_backward_dq_kernel<HS, LL>, smem_dq);
        tc_backward_dq_kernel<HS, LL><<<dim3(ceil_div(T, 64), NH, B), THREADS, smem_dq>>>(
            dqkv, P, dh, qkv, Cs, cv, rv, ms, n_out, T, C, NH, NC, scale);
        cuda_check_launch();
        flash::allow_smem(tc_backward_dkdv_kernel<HS, LL>, smem_dkdv);
        tc_backward_dkdv_kernel<HS, LL><<<dim3(ceil_div(T, 64), NH, B), THREADS, smem_dkdv>>>(
            dqkv, K, dh, qkv, Gs, cv, rv, n_out, T, C, NH, NC, scale);
        cuda_check_launch();
    });
    gate_grads(dgates, gates, P, K, B, T, NH, sig_igate);
}

}   // namespace mlstm
#endif   // ATTNLAB_BF16
