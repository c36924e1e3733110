// The sink slot of softmax attention (docs/MODEL.md section 14) on the GPU, the twin of
// attention/sink_slot.c: after attention_forward_cuda, one extra logit z (and value v*) per (query,
// head) folds into the normalized output and log-sum-exp; the backward adds the slot's own terms.
// A plain kernel, not a flash one: the slot is one logit per row, so one warp per (row, head) does
// the dot products with warp sums and rescales the row in fp32; no tensor cores, no tiling.
// Backward: a first kernel adds dq (one owner per element) and saves p* and dz per (row, head) in
// scratch; dsink_key, dsink_value and dsink_logit are then deterministic column sums over the rows
// (common/reduce.cuh), where the CPU gives each head's sums to one thread.
#include <cmath>

#include "attention/sink_slot.h"
#include "common/reduce.cuh"

#define SINK_THREADS 128   // one (row, head) per warp

namespace {

// The slot's logit for query q (head h) on every lane: scale q.k*_h, z_h or 0.
__device__ float slot_logit(const floatD* q, const floatD* sink_key, const floatD* sink_logit, int h, int hs,
                            float scale, SinkKind kind) {
    if (kind == SINK_KEY || kind == SINK_KEY_VALUE) {
        float dot = 0.0f;
        for (int c = threadIdx.x % 32; c < hs; c += 32) dot += to_float(q[c]) * to_float(sink_key[(size_t)h * hs + c]);
        return scale * warp_reduce_sum(dot);
    }
    return kind == SINK_LOGIT ? to_float(sink_logit[h]) : 0.0f;
}

// One warp per (b, h, i), i.e. per entry of lse (B,NH,Tq): lse' = log(e^lse + e^z),
// out = e^(lse - lse') out + e^(z - lse') v*_h.
__global__ void __launch_bounds__(SINK_THREADS)
    sink_forward_kernel(floatD* out, float* lse, const floatD* qkv, const floatD* sink_key, const floatD* sink_value,
                        const floatD* sink_logit, int B, int Tq, int Tk, int Tmax, int C, int NH, float scale,
                        SinkKind kind) {
    long row = (long)blockIdx.x * (SINK_THREADS / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32, hs = C / NH;
    if (row >= (long)B * NH * Tq) return;   // whole warps only
    int i = (int)(row % Tq), h = (int)(row / Tq % NH), b = (int)(row / Tq / NH);
    const floatD* q = qkv + ((size_t)b * Tmax + Tk - Tq + i) * 3 * C + (size_t)h * hs;
    floatD* o = out + ((size_t)b * Tq + i) * C + (size_t)h * hs;
    float z = slot_logit(q, sink_key, sink_logit, h, hs, scale, kind);
    float keys = lse[row], top = fmaxf(keys, z);
    float both = top + logf(expf(keys - top) + expf(z - top));
    float keep = expf(keys - both), p_slot = expf(z - both);
    for (int c = lane; c < hs; c += 32) {
        float v = kind == SINK_KEY_VALUE ? p_slot * to_float(sink_value[(size_t)h * hs + c]) : 0.0f;
        o[c] = from_float(keep * to_float(o[c]) + v);
    }
    __syncwarp();   // every lane has read lse[row]
    if (lane == 0) lse[row] = both;
}

// One warp per (b, h, t): p* = e^(z - lse), dz = p* (dout.v* - dout.out); dq += scale dz k*;
// saves p* and dz at (b T + t) NH + h.
__global__ void __launch_bounds__(SINK_THREADS)
    sink_backward_rows_kernel(floatD* dqkv, float* p_slot, float* dz_slot, const floatD* dout, const floatD* qkv,
                              const floatD* out, const float* lse, const floatD* sink_key, const floatD* sink_value,
                              const floatD* sink_logit, int B, int T, int C, int NH, float scale, SinkKind kind) {
    long group = (long)blockIdx.x * (SINK_THREADS / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32, hs = C / NH;
    if (group >= (long)B * NH * T) return;
    int t = (int)(group % T), h = (int)(group / T % NH), b = (int)(group / T / NH);
    size_t row = (size_t)b * T + t;
    const floatD* q = qkv + row * 3 * C + (size_t)h * hs;
    const floatD* o = out + row * C + (size_t)h * hs;
    const floatD* dy = dout + row * C + (size_t)h * hs;
    float z = slot_logit(q, sink_key, sink_logit, h, hs, scale, kind);
    float p = expf(z - lse[group]);
    float dp = 0.0f, d = 0.0f;
    for (int c = lane; c < hs; c += 32) {
        if (kind == SINK_KEY_VALUE) dp += to_float(dy[c]) * to_float(sink_value[(size_t)h * hs + c]);
        d += to_float(dy[c]) * to_float(o[c]);
    }
    float dz = p * (warp_reduce_sum(dp) - warp_reduce_sum(d));
    if (kind == SINK_KEY || kind == SINK_KEY_VALUE) {
        floatD* dq = dqkv + row * 3 * C + (size_t)h * hs;
        for (int c = lane; c < hs; c += 32)
            dq[c] = from_float(to_float(dq[c]) + scale * dz * to_float(sink_key[(size_t)h * hs + c]));
    }
    if (lane == 0) {
        p_slot[row * NH + h] = p;
        dz_slot[row * NH + h] = dz;
    }
}

// The slot parameters' gradients as columns [dsink_key (C, when a key) | dsink_value (C, key_value) |
// dsink_logit (NH, logit)], summed over the rows b T + t:
// dsink_key += scale dz q, dsink_value += p* dout, dsink_logit += dz.
struct SinkParamGrads {
    floatD *dsink_key, *dsink_value, *dsink_logit;
    const floatD *dout, *qkv;
    const float *p_slot, *dz_slot;
    int C, NH, key_cols, value_cols;
    float scale;
    __device__ float value(long row, int col) const {
        int hs = C / NH;
        if (col < key_cols) return scale * dz_slot[row * NH + col / hs] * to_float(qkv[row * 3 * C + col]);
        col -= key_cols;
        if (col < value_cols) return p_slot[row * NH + col / hs] * to_float(dout[row * C + col]);
        return dz_slot[row * NH + col - value_cols];
    }
    __device__ void add(int col, float sum) const {
        floatD* d = col < key_cols                ? dsink_key + col
                    : col < key_cols + value_cols ? dsink_value + col - key_cols
                                                  : dsink_logit + col - key_cols - value_cols;
        *d = from_float(to_float(*d) + sum);
    }
};

}  // namespace

void attention_sink_forward_cuda(floatX* out, float* lse, const floatX* qkv, const floatX* sink_key,
                                 const floatX* sink_value, const floatX* sink_logit, int B, int Tq, int Tk, int Tmax,
                                 int C, int NH, SinkKind kind) {
    long rows = (long)B * NH * Tq;
    if (rows == 0 || kind == SINK_NONE) return;
    sink_forward_kernel<<<ceil_div(rows, SINK_THREADS / 32), SINK_THREADS>>>(
        as_device(out), lse, as_device(qkv), as_device(sink_key), as_device(sink_value), as_device(sink_logit), B, Tq,
        Tk, Tmax, C, NH, 1.0f / sqrtf((float)(C / NH)), kind);
    cuda_check_launch();
}

void attention_sink_backward_cuda(floatX* dqkv, floatX* dsink_key, floatX* dsink_value, floatX* dsink_logit,
                                  const floatX* dout, const floatX* qkv, const floatX* out, const float* lse,
                                  const floatX* sink_key, const floatX* sink_value, const floatX* sink_logit, int B,
                                  int T, int C, int NH, SinkKind kind) {
    long rows = (long)B * T;
    // the fixed logit 0 (SINK_ONE) has no parameters, and its dz reaches nothing else
    if (rows == 0 || kind == SINK_NONE || kind == SINK_ONE) return;
    float scale = 1.0f / sqrtf((float)(C / NH));
    float* scratch = nullptr;   // p*, then dz, per (row, head)
    cuda_check(cudaMallocAsync(&scratch, 2 * (size_t)rows * NH * sizeof(float), 0));
    float *p_slot = scratch, *dz_slot = scratch + (size_t)rows * NH;
    sink_backward_rows_kernel<<<ceil_div(rows * NH, SINK_THREADS / 32), SINK_THREADS>>>(
        as_device(dqkv), p_slot, dz_slot, as_device(dout), as_device(qkv), as_device(out), lse, as_device(sink_key),
        as_device(sink_value), as_device(sink_logit), B, T, C, NH, scale, kind);
    cuda_check_launch();
    int key_cols = kind == SINK_KEY || kind == SINK_KEY_VALUE ? C : 0, value_cols = kind == SINK_KEY_VALUE ? C : 0;
    int logit_cols = kind == SINK_LOGIT ? NH : 0;
    SinkParamGrads term = {as_device(dsink_key), as_device(dsink_value), as_device(dsink_logit), as_device(dout),
                           as_device(qkv), p_slot, dz_slot, C, NH, key_cols, value_cols, scale};
    column_sum_add(term, rows, key_cols + value_cols + logit_cols);
    cuda_check(cudaFreeAsync(scratch, 0));
}
