// The mLSTM cell on the CPU, fp32 (xLSTM matrix memory; docs/MODEL.md section 11), OpenMP over (b, h).
// One implementation, the chunkwise form of docs/MODEL.md 11.3: the parallel (quadratic) form of 11.2 is it
// with a single chunk of T positions, and the recurrent step of 11.1 is its state update over a chunk of
// one position followed by a read-out of the new state. mLSTMsig (11.4) is the same code with the log
// input gate logsigmoid(i~) instead of i~ and the stabiliser fixed at 0. Gates are soft-capped first
// (15 tanh(z/15), docs/MODEL.md 11). Output row t of a chunk t0.. with the state (C, n, m) before the chunk:
//   logw_s = sum_{r=s+1..t} lf_r + li_s (keys s = t0..t),   b_t = sum_{r=t0..t} lf_r (the state's)
//   m_t = max(b_t + m, max_s logw_s) [exp] or 0 [sig],        beta = exp(b_t + m - m_t)
//   num = beta C^T q_t/sqrt(hs) + sum_s exp(logw_s - m_t) (q_t.k_s/sqrt(hs)) v_s;  den: n and 1 for C, v
//   n_out_t = max(|den|, exp(-m_t)),   h_t = num / (n_out_t + 1e-6)
// The log weights are summed from t downwards (docs/MODEL.md 11.2 "stablef"), so near keys never see the
// cancellation of two long cumulative sums. With m_0 = 0 before the first chunk, m_t includes the
// initial state's log weight, so the three forms give the same m, n and h (docs/MODEL.md 11.2 itself takes
// m_t = max_s log D_ts, which differs only in the eps*exp(m) term). The running max is not floored
// at -10 as in the Triton kernels (docs/MODEL.md 11.3): m_t >= li_t >= -15 after the soft-cap anyway,
// so exp(-m_t) <= e^15 and every exp(logw - m) <= 1.
// Backward (docs/MODEL.md 11.2, 11.3; n_out and m_out are constants): the chunk states are recomputed, a
// reverse pass over the chunks carries dC, and the gate gradients come from the head's own dq, dk:
// d li_t = k_t.dk_t (= the column sum of docs/MODEL.md 11.2), d lf_t = sum_{u>=t} (q_u.dq_u - k_u.dk_u),
// times sigmoid(-i~) (mLSTMsig) and sigmoid(-f~), times the soft-cap derivative 1 - tanh^2(z/15).
// Parallelism: one task per (b, h), which owns that head's columns of every output (no atomics).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention/mlstm.h"
#include "common/fastmath.h"
#include "common/check.h"

static inline int min_int(int a, int b) { return a < b ? a : b; }
static inline float max_f(float a, float b) { return a > b ? a : b; }
static inline float log_sigmoid(float x) { return x < 0.0f ? x - log1pf(expf(x)) : -log1pf(expf(-x)); }
static inline float soft_cap(float z) { return MLSTM_GATE_SOFT_CAP * tanhf(z / MLSTM_GATE_SOFT_CAP); }
static inline float soft_cap_grad(float z) {
    float th = tanhf(z / MLSTM_GATE_SOFT_CAP);
    return 1.0f - th * th;
}

static inline float dot(const float* restrict a, const float* restrict b, int n) {
    float sum = 0.0f;
    #pragma omp simd reduction(+:sum)
    for (int i = 0; i < n; i++) sum += a[i] * b[i];
    return sum;
}

// y (n) += alpha * x (n).
static inline void axpy(float* restrict y, float alpha, const float* restrict x, int n) {
    #pragma omp simd
    for (int i = 0; i < n; i++) y[i] += alpha * x[i];
}

static inline const float* row(const float* p, int t, size_t stride) { return p + (size_t)t * stride; }

// One (b, h): q, k, v at row 0 of this head's columns of qkv (rows `stride` = 3C floats apart) and
// the head's log input and log forget gates li, lf (T).
typedef struct {
    const float *q, *k, *v, *li, *lf;
    size_t stride;
    int hs, sig_igate;
    float scale;   // 1/sqrt(hs)
} Head;

// The memory before a chunk: C (hs,hs) [key dim, value dim], n (hs) or NULL, the stabiliser m.
typedef struct {
    float *C, *n;
    float m;
} State;

