// The CUDA twins of attention/mlstm.c (attention/mlstm_cuda.h): the mLSTM cell (docs/MODEL.md section 11)
// in its chunkwise form, in the spirit of Tiled Flash Linear Attention (Beck et al., arXiv 2503.14376):
// the chunk states are materialized by a kernel that runs over the chunks of each (b, h) in order
// (into a stream-ordered scratch buffer, cudaMallocAsync), and every output row of a chunk is its query
// read against the state entering the chunk plus the keys of the chunk up to itself. Same arguments,
// layouts, gradient convention (n_out and m_out constants) and accumulation (+=) as the CPU kernels.
//
// Two families, as attention/softmax_sigmoid.cu:
//  - tensor-core kernels (bf16 build, head size 32, 64 or 128, chunk 64 or 128, 16-byte aligned
//    tensors; the "Tensor-core path" section below): mma.sync bf16 -> fp32 for the state products,
//    Q K^T, (S * D) V and their backward products, the gate matrix applied in registers;
//  - fp32 kernels (everything else: the FP32 build, other head sizes, other chunk sizes), described
//    here. The recurrent step and the analysis matrix are fp32 in both builds.
//
// fp32 forward (any T, any chunk >= 1; the last chunk may be shorter):
//  1. log_gates_kernel: li, lf (B,NH,T) fp32 from the raw gates (soft-cap, then i~ or logsigmoid(i~),
//     logsigmoid(f~)), one thread per (b, h, t).
//  2. chunk_states_kernel: the state (C, n, m) entering each chunk k >= 1: CTA = 128 elements of C
//     (and n) of one (b, h), looping over the chunks in order; each thread owns one element and adds
//     the chunk's keys in a fixed order.
//  3. forward_rows_kernel: one warp per output row t: the state term beta C^T q, then the keys
//     t0..t of the chunk, lanes over keys for q.k, lanes over the head dimension for the output.
// fp32 backward:
//  1. as the forward's 1 and 2 (the states C, m are recomputed, n is not needed);
//  2. state_grads_kernel: the gradient G of the state entering each chunk k >= 1, a reverse pass over
//     the chunks (G_k = decay_k G_{k+1} + sum_{t in chunk k} beta_t q_t dh'_t^T), as the states;
//  3. backward_dq_kernel (warp per query row) and backward_dkdv_kernel (warp per key row): the in-chunk
//     terms plus the state terms, each += into its own columns of dqkv, and the per-position terms
//     q_t.dq_t and k_t.dk_t of the gate gradients into scratch;
//  4. gate_grads_kernel (both families): one warp per (b, h): d li_t = k_t.dk_t,
//     d lf_t = sum_{u>=t} (q_u.dq_u - k_u.dk_u), a reverse scan over time in tiles of 32 (a fixed tree
//     inside a tile, a carry across tiles), through the gates' sigmoid and the soft-cap.
// The fp32 kernels sum log weights as the CPU does (docs/MODEL.md 11.2): from the query downwards in the
// forward and dQ (warp scans of 32 keys at a time, carried), from the key upwards in dK/dV, so a near
// key never sees the cancellation of two long cumulative sums.
//
// Determinism: no atomics anywhere; every output element (h, n_out, m_out, each element of dqkv and
// dgates, each scratch value) is written by exactly one thread, and every sum has a fixed order
// (warp shuffles in a fixed tree, loops and mma k-steps in a fixed order), so the results are bitwise
// reproducible run to run.
#include <cmath>
#include <cstdint>

#include "common/cuda_common.cuh"
#include "common/fastmath.h"
#include "attention/flash.cuh"
#include "common/ptx.cuh"

extern "C" {
#include "attention/mlstm.h"
#include "common/check.h"
}

