// The row-wise fp32 family of the CUDA softmax / sigmoid attention (attention/softmax_sigmoid.cuh;
// entry points in attention/softmax_sigmoid.cu): one warp per query row (forward, dQ) or key row
// (dK/dV), keys (queries) in chunks of 32 with a lane each for the scores, the row's accumulators
// in shared memory with a lane per 32nd channel, so any head size works, in either precision; the
// only path of the FP32 build and of decoding (Tq < 16). Also the analysis' weights kernel, one
// thread per (b, h, query, key).
#include "attention/softmax_sigmoid.cuh"

namespace flash {

// ---------------------------------------------------------------------------------------------------
// Forward: one warp per query row (b, h, i), keys in chunks of 32 (a lane per key for the
// score), the output row accumulated in shared memory (a lane per 32nd channel), fp32 throughout.
// Shared memory per warp: the scaled query and the accumulator, 2 hs floats.
template <class Map>
__global__ void __launch_bounds__(THREADS)
    attention_forward_rowwise_kernel(floatD* out, float* stat, const floatD* qkv, int B, int Tq, int Tk, int Tmax,
                                     int C, int NH, float scale, AttnScore score) {
    const int hs = C / NH, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const long row = (long)blockIdx.x * (THREADS / 32) + warp;
    if (row >= (long)B * NH * Tq) return;   // whole warps only: no block-wide barrier below
    const int i = (int)(row % Tq), h = (int)(row / Tq % NH), b = (int)(row / Tq / NH);
    const Map map = Map::of_head(score, h, NH);
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
            s = map.logit(dot, n_keys - 1, j);
        }
        float p;
        if (Map::MODE == MODE_SOFTMAX) {
            const float m_new = fmaxf(m, warp_max(s));   // finite: lane 0 always holds a key
            const float alpha = expf(m - m_new);         // 0 on the first chunk (m = -inf)
            p = j < n_keys ? map.template softmax_weight<false>(s, m_new) : 0.0f;
            l = l * alpha + warp_sum(p);
            for (int c = lane; c < hs; c += 32) acc[c] *= alpha;
            m = m_new;
        } else {
            p = j < n_keys ? map.sigmoid_weight(s) : 0.0f;
            if (Map::MODE == MODE_SIGMOID_NORM) l += warp_sum(p);
        }
        const int count = min(32, n_keys - j0);
        for (int jj = 0; jj < count; jj++) {
            const float w = __shfl_sync(0xffffffffu, p, jj);
            const floatD* v = head + (size_t)(j0 + jj) * stride + 2 * C;
            for (int c = lane; c < hs; c += 32) acc[c] += w * to_float(v[c]);
        }
    }
    const float inv = map.template row_scale<false>(l);
    floatD* out_row = out + ((size_t)b * Tq + i) * C + (size_t)h * hs;
    for (int c = lane; c < hs; c += 32) out_row[c] = from_float(acc[c] * inv);
    if (lane == 0)
        stat[((size_t)b * NH + h) * Tq + i] = map.row_stat(m, l);
}

template <class Map>
static void launch_forward_rowwise(floatD* out, float* stat, const floatD* qkv, int B, int Tq, int Tk, int Tmax,
                                   int C, int NH, float scale, AttnScore score) {
    const size_t smem = (THREADS / 32) * 2 * (size_t)(C / NH) * sizeof(float);
    allow_smem(attention_forward_rowwise_kernel<Map>, smem);
    attention_forward_rowwise_kernel<Map><<<ceil_div((long)B * NH * Tq, THREADS / 32), THREADS, smem>>>(
        out, stat, qkv, B, Tq, Tk, Tmax, C, NH, scale, score);
    cuda_check_launch();
}

void forward_rowwise(floatD* out, float* stat, const floatD* qkv, int B, int Tq, int Tk, int Tmax, int C, int NH,
                     float scale, AttnScore score) {
    with_score(score, [&](auto map) {
        launch_forward_rowwise<decltype(map)>(out, stat, qkv, B, Tq, Tk, Tmax, C, NH, scale, score);
    });
}