// li, lf (T) from the raw pre-activations gate_i[t*gstride], gate_f[t*gstride].
static void log_gates(float* li, float* lf, const float* gate_i, const float* gate_f, size_t gstride, int T,
                      int sig_igate) {
    for (int t = 0; t < T; t++) {
        float i_t = soft_cap(gate_i[t * gstride]), f_t = soft_cap(gate_f[t * gstride]);
        li[t] = sig_igate ? log_sigmoid(i_t) : i_t;
        lf[t] = log_sigmoid(f_t);
    }
}

// The Head of (b, head) of qkv (B,T,3C), with its log gates from gates (B,T,2NH) written to li, lf (T).
static Head head_at(const float* qkv, const float* gates, float* li, float* lf, int b, int head, int T, int C,
                    int NH, int sig_igate) {
    int hs = C / NH;
    const float* q = qkv + (size_t)b * T * 3 * C + (size_t)head * hs;
    const float* g = gates + (size_t)b * T * 2 * NH + head;
    log_gates(li, lf, g, g + NH, 2 * (size_t)NH, T, sig_igate);
    return (Head){q, q + C, q + 2 * C, li, lf, 3 * (size_t)C, hs, sig_igate, 1.0f / sqrtf((float)hs)};
}

// The stabiliser: max(base, logw (n)) for mLSTMexp, 0 for mLSTMsig.
static float stabiliser(float base, const float* logw, int n, int sig_igate) {
    if (sig_igate) return 0.0f;
    float m = base;
    for (int i = 0; i < n; i++) m = max_f(m, logw[i]);
    return m;
}

// Row t of the chunk starting at t0: logw[s - t0] = sum_{r=s+1..t} lf_r + li_s for the keys
// s = t0..t; returns the state's log weight b_t = sum_{r=t0..t} lf_r.
static float row_log_weights(float* logw, const Head* hd, int t0, int t) {
    float acc = 0.0f;
    for (int s = t; s > t0; s--) {
        logw[s - t0] = acc + hd->li[s];
        acc += hd->lf[s];
    }
    logw[0] = acc + hd->li[t0];
    return acc + hd->lf[t0];
}

// The chunk t0..t1-1 as seen from its end: a[s - t0] = sum_{r=s+1..t1-1} lf_r + li_s; returns the
// chunk's total log forget g = sum_{r=t0..t1-1} lf_r.
static float chunk_log_weights(float* a, const Head* hd, int t0, int t1) {
    float acc = 0.0f;
    for (int s = t1 - 1; s >= t0; s--) {
        a[s - t0] = acc + hd->li[s];
        acc += hd->lf[s];
    }
    return acc;
}

// One output row: h (hs), n_out, m_out for query q from the state st (log weight state_logw) and the
// keys t0..t1-1 with log weights logw (see the file comment). No keys (t1 = t0): a read-out of st.
static void output_row(float* restrict h, float* n_out, float* m_out, const Head* hd, const State* st,
                       const float* q, float state_logw, const float* logw, int t0, int t1) {
    int hs = hd->hs;
    float m = stabiliser(state_logw + st->m, logw, t1 - t0, hd->sig_igate);
    float beta = expf(state_logw + st->m - m) * hd->scale;
    for (int j = 0; j < hs; j++) h[j] = 0.0f;
    for (int c = 0; c < hs; c++) axpy(h, beta * q[c], st->C + (size_t)c * hs, hs);
    float den = beta * dot(q, st->n, hs);
    for (int s = t0; s < t1; s++) {
        float w = expf(logw[s - t0] - m) * hd->scale * dot(q, row(hd->k, s, hd->stride), hs);
        axpy(h, w, row(hd->v, s, hd->stride), hs);
        den += w;
    }
    float n = max_f(fabsf(den), expf(-m)), inv = 1.0f / (n + MLSTM_EPS);
    for (int j = 0; j < hs; j++) h[j] *= inv;
    *n_out = n;
    *m_out = m;
}

