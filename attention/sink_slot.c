// The sink slot of softmax attention on the CPU (see sink_slot.h; docs/MODEL.md section 14).
// Per (batch, position, head) the slot is one extra logit and value, so the kernels are a pass over
// the rows after (forward) or beside (backward) the attention of the keys. Parallel over heads: a
// thread owns one head's columns of dqkv and its slot parameters' gradients, summed over batch and
// positions in a fixed order, so the result is deterministic without atomics.
#include "attention/sink_slot.h"

#include <math.h>
#include <stddef.h>

static float dot(const float* a, const float* b, int n) {
    float sum = 0.0f;
    for (int i = 0; i < n; i++) sum += a[i] * b[i];
    return sum;
}

// The slot's logit z for query q (head h): s q.k*_h, z_h or 0.
static float slot_logit(const float* q, const float* sink_key, const float* sink_logit, int h, int hs, float scale,
                        SinkKind kind) {
    if (kind == SINK_KEY || kind == SINK_KEY_VALUE) return scale * dot(q, sink_key + (size_t)h * hs, hs);
    return kind == SINK_LOGIT ? sink_logit[h] : 0.0f;
}

void attention_sink_forward(float* out, float* lse, const float* qkv, const float* sink_key, const float* sink_value,
                            const float* sink_logit, int B, int Tq, int Tk, int Tmax, int C, int NH, SinkKind kind) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int i = 0; i < Tq; i++) {
                const float* q = qkv + ((size_t)b * Tmax + Tk - Tq + i) * 3 * C + (size_t)h * hs;
                float* o = out + ((size_t)b * Tq + i) * C + (size_t)h * hs;
                float* row_lse = lse + ((size_t)b * NH + h) * Tq + i;
                float z = slot_logit(q, sink_key, sink_logit, h, hs, scale, kind);
                float keys = *row_lse, top = fmaxf(keys, z);
                float both = top + logf(expf(keys - top) + expf(z - top));
                float keep = expf(keys - both), p_slot = expf(z - both);
                for (int c = 0; c < hs; c++)
                    o[c] = keep * o[c] + (kind == SINK_KEY_VALUE ? p_slot * sink_value[(size_t)h * hs + c] : 0.0f);
                *row_lse = both;
            }
        }
    }
}

void attention_sink_backward(float* dqkv, float* dsink_key, float* dsink_value, float* dsink_logit, const float* dout,
                             const float* qkv, const float* out, const float* lse, const float* sink_key,
                             const float* sink_value, const float* sink_logit, int B, int T, int C, int NH,
                             SinkKind kind) {
    int hs = C / NH, has_key = kind == SINK_KEY || kind == SINK_KEY_VALUE;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel for
    for (int h = 0; h < NH; h++) {
        const float* k_slot = has_key ? sink_key + (size_t)h * hs : NULL;
        const float* v_slot = kind == SINK_KEY_VALUE ? sink_value + (size_t)h * hs : NULL;
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++) {
                size_t row = (size_t)b * T + t;
                const float* q = qkv + row * 3 * C + (size_t)h * hs;
                const float* o = out + row * C + (size_t)h * hs;
                const float* dout_row = dout + row * C + (size_t)h * hs;
                float z = slot_logit(q, sink_key, sink_logit, h, hs, scale, kind);
                float p_slot = expf(z - lse[((size_t)b * NH + h) * T + t]);
                float dp_slot = v_slot ? dot(dout_row, v_slot, hs) : 0.0f;
                float dz = p_slot * (dp_slot - dot(dout_row, o, hs));
                if (has_key) {
                    float* dq = dqkv + row * 3 * C + (size_t)h * hs;
                    for (int c = 0; c < hs; c++) {
                        dq[c] += scale * dz * k_slot[c];
                        dsink_key[(size_t)h * hs + c] += scale * dz * q[c];
                    }
                }
                if (v_slot)
                    for (int c = 0; c < hs; c++) dsink_value[(size_t)h * hs + c] += p_slot * dout_row[c];
                if (kind == SINK_LOGIT) dsink_logit[h] += dz;
            }
        }
    }
}