namespace mlstm {

constexpr int THREADS = 128;   // every kernel but the recurrent step: 4 warps
constexpr int WARPS = THREADS / 32;
constexpr unsigned FULL = 0xffffffffu;

// ---------------------------------------------------------------------------------------------------
// Scalar helpers (the CPU's, attention/mlstm.c), accurate versions: expf, tanhf, log1pf.
static __device__ __forceinline__ float soft_cap(float z) { return MLSTM_GATE_SOFT_CAP * tanhf(z / MLSTM_GATE_SOFT_CAP); }
static __device__ __forceinline__ float soft_cap_grad(float z) {
    const float th = tanhf(z / MLSTM_GATE_SOFT_CAP);
    return 1.0f - th * th;
}
static __device__ __forceinline__ float log_sigmoid(float x) {
    return x < 0.0f ? x - log1pf(expf(x)) : -log1pf(expf(-x));
}
static __device__ __forceinline__ float sigmoid_accurate(float x) { return 1.0f / (1.0f + expf(-x)); }

static __device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(FULL, x, o);
    return x;
}
static __device__ __forceinline__ float warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(FULL, x, o));
    return x;
}
// Inclusive prefix sum over the lanes, lane 0 first (Hillis-Steele: a fixed tree). Whole warp.
static __device__ __forceinline__ float warp_inclusive_sum(float x) {
    const int lane = threadIdx.x & 31;
    #pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
        const float y = __shfl_sync(FULL, x, lane >= d ? lane - d : lane);
        if (lane >= d) x += y;
    }
    return x;
}
// The exclusive one from the inclusive one (lane 0: 0).
static __device__ __forceinline__ float warp_exclusive_from(float incl) {
    const int lane = threadIdx.x & 31;
    const float y = __shfl_sync(FULL, incl, lane > 0 ? lane - 1 : 0);
    return lane > 0 ? y : 0.0f;
}

// The keys s = lo..hi of the chunk seen from the top hi, 32 at a time downwards: lane l takes s = top - l
// of the current tile; excl = sum_{r=s+1..top} lf_r within the tile, so the log weight of s seen from
// the row `hi` is carry + excl + li_s (docs/MODEL.md 11.2), carry = sum_{r=top+1..hi} lf_r.
struct DownScan {
    float carry = 0.0f;
    // Log weight of key s = top - lane (valid: s >= lo) and the tile's total into carry after use.
    __device__ __forceinline__ float step(const float* li, const float* lf, int top, int lo, float& tile_total) {
        const int lane = threadIdx.x & 31, s = top - lane;
        const bool valid = s >= lo;
        const float incl = warp_inclusive_sum(valid ? lf[s] : 0.0f);
        const float excl = warp_exclusive_from(incl);
        tile_total = __shfl_sync(FULL, incl, 31);
        return valid ? carry + excl + li[s] : -INFINITY;
    }
};

// ---------------------------------------------------------------------------------------------------
// 1. li, lf (B,NH,T) from gates (B,T,2NH).
__global__ void __launch_bounds__(THREADS)
    log_gates_kernel(float* li, float* lf, const floatD* gates, int B, int T, int NH, int sig_igate) {
    const long idx = (long)blockIdx.x * THREADS + threadIdx.x;
    if (idx >= (long)B * NH * T) return;
    const int t = (int)(idx % T), h = (int)(idx / T % NH), b = (int)(idx / T / NH);
    const floatD* g = gates + ((size_t)b * T + t) * 2 * NH + h;
    const float zi = soft_cap(to_float(g[0])), zf = soft_cap(to_float(g[NH]));
    li[idx] = sig_igate ? log_sigmoid(zi) : zi;
    lf[idx] = log_sigmoid(zf);
}