// st: the state before the chunk t0..t1-1 -> the state after it (docs/MODEL.md 11.3); st->n may be NULL.
// a (t1 - t0) is scratch.
static void state_update(State* st, const Head* hd, int t0, int t1, float* a) {
    int hs = hd->hs;
    float g = chunk_log_weights(a, hd, t0, t1);
    float m = stabiliser(g + st->m, a, t1 - t0, hd->sig_igate);
    float decay = expf(g + st->m - m);
    for (size_t i = 0; i < (size_t)hs * hs; i++) st->C[i] *= decay;
    for (int c = 0; st->n && c < hs; c++) st->n[c] *= decay;
    for (int s = t0; s < t1; s++) {
        float e = expf(a[s - t0] - m);
        const float *k = row(hd->k, s, hd->stride), *v = row(hd->v, s, hd->stride);
        for (int c = 0; c < hs; c++) axpy(st->C + (size_t)c * hs, e * k[c], v, hs);
        if (st->n) axpy(st->n, e, k, hs);
    }
    st->m = m;
}

// Per-thread scratch of the forward: li, lf (T); logw, a (L, the chunk length); the state C (hs,hs), n (hs).
typedef struct {
    float *li, *lf, *logw, *a, *C, *n;
} ForwardScratch;

// n floats from *buf, which moves past them: carves one allocation into the arrays of a scratch.
static float* take(float** buf, size_t n) {
    float* p = *buf;
    *buf += n;
    return p;
}

static size_t forward_scratch_floats(int T, int L, int hs) {
    return 2 * (size_t)T + 2 * (size_t)L + (size_t)hs * (hs + 1);
}

static ForwardScratch forward_scratch(float* buf, int T, int L, int hs) {
    ForwardScratch w;
    w.li = take(&buf, T), w.lf = take(&buf, T), w.logw = take(&buf, L), w.a = take(&buf, L);
    w.C = take(&buf, (size_t)hs * hs), w.n = take(&buf, hs);
    return w;
}

// One head: h (T rows, h_stride floats apart), n_out, m_out (T).
static void head_forward(float* h, float* n_out, float* m_out, size_t h_stride, const Head* hd, int T, int chunk,
                         ForwardScratch* w) {
    int hs = hd->hs;
    memset(w->C, 0, (size_t)hs * hs * sizeof(float));
    memset(w->n, 0, (size_t)hs * sizeof(float));
    State st = {w->C, w->n, 0.0f};
    for (int t0 = 0; t0 < T; t0 += chunk) {
        int t1 = min_int(t0 + chunk, T);
        for (int t = t0; t < t1; t++) {
            float b = row_log_weights(w->logw, hd, t0, t);
            output_row(h + (size_t)t * h_stride, n_out + t, m_out + t, hd, &st, row(hd->q, t, hd->stride), b,
                       w->logw, t0, t + 1);
        }
        if (t1 < T) state_update(&st, hd, t0, t1, w->a);
    }
}

static void check_chunk(const char* fn, int chunk) {
    if (chunk <= 0) fail("%s: chunk size %d is not positive; use a chunk size >= 1 (64 is usual)", fn, chunk);
}

// qkv (B,T,3C), gates (B,T,2NH) -> h (B,T,C), n_out, m_out (B,NH,T).
void mlstm_chunkwise_forward(float* h, float* n_out, float* m_out, const float* qkv, const float* gates,
                             int B, int T, int C, int NH, int chunk, int sig_igate) {
    check_chunk("mlstm_chunkwise_forward", chunk);
    if (T <= 0) return;
    int hs = C / NH, L = min_int(chunk, T);
    #pragma omp parallel
    {
        float* buf = malloc_check(forward_scratch_floats(T, L, hs) * sizeof(float));
        ForwardScratch w = forward_scratch(buf, T, L, hs);
        #pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int head = 0; head < NH; head++) {
                Head hd = head_at(qkv, gates, w.li, w.lf, b, head, T, C, NH, sig_igate);
                size_t at = ((size_t)b * NH + head) * T;
                head_forward(h + (size_t)b * T * C + (size_t)head * hs, n_out + at, m_out + at, C, &hd, T, L, &w);
            }
        }
        free(buf);
    }
}