// ---------------------------------------------------------------------------------------------------
// Backward, dQ: one warp per query row i, keys 0..i in chunks of 32 (a lane per key for
// the two dot products), dq accumulated in shared memory (a lane per 32nd channel).
// Shared memory per warp: q, dO and the dq accumulator, 3 hs floats.
template <class Map>
__global__ void __launch_bounds__(THREADS)
    attention_backward_dq_rowwise_kernel(floatD* dqkv, const floatD* dout, const floatD* qkv, const float* stat,
                                         const float* dsum, int B, int T, int C, int NH, float scale, AttnScore score) {
    const int hs = C / NH, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const long row = (long)blockIdx.x * (THREADS / 32) + warp;
    if (row >= (long)B * NH * T) return;
    const int i = (int)(row % T), h = (int)(row / T % NH), b = (int)(row / T / NH);
    const Map map = Map::of_head(score, h, NH);
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
    const float st = Map::ROW_STAT ? stat[row] : 0.0f;   // row = (b NH + h) T + i
    const float D = Map::ROW_STAT ? dsum[row] : 0.0f;
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
            map.template weight_and_grad<false>(map.logit(scale * qk, i, j), dp, st, D, w, ds);
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
template <class Map>
__global__ void __launch_bounds__(THREADS)
    attention_backward_dkdv_rowwise_kernel(floatD* dqkv, const floatD* dout, const floatD* qkv, const float* stat,
                                           const float* dsum, int B, int T, int C, int NH, float scale,
                                           AttnScore score) {
    const int hs = C / NH, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const long row = (long)blockIdx.x * (THREADS / 32) + warp;
    if (row >= (long)B * NH * T) return;
    const int j = (int)(row % T), h = (int)(row / T % NH), b = (int)(row / T / NH);
    const Map map = Map::of_head(score, h, NH);
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
            const float st = Map::ROW_STAT ? stat[stat_at + i] : 0.0f;
            const float D = Map::ROW_STAT ? dsum[stat_at + i] : 0.0f;
            map.template weight_and_grad<false>(map.logit(scale * qk, i, j), dp, st, D, w, ds);
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

template <class Map>
static void launch_backward_rowwise(floatD* dqkv, const floatD* dout, const floatD* qkv, const float* stat,
                                    const float* dsum, int B, int T, int C, int NH, float scale, AttnScore score) {
    const int blocks = ceil_div((long)B * NH * T, THREADS / 32);
    const size_t hs_bytes = (size_t)(C / NH) * sizeof(float), smem_dq = (THREADS / 32) * 3 * hs_bytes,
                 smem_dkdv = (THREADS / 32) * 4 * hs_bytes;
    allow_smem(attention_backward_dq_rowwise_kernel<Map>, smem_dq);
    attention_backward_dq_rowwise_kernel<Map><<<blocks, THREADS, smem_dq>>>(dqkv, dout, qkv, stat, dsum, B, T, C, NH,
                                                                            scale, score);
    cuda_check_launch();
    allow_smem(attention_backward_dkdv_rowwise_kernel<Map>, smem_dkdv);
    attention_backward_dkdv_rowwise_kernel<Map><<<blocks, THREADS, smem_dkdv>>>(dqkv, dout, qkv, stat, dsum, B, T, C,
                                                                                NH, scale, score);
    cuda_check_launch();
}

void backward_rowwise(floatD* dqkv, const floatD* dout, const floatD* qkv, const float* stat, const float* dsum, int B,
                      int T, int C, int NH, float scale, AttnScore score) {
    with_score(score, [&](auto map) {
        launch_backward_rowwise<decltype(map)>(dqkv, dout, qkv, stat, dsum, B, T, C, NH, scale, score);
    });
}

// ---------------------------------------------------------------------------------------------------
// For analysis (the sink metric, docs/MODEL.md section 13): the weights of the training form as the
// forward used them, from the saved row statistic. Small T: one thread per (b, h, query, key). The
// score map's mode is a runtime branch here (one instantiation for an analysis kernel).
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
    const AttnHead map = attn_head(score, h, NH);
    const float x = attn_logit(map, scale * dot, i, j), row_stat = stat[((long)b * NH + h) * T + i];
    if (!score.sigmoid) weights[idx] = expf(x - row_stat);
    else weights[idx] = attn_sigmoid_weight(map, x) / (score.normalize ? attn_norm_divisor(row_stat) : 1.0f);
}

void weights_rowwise(float* weights, const floatD* qkv, const float* stat, int B, int T, int C, int NH, float scale,
                     AttnScore score) {
    const long n = (long)B * NH * T * T;
    attention_weights_kernel<<<ceil_div(n, THREADS), THREADS>>>(weights, qkv, stat, B, T, C, NH, scale, score);
    cuda_check_launch();
}

}   // namespace flash
