// The fp32 kernels of the CUDA mLSTM's chunkwise form (the entry points and the dispatch between the
// families: attention/mlstm.cu; what the files share: attention/mlstm.cuh): every shape in the FP32
// build, and in the bf16 build every shape the tensor-core kernels (attention/mlstm_tc.cu) do not
// take (head sizes other than 32, 64, 128, chunks other than 64, 128, unaligned tensors). Inputs
// and outputs floatD, arithmetic in fp32. Two of them serve beyond this family: log_gates_kernel
// (the analysis matrix's log gates) and gate_grads_kernel (the tensor-core backward's gate gradients).
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
#include "attention/mlstm.cuh"

namespace mlstm {

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
// Host side.

template <typename Kernel> static void allow_smem(Kernel kernel, size_t bytes) {
    if (bytes > 48 * 1024)
        cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

void log_gates(float* li, float* lf, const floatD* gates, const Shape& s) {
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

void gate_grads(floatD* dgates, const floatD* gates, const float* P, const float* K, int B, int T, int NH,
                int sig_igate) {
    gate_grads_kernel<<<ceil_div((long)B * NH, WARPS), THREADS>>>(dgates, gates, P, K, B, T, NH, sig_igate);
    cuda_check_launch();
}

void fp32_forward(floatD* h, float* n_out, float* m_out, const floatD* qkv, const floatD* gates, int B, int T, int C,
                  int NH, int chunk, int sig_igate) {
    const Shape s = make_shape(B, T, C, NH, chunk, sig_igate);
    Scratch scratch(2 * Scratch::round(s.bhT()) + Scratch::round(s.states() * s.hs * s.hs) +
                    Scratch::round(s.states() * s.hs) + Scratch::round((size_t)B * NH * s.NC));
    float* li = scratch.take(s.bhT());
    float* lf = scratch.take(s.bhT());
    float* Cs = scratch.take(s.states() * s.hs * s.hs);
    float* ns = scratch.take(s.states() * s.hs);
    float* ms = scratch.take((size_t)B * NH * s.NC);
    log_gates(li, lf, gates, s);
    chunk_states(Cs, ns, ms, qkv, li, lf, s);
    const size_t smem = WARPS * 2 * (size_t)s.hs * sizeof(float);
    allow_smem(forward_rows_kernel, smem);
    forward_rows_kernel<<<ceil_div((long)s.bhT(), WARPS), THREADS, smem>>>(h, n_out, m_out, qkv, li, lf, Cs, ns, ms, B,
                                                                          T, C, NH, s.chunk, s.NC, sig_igate, s.scale);
    cuda_check_launch();
}

void fp32_backward(floatD* dqkv, floatD* dgates, const floatD* dh, const floatD* qkv, const floatD* gates,
                   const float* n_out, const float* m_out, int B, int T, int C, int NH, int chunk, int sig_igate) {
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
    log_gates(li, lf, gates, s);
    chunk_states(Cs, nullptr, ms, qkv, li, lf, s);
    if (s.NC > 1) {
        state_grads_kernel<<<dim3(ceil_div((long)hs2, THREADS), NH, B), THREADS>>>(Gs, qkv, dh, lf, n_out, m_out, ms, T,
                                                                                   C, NH, s.chunk, s.NC, s.scale);
        cuda_check_launch();
    }
    const size_t smem_dq = WARPS * 2 * (size_t)s.hs * sizeof(float), smem_dkdv = 2 * smem_dq;
    allow_smem(backward_dq_kernel, smem_dq);
    backward_dq_kernel<<<ceil_div((long)s.bhT(), WARPS), THREADS, smem_dq>>>(dqkv, P, dh, qkv, li, lf, n_out, m_out, Cs,
                                                                            ms, B, T, C, NH, s.chunk, s.NC, s.scale);
    cuda_check_launch();
    allow_smem(backward_dkdv_kernel, smem_dkdv);
    backward_dkdv_kernel<<<ceil_div((long)s.bhT(), WARPS), THREADS, smem_dkdv>>>(
        dqkv, K, dh, qkv, li, lf, n_out, m_out, Gs, ms, B, T, C, NH, s.chunk, s.NC, s.scale);
    cuda_check_launch();
    gate_grads(dgates, gates, P, K, B, T, NH, sig_igate);
}

}   // namespace mlstm