// The quadratic form: one chunk of T positions.
void mlstm_parallel_forward(float* h, float* n_out, float* m_out, const float* qkv, const float* gates,
                            int B, int T, int C, int NH, int sig_igate) {
    mlstm_chunkwise_forward(h, n_out, m_out, qkv, gates, B, T, C, NH, T > 0 ? T : 1, sig_igate);   // T = 0: a no-op
}

// Per-thread scratch of the backward: li, lf (T); logw, a (L, the chunk length); states (NC,hs,hs)
// and m_states (NC), the states entering each of the NC chunks; dC (hs,hs); dhp (hs) = dh_t /
// (n_out_t + eps); the head's own gradients dq, dk, dv (T,hs).
typedef struct {
    float *li, *lf, *logw, *a, *states, *m_states, *dC, *dhp, *dq, *dk, *dv;
} BackwardScratch;

static size_t backward_scratch_floats(int T, int L, int NC, int hs) {
    size_t hs2 = (size_t)hs * hs;
    return 2 * (size_t)T + 2 * (size_t)L + NC * (hs2 + 1) + hs2 + hs + 3 * (size_t)T * hs;
}

static BackwardScratch backward_scratch(float* buf, int T, int L, int NC, int hs) {
    size_t hs2 = (size_t)hs * hs;
    BackwardScratch w;
    w.li = take(&buf, T), w.lf = take(&buf, T), w.logw = take(&buf, L), w.a = take(&buf, L);
    w.states = take(&buf, NC * hs2), w.m_states = take(&buf, NC), w.dC = take(&buf, hs2), w.dhp = take(&buf, hs);
    w.dq = take(&buf, (size_t)T * hs), w.dk = take(&buf, (size_t)T * hs), w.dv = take(&buf, (size_t)T * hs);
    return w;
}

// The states C and m entering each chunk, recomputed with the forward's recurrence (n is not needed).
static void recompute_states(float* states, float* m_states, const Head* hd, int T, int chunk, float* a) {
    size_t hs2 = (size_t)hd->hs * hd->hs;
    memset(states, 0, hs2 * sizeof(float));
    State st = {states, NULL, 0.0f};
    for (int k = 0, t0 = 0; t0 < T; k++, t0 += chunk) {
        m_states[k] = st.m;
        if (t0 + chunk >= T) break;
        st.C = states + (size_t)(k + 1) * hs2;
        memcpy(st.C, st.C - hs2, hs2 * sizeof(float));
        state_update(&st, hd, t0, t0 + chunk, a);
    }
}

// The keys t0..t1-1 of a chunk wrote into the state after it (stabiliser m_after), whose gradient is
// w->dC: dk_s += e_s dC v_s, dv_s += e_s dC^T k_s with e_s = exp(a_s - m_after). Then dC *= the
// chunk's decay, leaving the part of the gradient of the state before the chunk (stabiliser
// m_before) that flows through the state after it.
static void chunk_state_backward(BackwardScratch* w, const Head* hd, float m_before, float m_after, int t0, int t1) {
    int hs = hd->hs;
    float g = chunk_log_weights(w->a, hd, t0, t1);
    for (int s = t0; s < t1; s++) {
        float e = expf(w->a[s - t0] - m_after);
        const float *k = row(hd->k, s, hd->stride), *v = row(hd->v, s, hd->stride);
        float *dk = w->dk + (size_t)s * hs, *dv = w->dv + (size_t)s * hs;
        for (int c = 0; c < hs; c++) {
            const float* dC_c = w->dC + (size_t)c * hs;
            dk[c] += e * dot(dC_c, v, hs);
            axpy(dv, e * k[c], dC_c, hs);
        }
    }
    float decay = expf(g + m_before - m_after);
    for (size_t i = 0; i < (size_t)hs * hs; i++) w->dC[i] *= decay;
}