// ---------------------------------------------------------------------------------------------------
// 2. The states entering chunks 1..NC-1: Cs (B,NH,NC-1,hs,hs), ns (B,NH,NC-1,hs) or NULL, ms (B,NH,NC)
// (ms[0] = 0). Grid (ceil(E / THREADS), NH, B), E = hs^2 (+ hs with n): thread e owns C[c][j] (e = c hs + j)
// or n[c] (e = hs^2 + c). Per chunk: warp 0 scans the chunk's log weights a_s = sum_{r=s+1..t1-1} lf_r + li_s
// twice (the max, then exp(a_s - m_new) 32 keys at a time into shared memory); every thread then adds
// its keys' products in the order s = t1-1 down to t0.
__global__ void __launch_bounds__(THREADS)
    chunk_states_kernel(float* Cs, float* ns, float* ms, const floatD* qkv, const float* li_all, const float* lf_all,
                        int T, int C, int NH, int chunk, int NC, int sig_igate) {
    __shared__ float e_s[32];
    __shared__ float scal_s[2];
    const int hs = C / NH, lane = threadIdx.x & 31, warp = threadIdx.x / 32;
    const int h = blockIdx.y, b = blockIdx.z;
    const size_t bh = (size_t)b * NH + h, hs2 = (size_t)hs * hs;
    const long E = (long)hs2 + (ns ? hs : 0), e = (long)blockIdx.x * THREADS + threadIdx.x;
    const bool active = e < E, is_n = e >= (long)hs2;
    const int c = active ? (is_n ? (int)(e - hs2) : (int)(e / hs)) : 0, j = active && !is_n ? (int)(e % hs) : 0;
    const float* li = li_all + bh * T;
    const float* lf = lf_all + bh * T;
    const size_t stride = 3 * (size_t)C;
    const floatD* k_g = qkv + (size_t)b * T * stride + C + (size_t)h * hs + c;
    const floatD* v_g = qkv + (size_t)b * T * stride + 2 * C + (size_t)h * hs + j;
    if (blockIdx.x == 0 && threadIdx.x == 0) ms[bh * NC] = 0.0f;
    float acc = 0.0f, m = 0.0f;
    for (int k = 0; k + 1 < NC; k++) {
        const int t0 = k * chunk, t1 = t0 + chunk;   // a full chunk: not the last one
        if (warp == 0) {
            DownScan scan;
            float mx = -INFINITY;
            for (int top = t1 - 1; top >= t0; top -= 32) {
                float total;
                mx = fmaxf(mx, scan.step(li, lf, top, t0, total));
                scan.carry += total;
            }
            mx = warp_max(mx);
            const float g = scan.carry, m_new = sig_igate ? 0.0f : fmaxf(g + m, mx);
            if (lane == 0) scal_s[0] = m_new, scal_s[1] = expf(g + m - m_new);
        }
        __syncthreads();
        const float m_new = scal_s[0], decay = scal_s[1];
        acc *= decay;
        DownScan scan;   // warp 0's
        for (int top = t1 - 1; top >= t0; top -= 32) {
            __syncthreads();   // the previous tile's e_s is consumed
            if (warp == 0) {
                float total;
                const float a = scan.step(li, lf, top, t0, total);
                scan.carry += total;
                e_s[lane] = top - lane >= t0 ? expf(a - m_new) : 0.0f;
            }
            __syncthreads();
            const int count = min(32, top - t0 + 1);
            if (active) {
                for (int l = 0; l < count; l++) {
                    const size_t s = top - l;
                    const float kc = to_float(k_g[s * stride]);
                    acc += is_n ? e_s[l] * kc : e_s[l] * kc * to_float(v_g[s * stride]);
                }
            }
        }
        m = m_new;
        const size_t slot = bh * (NC - 1) + k;   // the state entering chunk k + 1
        if (active) {
            if (is_n) ns[slot * hs + c] = acc;
            else Cs[slot * hs2 + e] = acc;
        }
        if (blockIdx.x == 0 && threadIdx.x == 0) ms[bh * NC + k + 1] = m_new;
    }
}

// ---------------------------------------------------------------------------------------------------
// 3. Output rows: one warp per (b, h, t); shared memory per warp: q (scaled) and the output row, 2 hs floats.
__global__ void __launch_bounds__(THREADS)
    forward_rows_kernel(floatD* h_out, float* n_out, float* m_out, const floatD* qkv, const float* li_all,
                        const float* lf_all, const float* Cs, const float* ns, const float* ms, int B, int T, int C,
                        int NH, int chunk, int NC, int sig_igate, float scale) {
    const int hs = C / NH, lane = threadIdx.x & 31, warp = threadIdx.x / 32;
    const long row = (long)blockIdx.x * WARPS + warp;
    if (row >= (long)B * NH * T) return;   // whole warps only
    const int t = (int)(row % T);
    const size_t bh = (size_t)(row / T);
    const int h = (int)(bh % NH), b = (int)(bh / NH);
    float* q_s = dynamic_smem<float>() + (size_t)warp * 2 * hs;
    float* acc = q_s + hs;
    const size_t stride = 3 * (size_t)C;
    const floatD* head = qkv + (size_t)b * T * stride + (size_t)h * hs;
    for (int c = lane; c < hs; c += 32) {
        q_s[c] = scale * to_float(head[(size_t)t * stride + c]);
        acc[c] = 0.0f;
    }
    __syncwarp();
    const float* li = li_all + bh * T;
    const float* lf = lf_all + bh * T;
    const int k = t / chunk, t0 = k * chunk;
    const float m_state = ms[bh * NC + k];

    // pass 1: the stabiliser m_t = max(b_t + m_state, max_s logw_s)
    float mx = -INFINITY, b_t;
    {
        DownScan scan;
        for (int top = t; top >= t0; top -= 32) {
            float total;
            mx = fmaxf(mx, scan.step(li, lf, top, t0, total));
            scan.carry += total;
        }
        b_t = scan.carry;   // sum_{r=t0..t} lf_r
    }
    const float m = sig_igate ? 0.0f : fmaxf(b_t + m_state, warp_max(mx));

    // the state term: beta C^T q and beta n.q (C, n = 0 before the first chunk)
    float den = 0.0f;   // this lane's part
    if (k > 0) {
        const float beta = expf(b_t + m_state - m);
        const size_t slot = bh * (NC - 1) + k - 1;
        const float* Ck = Cs + slot * hs * hs;
        const float* nk = ns + slot * hs;
        for (int j = lane; j < hs; j += 32) {
            float sum = 0.0f;
            for (int c = 0; c < hs; c++) sum += q_s[c] * Ck[(size_t)c * hs + j];
            acc[j] = beta * sum;
        }
        float dn = 0.0f;
        for (int c = lane; c < hs; c += 32) dn += q_s[c] * nk[c];
        den = beta * dn;
    }

    // pass 2: the keys t0..t, 32 at a time from t downwards
    DownScan scan;
    for (int top = t; top >= t0; top -= 32) {
        float total;
        const float logw = scan.step(li, lf, top, t0, total);
        scan.carry += total;
        const int s = top - lane;
        float w = 0.0f;
        if (s >= t0) {
            const floatD* kr = head + (size_t)s * stride + C;
            float dot = 0.0f;
            for (int c = 0; c < hs; c++) dot += q_s[c] * to_float(kr[c]);
            w = expf(logw - m) * dot;
        }
        den += w;
        const int count = min(32, top - t0 + 1);
        for (int l = 0; l < count; l++) {
            const float wl = __shfl_sync(FULL, w, l);
            const floatD* vr = head + (size_t)(top - l) * stride + 2 * C;
            for (int j = lane; j < hs; j += 32) acc[j] += wl * to_float(vr[j]);
        }
    }
    den = warp_sum(den);
    const float n = fmaxf(fabsf(den), expf(-m)), inv = 1.0f / (n + MLSTM_EPS);
    floatD* out = h_out + ((size_t)b * T + t) * C + (size_t)h * hs;
    for (int j = lane; j < hs; j += 32) out[j] = from_float(acc[j] * inv);
    if (lane == 0) {
        n_out[bh * T + t] = n;
        m_out[bh * T + t] = m;
    }
}

