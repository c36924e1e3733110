// Internal to the CUDA twins of attention/softmax_sigmoid.c (softmax_sigmoid.h): what the entry points
// (attention/softmax_sigmoid.cu) and the two kernel families share. Causal attention, FlashAttention-2
// (Dao 2023) style, with the score map of attention/score.h (softmax; sigmoid(s + b), FlashSigmoid,
// docs/MODEL.md 5.4; sigmoid / row sum, docs/MODEL.md 5.3; ALiBi, docs/MODEL.md section 6). No T x T
// matrix exists in memory in either direction.
//
// Two kernel families, one file each:
//  - tensor-core kernels (attention/softmax_sigmoid_tc.cu; bf16 build, head size 32, 64 or 128,
//    16-byte aligned pointers): mma.sync bf16 x bf16 -> fp32 on tiles staged in shared memory
//    (attention/flash.cuh), the forward a CTA per 64 query rows, the backward a dK/dV kernel (CTA per
//    key block, looping over query tiles) and a dQ kernel (CTA per query block, looping over key tiles);
//  - row-wise fallback kernels (attention/softmax_sigmoid_rowwise.cu; any head size, any precision;
//    the only path of the FP32 build, the forward for Tq < 16, i.e. decoding): one warp per query (or
//    key) row, fp32 throughout, lanes over keys for the scores, lanes over the head dimension for the
//    accumulators (kept in shared memory, so any hs works). The analysis' weights kernel is fp32 too.
//  D_i = dO_i . O_i (softmax and normalized sigmoid) comes from a pre-pass in attention/softmax_sigmoid.cu
//  into a stream-ordered scratch buffer (cudaMallocAsync), read by both families' backward.
//
// The score map is compile-time in every kernel: each is templated on a ScoreMap<MODE, ALIBI> (below),
// whose methods call the functions of attention/score.h with the mode and ALiBi as constants, so the
// kernels without ALiBi keep their arithmetic (bit for bit) and their cost, and a kernel's code names
// no option. With ALiBi the offset joins each score where the score is formed (after the scale, in
// the units the kernel keeps it in: log2 in the tensor-core softmax forward), before the mask, the
// max, the sigmoid and the row statistics, so the LSE and Z in stat include it, and the backward
// recomputes the same scores.
//
// Determinism: every kernel is deterministic (bitwise run to run): no atomics; each output element
// (out, stat, D, and each element of dqkv) is written by exactly one thread, with a fixed reduction
// order. dQ costs a second pass (the dQ kernel recomputes S and dP) instead of fp32 atomics.
// dqkv is accumulated (+=) with one read-modify-write per element at the end of a kernel.
#pragma once
#include <cmath>
#include <type_traits>

#include "attention/flash.cuh"   // first: common/cuda_common.cuh before attention/score.h (see there)
#include "attention/score.h"