// Output row t of the chunk starting at t0, with the state st before the chunk, from dh_t (hs):
// dq_t and dk, dv of the keys t0..t += the in-chunk terms, dq_t += the state term, and dC += its
// gradient of the state, beta q_t dh'^T (docs/MODEL.md 11.3, n_out and m_out constants).
static void backward_row(BackwardScratch* w, const Head* hd, const State* st, const float* dh_t, float n_out,
                         float m_out, int t0, int t) {
    int hs = hd->hs;
    float b = row_log_weights(w->logw, hd, t0, t);
    float beta = expf(b + st->m - m_out) * hd->scale, inv = 1.0f / (n_out + MLSTM_EPS);
    for (int j = 0; j < hs; j++) w->dhp[j] = dh_t[j] * inv;
    const float* q = row(hd->q, t, hd->stride);
    float* dq = w->dq + (size_t)t * hs;
    for (int c = 0; c < hs; c++) {
        dq[c] += beta * dot(st->C + (size_t)c * hs, w->dhp, hs);
        axpy(w->dC + (size_t)c * hs, beta * q[c], w->dhp, hs);
    }
    for (int s = t0; s <= t; s++) {
        const float *k = row(hd->k, s, hd->stride), *v = row(hd->v, s, hd->stride);
        float D = expf(w->logw[s - t0] - m_out);
        float S = hd->scale * dot(q, k, hs), dS = hd->scale * D * dot(w->dhp, v, hs);
        axpy(w->dv + (size_t)s * hs, D * S, w->dhp, hs);
        axpy(dq, dS, k, hs);
        axpy(w->dk + (size_t)s * hs, dS, q, hs);
    }
}

// The head's gate gradients (docs/MODEL.md 11.2, 11.3): d li_t = k_t.dk_t, d lf_t = sum_{u>=t} (q_u.dq_u -
// k_u.dk_u), through sigmoid (mLSTMsig input gate), logsigmoid (forget gate) and the soft-cap, += into
// dgate_i[t*gstride], dgate_f[t*gstride]; the raw pre-activations are at gate_i, gate_f likewise.
static void gate_backward(float* dgate_i, float* dgate_f, const float* gate_i, const float* gate_f, size_t gstride,
                          const Head* hd, const BackwardScratch* w, int T) {
    int hs = hd->hs;
    float dlf = 0.0f;
    for (int t = T - 1; t >= 0; t--) {
        float kdk = dot(row(hd->k, t, hd->stride), w->dk + (size_t)t * hs, hs);
        dlf += dot(row(hd->q, t, hd->stride), w->dq + (size_t)t * hs, hs) - kdk;
        float zi = gate_i[t * gstride], zf = gate_f[t * gstride];
        float dli = hd->sig_igate ? kdk * sigmoid(-soft_cap(zi)) : kdk;
        dgate_i[t * gstride] += dli * soft_cap_grad(zi);
        dgate_f[t * gstride] += dlf * sigmoid(-soft_cap(zf)) * soft_cap_grad(zf);
    }
}

// dst (T rows `stride` floats apart, hs columns) += src (T,hs).
static void add_rows(float* dst, size_t stride, const float* src, int T, int hs) {
    for (int t = 0; t < T; t++) axpy(dst + (size_t)t * stride, 1.0f, src + (size_t)t * hs, hs);
}

// One head's dq, dk, dv (in w) from dh (T rows, C floats apart), n_out, m_out (T).
static void head_backward(BackwardScratch* w, const Head* hd, const float* dh, const float* n_out,
                          const float* m_out, int T, int chunk, int C) {
    int hs = hd->hs, NC = (T + chunk - 1) / chunk;
    size_t hs2 = (size_t)hs * hs;
    memset(w->dq, 0, (size_t)T * hs * sizeof(float));
    memset(w->dk, 0, (size_t)T * hs * sizeof(float));
    memset(w->dv, 0, (size_t)T * hs * sizeof(float));
    memset(w->dC, 0, hs2 * sizeof(float));
    recompute_states(w->states, w->m_states, hd, T, chunk, w->a);
    for (int k = NC - 1; k >= 0; k--) {
        int t0 = k * chunk, t1 = min_int(t0 + chunk, T);
        if (k < NC - 1) chunk_state_backward(w, hd, w->m_states[k], w->m_states[k + 1], t0, t1);
        State st = {w->states + k * hs2, NULL, w->m_states[k]};
        for (int t = t0; t < t1; t++)
            backward_row(w, hd, &st, dh + (size_t)t * C, n_out[t], m_out[t], t0, t);
    }
}