// ---------------------------------------------------------------------------------------------------
// Backward 2. The gradient of the state entering chunks 1..NC-1, Gs (B,NH,NC-1,hs,hs) (slot k: entering
// chunk k + 1), with ms of the recomputed states. Grid (ceil(hs^2 / THREADS), NH, B), thread e owns
// G[c][j]. Chunks from the last down to 1: G <- decay_k G + sum_{t in chunk k} w_t q_t[c] dh_t[j], with
// w_t = beta_t / (n_out_t + eps), beta_t = exp(b_t + m_k - m_out_t) / sqrt(hs); warp 0 computes w for
// 32 rows at a time into shared memory (b_t summed upwards from the chunk start).
__global__ void __launch_bounds__(THREADS)
    state_grads_kernel(float* Gs, const floatD* qkv, const floatD* dh, const float* lf_all, const float* n_out,
                       const float* m_out, const float* ms, int T, int C, int NH, int chunk, int NC, float scale) {
    __shared__ float w_s[32];
    const int hs = C / NH, lane = threadIdx.x & 31, warp = threadIdx.x / 32;
    const int h = blockIdx.y, b = blockIdx.z;
    const size_t bh = (size_t)b * NH + h, hs2 = (size_t)hs * hs;
    const long e = (long)blockIdx.x * THREADS + threadIdx.x;
    const bool active = e < (long)hs2;
    const int c = active ? (int)(e / hs) : 0, j = active ? (int)(e % hs) : 0;
    const float* lf = lf_all + bh * T;
    const size_t stride = 3 * (size_t)C;
    const floatD* q_g = qkv + (size_t)b * T * stride + (size_t)h * hs + c;
    const floatD* dh_g = dh + (size_t)b * T * C + (size_t)h * hs + j;
    float acc = 0.0f;
    for (int k = NC - 1; k >= 1; k--) {
        const int t0 = k * chunk, t1 = min(T, t0 + chunk);
        const float m_k = ms[bh * NC + k];
        float rows = 0.0f, carry = 0.0f;   // carry: warp 0's running b
        for (int lo = t0; lo < t1; lo += 32) {
            __syncthreads();   // the previous tile's w_s is consumed
            if (warp == 0) {
                const int t = lo + lane;
                const bool valid = t < t1;
                const float incl = warp_inclusive_sum(valid ? lf[t] : 0.0f);
                const float b_t = carry + incl;
                w_s[lane] = valid ? expf(b_t + m_k - m_out[bh * T + t]) * scale / (n_out[bh * T + t] + MLSTM_EPS)
                                  : 0.0f;
                carry += __shfl_sync(FULL, incl, 31);
            }
            __syncthreads();
            const int count = min(32, t1 - lo);
            if (active)
                for (int l = 0; l < count; l++) {
                    const size_t t = lo + l;
                    rows += w_s[l] * to_float(q_g[t * stride]) * to_float(dh_g[t * C]);
                }
        }
        if (k < NC - 1) {
            // decay of chunk k: exp(g_k + m_k - m_{k+1}), g_k = warp 0's carry (broadcast through w_s)
            __syncthreads();
            if (threadIdx.x == 0) w_s[0] = expf(carry + m_k - ms[bh * NC + k + 1]);
            __syncthreads();
            acc = w_s[0] * acc + rows;
        } else {
            acc = rows;
        }
        if (active) Gs[(bh * (NC - 1) + k - 1) * hs2 + e] = acc;
    }
}