namespace flash {

enum { MODE_SOFTMAX = 0, MODE_SIGMOID = 1, MODE_SIGMOID_NORM = 2 };

constexpr float LOG2E = 1.4426950408889634f;
constexpr float LN2 = 0.6931471805599453f;

static inline int score_mode(AttnScore s) {
    return !s.sigmoid ? MODE_SOFTMAX : (s.normalize ? MODE_SIGMOID_NORM : MODE_SIGMOID);
}

// The score map of attention/score.h as one head of a CUDA kernel applies it: MODE and ALIBI are
// template parameters and head.score's switches these constants, so score.h's branches fold at
// compile time; the bias and ALiBi's slope come from the launch's AttnScore. FAST picks the
// hardware's approximate exp and divide (__expf, __fdividef: the tensor-core kernels) over the
// accurate ones (expf and a true divide: the row-wise fp32 kernels).
template <int MODE_, bool ALIBI_> struct ScoreMap {
    static constexpr int MODE = MODE_;
    static constexpr bool ALIBI = ALIBI_;
    static constexpr bool ROW_STAT = MODE != MODE_SIGMOID;   // a row statistic and D_i (no use in plain sigmoid)
    AttnHead head;

    // The map of head h of NH; units: of the kernel's scores (LOG2E in the log2 domain), for the slope.
    static __device__ __forceinline__ ScoreMap of_head(AttnScore score, int h, int NH, float units = 1.0f) {
        ScoreMap map;
        map.head.score = score;
        map.head.score.sigmoid = MODE != MODE_SOFTMAX;
        map.head.score.normalize = MODE == MODE_SIGMOID_NORM;
        map.head.score.alibi = ALIBI;
        map.head.slope = ALIBI ? units * attn_alibi_slope(score, h, NH) : 0.0f;
        return map;
    }

    // ---- (a) the logit

    // Of query position i and key j, from the scaled score s (attn_logit).
    __device__ __forceinline__ float logit(float s, int i, int j) const { return attn_logit(head, s, i, j); }

    // The tensor-core kernels' attn_logit of C-fragment element e of n-block nb (fragment layout:
    // attention/flash.cuh), from the raw product s and the scale a, in the kernel's units; it adds
    // every term of attn_logit in its own form. ALiBi's, linear in j - i, costs one FMA per element:
    // o0 = tile_offset(d0), d0 the j - i of the thread's element (0, 0) in this tile; the element's
    // column minus row relative to it is c = 8 nb + (e & 1) - 8 (e >> 1), a compile-time constant, so
    // its j - i is d0 + SIGN c (SIGN = 1 when the columns are keys, as in S; -1 when they are queries,
    // as in S^T). The offset o0 + slope SIGN c is one FMA, shared by the elements with equal c, and
    // the addend of the scale's FMA. Exactly a s without ALiBi.
    __device__ __forceinline__ float tile_offset(int d0) const { return head.slope * (float)d0; }
    static_assert(ATTN_LOGIT_TERMS == 1, "attn_logit has a new term: add its fragment form to fragment_logit");
    template <int SIGN>
    __device__ __forceinline__ float fragment_logit(float s, float a, float o0, int nb, int e) const {
        const int c = 8 * nb + (e & 1) - 8 * (e >> 1);
        return ALIBI ? fmaf(s, a, fmaf(head.slope, (float)(SIGN * c), o0)) : s * a;
    }

    // ---- (b) the weight, the row's scale and statistic, the score gradient

    // The sigmoid weight before any normalization, sigmoid(x + b).
    __device__ __forceinline__ float sigmoid_weight(float x) const { return attn_sigmoid_weight(head, x); }

    // The softmax weight exp(x - m) (m: the LSE, or the running max before normalization).
    template <bool FAST> __device__ __forceinline__ float softmax_weight(float x, float m) const {
        return FAST ? attn_softmax_weight(x, m) : expf(x - m);
    }
    // The same of x and m in log2 units (x log2(e)): the tensor-core forward's, one ex2 and no multiply.
    __device__ __forceinline__ float softmax_weight_log2(float x, float m) const { return exp2f(x - m); }

    // What the row of weights is multiplied by once its sum l is known, and the statistic it saves
    // (m: the row's max logit, in natural units).
    template <bool FAST> __device__ __forceinline__ float row_scale(float l) const {
        if (!FAST) return attn_row_scale(head.score, l);
        // l >= 1 for softmax (the max term), far below 2^126 for both: the fast divide is exact enough
        return MODE == MODE_SOFTMAX         ? __fdividef(1.0f, l)
               : MODE == MODE_SIGMOID_NORM ? __fdividef(1.0f, attn_norm_divisor(l))
                                           : 1.0f;
    }
    __device__ __forceinline__ float row_stat(float m, float l) const { return attn_row_stat(head.score, m, l); }

    // The backward of one score, from the logit x, dP = dO . v, the row statistic (LSE or Z) and
    // D = dO . O: the weight w the forward used (for dV += w dO) and dS (unscaled: dQ, dK take
    // scale dS); the formulas are in attention/score.h.
    template <bool FAST>
    __device__ __forceinline__ void weight_and_grad(float x, float dp, float stat, float D, float& w, float& ds) const {
        if (MODE == MODE_SOFTMAX) {
            w = softmax_weight<FAST>(x, stat);
            ds = attn_softmax_grad(w, dp, D);
        } else {
            const AttnSigmoid sig = attn_sigmoid(head, x);
            if (MODE == MODE_SIGMOID) {
                w = sig.p;
                ds = attn_sigmoid_grad(sig, dp);
            } else {
                const float inv_z = FAST ? __fdividef(1.0f, attn_norm_divisor(stat)) : attn_norm_scale(stat);
                w = sig.p * inv_z;
                ds = attn_sigmoid_grad(sig, (dp - D) * inv_z);
            }
        }
    }
};

// f(ScoreMap<MODE, ALIBI>()) for the map of `score`: its mode and whether ALiBi is on, as constants
// (the kernels take the map's type, decltype of the argument, as their template parameter).
template <typename F> static void with_score(AttnScore score, F f) {
    const auto with_mode = [&](auto alibi) {
        constexpr bool ALIBI = decltype(alibi)::value;
        const int mode = score_mode(score);
        if (mode == MODE_SOFTMAX) f(ScoreMap<MODE_SOFTMAX, ALIBI>());
        else if (mode == MODE_SIGMOID) f(ScoreMap<MODE_SIGMOID, ALIBI>());
        else f(ScoreMap<MODE_SIGMOID_NORM, ALIBI>());
    };
    if (score.alibi) with_mode(std::true_type());
    else with_mode(std::false_type());
}

// ---- The families' launchers, which the entry points (attention/softmax_sigmoid.cu) pick from.
// Arguments as attention_forward_cuda and attention_backward_cuda (device views), scale = 1/sqrt(hs);
// dsum: D (B,NH,T), or nullptr for plain sigmoid.

// Row-wise fp32 kernels (attention/softmax_sigmoid_rowwise.cu): any head size, any precision.
void forward_rowwise(floatD* out, float* stat, const floatD* qkv, int B, int Tq, int Tk, int Tmax, int C, int NH,
                     float scale, AttnScore score);
void backward_rowwise(floatD* dqkv, const floatD* dout, const floatD* qkv, const float* stat, const float* dsum,
                      int B, int T, int C, int NH, float scale, AttnScore score);
// The analysis' weights (B,NH,T,T) from the saved row statistic (attention_weights_cuda).
void weights_rowwise(float* weights, const floatD* qkv, const float* stat, int B, int T, int C, int NH, float scale,
                     AttnScore score);

#ifdef ATTNLAB_BF16
// Tensor-core kernels (attention/softmax_sigmoid_tc.cu): head sizes tensor_core_head_size(),
// 16-byte aligned tensors; the forward also needs Tq >= 16.
void forward_tc(bf16* out, float* stat, const bf16* qkv, int B, int Tq, int Tk, int Tmax, int C, int NH, float scale,
                AttnScore score);
void backward_tc(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* stat, const float* dsum, int B, int T,
                 int C, int NH, float scale, AttnScore score);
#endif

}   // namespace flash