// dqkv (B,T,3C), dgates (B,T,2NH) += from dh (B,T,C), n_out, m_out (B,NH,T).
void mlstm_chunkwise_backward(float* dqkv, float* dgates, const float* dh, const float* qkv, const float* gates,
                              const float* n_out, const float* m_out, int B, int T, int C, int NH, int chunk,
                              int sig_igate) {
    check_chunk("mlstm_chunkwise_backward", chunk);
    if (T <= 0) return;
    int hs = C / NH, L = min_int(chunk, T), NC = (T + L - 1) / L;
    #pragma omp parallel
    {
        float* buf = malloc_check(backward_scratch_floats(T, L, NC, hs) * sizeof(float));
        BackwardScratch w = backward_scratch(buf, T, L, NC, hs);
        #pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int head = 0; head < NH; head++) {
                Head hd = head_at(qkv, gates, w.li, w.lf, b, head, T, C, NH, sig_igate);
                size_t at = ((size_t)b * NH + head) * T, g_at = (size_t)b * T * 2 * NH + head;
                head_backward(&w, &hd, dh + (size_t)b * T * C + (size_t)head * hs, n_out + at, m_out + at, T, L, C);
                gate_backward(dgates + g_at, dgates + g_at + NH, gates + g_at, gates + g_at + NH, 2 * (size_t)NH,
                              &hd, &w, T);
                float* dq = dqkv + (size_t)b * T * 3 * C + (size_t)head * hs;
                add_rows(dq, 3 * (size_t)C, w.dq, T, hs);
                add_rows(dq + C, 3 * (size_t)C, w.dk, T, hs);
                add_rows(dq + 2 * C, 3 * (size_t)C, w.dv, T, hs);
            }
        }
        free(buf);
    }
}

// The quadratic form: one chunk of T positions.
void mlstm_parallel_backward(float* dqkv, float* dgates, const float* dh, const float* qkv, const float* gates,
                             const float* n_out, const float* m_out, int B, int T, int C, int NH, int sig_igate) {
    mlstm_chunkwise_backward(dqkv, dgates, dh, qkv, gates, n_out, m_out, B, T, C, NH, T > 0 ? T : 1, sig_igate);
}

// h (B,C) from qkv (B,3C), gates (B,2NH); the state (c_state, n_state, m_state) advanced by one step:
// a chunk of one position, then a read-out of the new state (docs/MODEL.md 11.1).
void mlstm_recurrent_step(float* h, float* c_state, float* n_state, float* m_state, const float* qkv,
                          const float* gates, int B, int C, int NH, int sig_igate) {
    int hs = C / NH;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int head = 0; head < NH; head++) {
            float li, lf, a, n_unused, m_unused;
            Head hd = head_at(qkv, gates, &li, &lf, b, head, 1, C, NH, sig_igate);
            size_t bh = (size_t)b * NH + head;
            State st = {c_state + bh * hs * hs, n_state + bh * hs, m_state[bh]};
            state_update(&st, &hd, 0, 1, &a);
            m_state[bh] = st.m;
            output_row(h + (size_t)b * C + (size_t)head * hs, &n_unused, &m_unused, &hd, &st, hd.q, 0.0f, NULL, 0, 0);
        }
    }
}

void mlstm_score_matrix(float* weights, const float* qkv, const float* gates, int B, int T, int C, int NH,
                        int sig_igate) {
    #pragma omp parallel
    {
        float* buf = malloc_check(3 * (size_t)T * sizeof(float));
        float *li = buf, *lf = buf + T, *logw = buf + 2 * T;
        #pragma omp for collapse(2)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                Head hd = head_at(qkv, gates, li, lf, b, h, T, C, NH, sig_igate);
                for (int t = 0; t < T; t++) {
                    float* w = weights + (((size_t)b * NH + h) * T + t) * T;
                    row_log_weights(logw, &hd, 0, t);
                    float m = stabiliser(-INFINITY, logw, t + 1, 0);
                    for (int j = 0; j < T; j++)
                        w[j] = j <= t ? fabsf(hd.scale * dot(row(hd.q, t, hd.stride), row(hd.k, j, hd.stride), hd.hs)) *
                                            expf(logw[j] - m)
                                      : 0.0f;
                }
            }
        }
        free(buf);
    }
}