// Backward 3a. dq of one row per warp: the keys t0..t of its chunk (from t downwards) and the state term
// beta C_k dh'; P (B,NH,T) = q_t.dq_t. Shared memory per warp: dh' and dq, 2 hs floats.
__global__ void __launch_bounds__(THREADS)
    backward_dq_kernel(floatD* dqkv, float* P, const floatD* dh, const floatD* qkv, const float* li_all,
                       const float* lf_all, const float* n_out, const float* m_out, const float* Cs, const float* ms,
                       int B, int T, int C, int NH, int chunk, int NC, float scale) {
    const int hs = C / NH, lane = threadIdx.x & 31, warp = threadIdx.x / 32;
    const long row = (long)blockIdx.x * WARPS + warp;
    if (row >= (long)B * NH * T) return;
    const int t = (int)(row % T);
    const size_t bh = (size_t)(row / T);
    const int h = (int)(bh % NH), b = (int)(bh / NH);
    float* dhp = dynamic_smem<float>() + (size_t)warp * 2 * hs;
    float* dq = dhp + hs;
    const size_t stride = 3 * (size_t)C;
    const floatD* head = qkv + (size_t)b * T * stride + (size_t)h * hs;
    const float inv = 1.0f / (n_out[bh * T + t] + MLSTM_EPS), m = m_out[bh * T + t];
    const floatD* dh_row = dh + ((size_t)b * T + t) * C + (size_t)h * hs;
    for (int c = lane; c < hs; c += 32) {
        dhp[c] = to_float(dh_row[c]) * inv;
        dq[c] = 0.0f;
    }
    __syncwarp();
    const float* li = li_all + bh * T;
    const float* lf = lf_all + bh * T;
    const int k = t / chunk, t0 = k * chunk;
    if (k > 0) {   // the state term beta C_k dh', b_t = sum_{r=t0..t} lf_r (lanes over r)
        float b_part = 0.0f;
        for (int r = t0 + lane; r <= t; r += 32) b_part += lf[r];
        const float beta = expf(warp_sum(b_part) + ms[bh * NC + k] - m) * scale;
        const float* Ck = Cs + (bh * (NC - 1) + k - 1) * hs * hs;
        for (int c = lane; c < hs; c += 32) {
            float sum = 0.0f;
            const float* Ck_row = Ck + (size_t)c * hs;
            for (int j = 0; j < hs; j++) sum += Ck_row[j] * dhp[j];
            dq[c] = beta * sum;
        }
    }
    DownScan scan;
    for (int top = t; top >= t0; top -= 32) {
        float total;
        const float logw = scan.step(li, lf, top, t0, total);
        scan.carry += total;
        const int s = top - lane;
        float ds = 0.0f;
        if (s >= t0) {
            const floatD* vr = head + (size_t)s * stride + 2 * C;
            float dot = 0.0f;
            for (int c = 0; c < hs; c++) dot += dhp[c] * to_float(vr[c]);
            ds = scale * expf(logw - m) * dot;
        }
        const int count = min(32, top - t0 + 1);
        for (int l = 0; l < count; l++) {
            const float dsl = __shfl_sync(FULL, ds, l);
            const floatD* kr = head + (size_t)(top - l) * stride + C;
            for (int c = lane; c < hs; c += 32) dq[c] += dsl * to_float(kr[c]);
        }
    }
    floatD* dq_row = dqkv + ((size_t)b * T + t) * stride + (size_t)h * hs;
    float p = 0.0f;
    for (int c = lane; c < hs; c += 32) {
        p += to_float(head[(size_t)t * stride + c]) * dq[c];
        dq_row[c] = from_float(to_float(dq_row[c]) + dq[c]);
    }
    p = warp_sum(p);
    if (lane == 0) P[bh * T + t] = p;
}

// Backward 3b. dk, dv of one key row s per warp: the queries s..t1-1 of its chunk (log weights summed
// from s upwards) and the state terms e_s G v_s, e_s G^T k_s; K (B,NH,T) = k_s.dk_s. Shared memory per
// warp: k, v, dk, dv, 4 hs floats.
__global__ void __launch_bounds__(THREADS)
    backward_dkdv_kernel(floatD* dqkv, float* K, const floatD* dh, const floatD* qkv, const float* li_all,
                         const float* lf_all, const float* n_out, const float* m_out, const float* Gs, const float* ms,
                         int B, int T, int C, int NH, int chunk, int NC, float scale) {
    const int hs = C / NH, lane = threadIdx.x & 31, warp = threadIdx.x / 32;
    const long row = (long)blockIdx.x * WARPS + warp;
    if (row >= (long)B * NH * T) return;
    const int s = (int)(row % T);
    const size_t bh = (size_t)(row / T);
    const int h = (int)(bh % NH), b = (int)(bh / NH);
    float* k_s = dynamic_smem<float>() + (size_t)warp * 4 * hs;
    float* v_s = k_s + hs;
    float* dk = v_s + hs;
    float* dv = dk + hs;
    const size_t stride = 3 * (size_t)C;
    const floatD* head = qkv + (size_t)b * T * stride + (size_t)h * hs;
    const floatD* dh_head = dh + (size_t)b * T * C + (size_t)h * hs;
    for (int c = lane; c < hs; c += 32) {
        k_s[c] = to_float(head[(size_t)s * stride + C + c]);
        v_s[c] = to_float(head[(size_t)s * stride + 2 * C + c]);
        dk[c] = 0.0f;
        dv[c] = 0.0f;
    }
    __syncwarp();
    const float* li = li_all + bh * T;
    const float* lf = lf_all + bh * T;
    const int k = s / chunk, t1 = min(T, (k + 1) * chunk);
    float carry = 0.0f, a_s = 0.0f;   // a_s: the log weight of s seen from the chunk's end
    for (int lo = s; lo < t1; lo += 32) {
        const int t = lo + lane;
        const bool valid = t < t1;
        const float incl = warp_inclusive_sum(valid && t > s ? lf[t] : 0.0f);
        const float logw = carry + incl + li[s];   // sum_{r=s+1..t} lf_r + li_s
        float cv = 0.0f, ck = 0.0f;
        if (valid) {
            const float D = expf(logw - m_out[bh * T + t]), inv = 1.0f / (n_out[bh * T + t] + MLSTM_EPS);
            const floatD* qr = head + (size_t)t * stride;
            const floatD* dr = dh_head + (size_t)t * C;
            float qk = 0.0f, dv_dot = 0.0f;
            for (int c = 0; c < hs; c++) {
                qk += to_float(qr[c]) * k_s[c];
                dv_dot += to_float(dr[c]) * v_s[c];
            }
            cv = D * scale * qk * inv;         // C~_ts / (n_t + eps): dv_s += cv dh_t
            ck = scale * D * dv_dot * inv;     // dS_ts: dk_s += ck q_t
        }
        if (t1 - 1 - lo < 32) a_s = __shfl_sync(FULL, logw, t1 - 1 - lo);
        carry += __shfl_sync(FULL, incl, 31);
        const int count = min(32, t1 - lo);
        for (int l = 0; l < count; l++) {
            const float cvl = __shfl_sync(FULL, cv, l), ckl = __shfl_sync(FULL, ck, l);
            const floatD* qr = head + (size_t)(lo + l) * stride;
            const floatD* dr = dh_head + (size_t)(lo + l) * C;
            for (int c = lane; c < hs; c += 32) {
                dv[c] += cvl * to_float(dr[c]);
                dk[c] += ckl * to_float(qr[c]);
            }
        }
    }
    if (k + 1 < NC) {   // the state after this chunk: its gradient G
        const float e = expf(a_s - ms[bh * NC + k + 1]);
        const float* G = Gs + (bh * (NC - 1) + k) * hs * hs;
        for (int c = lane; c < hs; c += 32) {
            float sum = 0.0f;
            for (int j = 0; j < hs; j++) sum += G[(size_t)c * hs + j] * v_s[j];
            dk[c] += e * sum;
        }
        for (int j = lane; j < hs; j += 32) {
            float sum = 0.0f;
            for (int c = 0; c < hs; c++) sum += k_s[c] * G[(size_t)c * hs + j];
            dv[j] += e * sum;
        }
    }
    floatD* dk_row = dqkv + ((size_t)b * T + s) * stride + C + (size_t)h * hs;
    floatD* dv_row = dk_row + C;
    float kk = 0.0f;
    for (int c = lane; c < hs; c += 32) {
        kk += k_s[c] * dk[c];
        dk_row[c] = from_float(to_float(dk_row[c]) + dk[c]);
        dv_row[c] = from_float(to_float(dv_row[c]) + dv[c]);
    }
    kk = warp_sum(kk);
    if (lane == 0) K[bh * T + s] = kk;
}

// Backward 4. One warp per (b, h): dgates += the gate gradients from P = q.dq and K = k.dk (B,NH,T).
__global__ void __launch_bounds__(THREADS)
    gate_grads_kernel(floatD* dgates, const floatD* gates, const float* P, const float* K, int B, int T, int NH,
                      int sig_igate) {
    const int lane = threadIdx.x & 31;
    const long bh = (long)blockIdx.x * WARPS + threadIdx.x / 32;
    if (bh >= (long)B * NH) return;
    const int h = (int)(bh % NH), b = (int)(bh / NH);
    float carry = 0.0f;
    for (int top = T - 1; top >= 0; top -= 32) {
        const int t = top - lane;
        const bool valid = t >= 0;
        const float kdk = valid ? K[bh * T + t] : 0.0f;
        const float incl = warp_inclusive_sum(valid ? P[bh * T + t] - kdk : 0.0f);
        if (valid) {
            const float dlf = carry + incl;   // sum_{u>=t} (q_u.dq_u - k_u.dk_u)
            floatD* dg = dgates + ((size_t)b * T + t) * 2 * NH + h;
            const floatD* g = gates + ((size_t)b * T + t) * 2 * NH + h;
            const float zi = to_float(g[0]), zf = to_float(g[NH]);
            const float dli = sig_igate ? kdk * sigmoid_accurate(-soft_cap(zi)) : kdk;
            dg[0] = from_float(to_float(dg[0]) + dli * soft_cap_grad(zi));
            dg[NH] = from_float(to_float(dg[NH]) + dlf * sigmoid_accurate(-soft_cap(zf)) * soft_cap_grad(zf));
        }
        carry += __shfl_sync(FULL, incl, 31);
    }
}

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

// ---------------------------------------------------------------------------------------------------
// Host side.

template <typename Kernel> static void allow_smem(Kernel kernel, size_t bytes) {
    if (bytes > 48 * 1024)
        cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

// One stream-ordered scratch allocation carved into float arrays, each 16-byte aligned.
struct Scratch {
    float* base = nullptr;
    size_t used = 0, total = 0;
    explicit Scratch(size_t floats) : total(floats) {
        cuda_check(cudaMallocAsync(reinterpret_cast<void**>(&base), (floats > 0 ? floats : 1) * sizeof(float), 0));
    }
    ~Scratch() { cuda_check(cudaFreeAsync(base, 0)); }
    static size_t round(size_t n) { return (n + 3) / 4 * 4; }
    float* take(size_t n) {
        float* p = base + used;
        used += round(n);
        return p;
    }
};

struct Shape {
    int B, T, C, NH, hs, chunk, NC, sig_igate;
    float scale;
    size_t bhT() const { return (size_t)B * NH * T; }
    size_t states() const { return (size_t)B * NH * (NC - 1); }   // the chunk states (entering chunks 1..NC-1)
};

static Shape make_shape(int B, int T, int C, int NH, int chunk, int sig_igate) {
    Shape s;
    s.B = B, s.T = T, s.C = C, s.NH = NH, s.hs = C / NH, s.chunk = chunk < T ? chunk : T;
    s.NC = (T + s.chunk - 1) / s.chunk, s.sig_igate = sig_igate, s.scale = 1.0f / sqrtf((float)s.hs);
    return s;
}

static void log_gates(float* li, float* lf, const floatD* gates, const Shape& s) {
    log_gates_kernel<<<ceil_div((long)s.bhT(), THREADS), THREADS>>>(li, lf, gates, s.B, s.T, s.NH, s.sig_igate);
    cuda_check_launch();
}

static void chunk_states(float* Cs, float* ns, float* ms, const floatD* qkv, const float* li, const float* lf,
                         const Shape& s) {
    const long E = (long)s.hs * s.hs + (ns ? s.hs : 0);
    chunk_states_kernel<<<dim3(ceil_div(E, THREADS), s.NH, s.B), THREADS>>>(Cs, ns, ms, qkv, li, lf, s.T, s.C, s.NH,
                                                                          s.chunk, s.NC, s.sig_igate);
    cuda_check_launch();
}

#ifdef ATTNLAB_BF16
// ===================================================================================================
// Tensor-core path (bf16 build; head sizes 32, 64, 128; chunks of 64 or 128; 16-byte aligned tensors):
// mma.sync m16n8k16 bf16 x bf16 -> fp32 (flash.cuh's fragment helpers and layouts), tiles staged in
// shared memory with cp.async, rows padded to HS + 8 bf16 as in flash.cuh. The gates enter through
// two per-position numbers from tc_prep_kernel, with b_t = sum_{r=t0..t} lf_r (chunk-local, upwards):
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
// The gate gradients then come from gate_grads_kernel as in the fp32 path.
typedef __nv_bfloat16 bf16;
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
static bool tc_applies(int hs, int chunk) { return flash::tensor_core_head_size(hs) && (chunk == 64 || chunk == 128); }

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

static void tc_forward(bf16* h, float* n_out, float* m_out, const bf16* qkv, const bf16* gates, int B, int T, int C,
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

static void tc_backward(bf16* dqkv, bf16* dgates, const bf16* dh, const bf16* qkv, const bf16* gates,
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
    gate_grads_kernel<<<ceil_div((long)B * NH, WARPS), THREADS>>>(dgates, gates, P, K, B, T, NH, sig_igate);
    cuda_check_launch();
}
#endif   // ATTNLAB_BF16

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
    const Shape s = make_shape(B, T, C, NH, chunk, sig_igate);
    Scratch scratch(2 * Scratch::round(s.bhT()) + Scratch::round(s.states() * s.hs * s.hs) +
                    Scratch::round(s.states() * s.hs) + Scratch::round((size_t)B * NH * s.NC));
    float* li = scratch.take(s.bhT());
    float* lf = scratch.take(s.bhT());
    float* Cs = scratch.take(s.states() * s.hs * s.hs);
    float* ns = scratch.take(s.states() * s.hs);
    float* ms = scratch.take((size_t)B * NH * s.NC);
    log_gates(li, lf, as_device(gates), s);
    chunk_states(Cs, ns, ms, as_device(qkv), li, lf, s);
    const size_t smem = WARPS * 2 * (size_t)s.hs * sizeof(float);
    allow_smem(forward_rows_kernel, smem);
    forward_rows_kernel<<<ceil_div((long)s.bhT(), WARPS), THREADS, smem>>>(as_device(h), n_out, m_out, as_device(qkv),
                                                                          li, lf, Cs, ns, ms, B, T, C, NH, s.chunk,
                                                                          s.NC, sig_igate, s.scale);
    cuda_check_launch();
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
    const Shape s = make_shape(B, T, C, NH, chunk, sig_igate);
    const size_t hs2 = (size_t)s.hs * s.hs;
    Scratch scratch(4 * Scratch::round(s.bhT()) + 2 * Scratch::round(s.states() * hs2) +
                    Scratch::round((size_t)B * NH * s.NC));
    float* li = scratch.take(s.bhT());
    float* lf = scratch.take(s.bhT());
    float* P = scratch.take(s.bhT());
    float* K = scratch.take(s.bhT());
    float* Cs = scratch.take(s.states() * hs2);
    float* Gs = scratch.take(s.states() * hs2);
    float* ms = scratch.take((size_t)B * NH * s.NC);
    log_gates(li, lf, as_device(gates), s);
    chunk_states(Cs, nullptr, ms, as_device(qkv), li, lf, s);
    if (s.NC > 1) {
        state_grads_kernel<<<dim3(ceil_div((long)hs2, THREADS), NH, B), THREADS>>>(
            Gs, as_device(qkv), as_device(dh), lf, n_out, m_out, ms, T, C, NH, s.chunk, s.NC, s.scale);
        cuda_check_launch();
    }
    const size_t smem_dq = WARPS * 2 * (size_t)s.hs * sizeof(float), smem_dkdv = 2 * smem_dq;
    allow_smem(backward_dq_kernel, smem_dq);
    backward_dq_kernel<<<ceil_div((long)s.bhT(), WARPS), THREADS, smem_dq>>>(as_device(dqkv), P, as_device(dh),
                                                                            as_device(qkv), li, lf, n_out, m_out, Cs,
                                                                            ms, B, T, C, NH, s.chunk, s.NC, s.scale);
    cuda_check_launch();
    allow_smem(backward_dkdv_kernel, smem_dkdv);
    backward_dkdv_kernel<<<ceil_div((long)s.bhT(), WARPS), THREADS, smem_dkdv>>>(
        as_device(dqkv), K, as_device(dh), as_device(qkv), li, lf, n_out, m_out, Gs, ms, B, T, C, NH, s.chunk, s.NC,
        s.scale);
    cuda_check_launch();
    gate_grads_kernel<<<ceil_div((long)B * NH, WARPS), THREADS>>>(as_device(dgates), as_device(gates), P, K, B, T, NH,
                                                                 sig_igate);
    cuda_check_launch();
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
