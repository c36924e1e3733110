// The CUDA attention (attention/softmax_sigmoid.cu) against its CPU twin (attention/softmax_sigmoid.c,
// fp32) for every score mode: forward out and stat, backward dqkv (accumulated onto random values), and
// decoding (Tq new rows over a KV cache of Tk of Tmax rows, the rows past Tk NaN so that a read of
// them shows). Head sizes 8 and 12 take the row-wise kernels, 32, 64 and 128 the tensor-core ones in the
// bf16 build (forward for Tq >= 16); T = 1, 7, 64, 65, 200 cover single rows, partial tiles and
// several tiles. The backward is run twice and must give the same bits (it is deterministic), and once
// more from zeros, to check the gradient alone. For T <= 65 the analysis kernel attention_weights_cuda
// against attention_weights from the same row statistic. ALiBi (docs/MODEL.md section 6) on each score map runs
// on a subset of the shapes, with 2 to 5 heads (different slopes), including decoding shapes in both
// families, where the query's absolute position Tk - Tq + i sets the offsets.
#include <array>
#include <cstring>

#include "test/cuda/harness.cuh"

#include "attention/softmax_sigmoid.h"

namespace {

struct Mode {
    const char* name;
    AttnScore score;
};

const Mode MODES[] = {
    {"softmax", {0, 0.0f, 0, 0}},
    {"sigmoid b=-3.2", {1, -3.2f, 0, 0}},
    {"sigmoid b=0", {1, 0.0f, 0, 0}},
    {"sigmoid/norm b=0", {1, 0.0f, 1, 0}},
    {"sigmoid/norm b=-3.2", {1, -3.2f, 1, 0}},
};

const Mode ALIBI_MODES[] = {
    {"softmax alibi", {0, 0.0f, 0, 1}},
    {"sigmoid b=-3.2 alibi", {1, -3.2f, 0, 1}},
    {"sigmoid/norm b=0 alibi", {1, 0.0f, 1, 1}},
};

// The shapes a set of modes runs on: each head size with each training length (forward and backward)
// and each decoding shape (Tq, Tk, Tmax): Tq new rows after Tk - Tq cached ones, Tmax - Tk rows not yet
// written. B (1 .. max_batch) and NH (min_heads + 0..3) vary with the case number.
struct Shapes {
    std::vector<int> head_sizes, lengths;
    std::vector<std::array<int, 3>> decode;
    int max_batch, min_heads;
};

// floatX bits of a device buffer, for the determinism check.
std::vector<floatX> device_bits(const floatX* d, size_t n) {
    std::vector<floatX> x(n);
    cuda_check(cudaMemcpy(x.data(), d, n * sizeof(floatX), cudaMemcpyDeviceToHost));
    return x;
}

// One shape: the forward over the last Tq of Tk positions of a (B,Tmax,3C) qkv; the backward too
// when Tq = Tk = Tmax (training). Returns the number of failed checks.
int attention_case(const Mode& mode, int B, int NH, int hs, int Tq, int Tk, int Tmax, uint64_t seed) {
    const int C = NH * hs;
    const size_t n_qkv = (size_t)B * Tmax * 3 * C, n_out = (size_t)B * Tq * C, n_stat = (size_t)B * NH * Tq;
    std::vector<float> qkv = host_random(n_qkv, 1.0f, seed);
    round_to_floatx(qkv);
    for (int b = 0; b < B; b++)   // KV cache rows not written yet: neither side may read them
        for (int t = Tk; t < Tmax; t++)
            for (int c = 0; c < 3 * C; c++) qkv[((size_t)b * Tmax + t) * 3 * C + c] = NAN;

    std::vector<float> out_ref(n_out), stat_ref(n_stat);
    attention_forward(out_ref.data(), stat_ref.data(), qkv.data(), B, Tq, Tk, Tmax, C, NH, mode.score);

    floatX* d_qkv = to_device(qkv);
    floatX* d_out = device_alloc<floatX>(n_out);
    float* d_stat = device_alloc<float>(n_stat);
    poison(d_out, n_out * sizeof(floatX));
    poison(d_stat, n_stat * sizeof(float));
    attention_forward_cuda(d_out, d_stat, d_qkv, B, Tq, Tk, Tmax, C, NH, mode.score);
    cuda_check(cudaDeviceSynchronize());

    int failures = 0;
    char what[160];
    snprintf(what, sizeof(what), "attention %s B=%d NH=%d hs=%d Tq=%d Tk=%d Tmax=%d out", mode.name, B, NH, hs, Tq,
             Tk, Tmax);
    failures += check(what, rel_err(from_device(d_out, n_out), out_ref), TOL_REDUCTION);
    snprintf(what, sizeof(what), "attention %s B=%d NH=%d hs=%d Tq=%d Tk=%d Tmax=%d stat", mode.name, B, NH, hs, Tq,
             Tk, Tmax);
    failures += check(what, rel_err(from_device_float(d_stat, n_stat), stat_ref), TOL_REDUCTION);

    if (Tq == Tk && Tk == Tmax && Tk <= 65) {   // the analysis weights, from the same (CPU) row statistic
        const size_t n_w = (size_t)B * NH * Tk * Tk;
        std::vector<float> w_ref(n_w);
        attention_weights(w_ref.data(), qkv.data(), stat_ref.data(), B, Tk, C, NH, mode.score);
        float* d_stat_ref = to_device_float(stat_ref);
        float* d_w = device_alloc<float>(n_w);
        poison(d_w, n_w * sizeof(float));
        attention_weights_cuda(d_w, d_qkv, d_stat_ref, B, Tk, C, NH, mode.score);
        cuda_check(cudaDeviceSynchronize());
        snprintf(what, sizeof(what), "attention %s B=%d NH=%d hs=%d T=%d weights", mode.name, B, NH, hs, Tk);
        failures += check(what, rel_err(from_device_float(d_w, n_w), w_ref), TOL_ELEMENTWISE);
        cuda_check(cudaFree(d_w));
        cuda_check(cudaFree(d_stat_ref));
    }
    if (Tq == Tk && Tk == Tmax) {
        const int T = Tk;
        std::vector<float> dout = host_random(n_out, 1.0f, seed + 1), dqkv = host_random(n_qkv, 1.0f, seed + 2);
        round_to_floatx(dout);
        round_to_floatx(dqkv);
        std::vector<float> dqkv_ref = dqkv;
        attention_backward(dqkv_ref.data(), dout.data(), qkv.data(), out_ref.data(), stat_ref.data(), B, T, C, NH,
                           mode.score);

        floatX* d_dout = to_device(dout);
        floatX* d_dqkv = to_device(dqkv);
        floatX* d_dqkv2 = to_device(dqkv);
        attention_backward_cuda(d_dqkv, d_dout, d_qkv, d_out, d_stat, B, T, C, NH, mode.score);
        attention_backward_cuda(d_dqkv2, d_dout, d_qkv, d_out, d_stat, B, T, C, NH, mode.score);
        cuda_check(cudaDeviceSynchronize());
        snprintf(what, sizeof(what), "attention %s B=%d NH=%d hs=%d T=%d dqkv", mode.name, B, NH, hs, T);
        failures += check(what, rel_err(from_device(d_dqkv, n_qkv), dqkv_ref), TOL_REDUCTION);
        std::vector<floatX> bits = device_bits(d_dqkv, n_qkv), bits2 = device_bits(d_dqkv2, n_qkv);
        const int same = memcmp(bits.data(), bits2.data(), n_qkv * sizeof(floatX)) == 0;
        snprintf(what, sizeof(what), "attention %s B=%d NH=%d hs=%d T=%d dqkv deterministic", mode.name, B, NH, hs, T);
        failures += check(what, same ? 0.0 : 1.0, 0.0);
        // the gradient alone (from zeros), which the random start above would partly hide in bf16
        std::vector<float> grad_ref(n_qkv, 0.0f);
        attention_backward(grad_ref.data(), dout.data(), qkv.data(), out_ref.data(), stat_ref.data(), B, T, C, NH,
                           mode.score);
        cuda_check(cudaMemset(d_dqkv2, 0, n_qkv * sizeof(floatX)));
        attention_backward_cuda(d_dqkv2, d_dout, d_qkv, d_out, d_stat, B, T, C, NH, mode.score);
        cuda_check(cudaDeviceSynchronize());
        snprintf(what, sizeof(what), "attention %s B=%d NH=%d hs=%d T=%d dqkv from 0", mode.name, B, NH, hs, T);
        failures += check(what, rel_err(from_device(d_dqkv2, n_qkv), grad_ref), TOL_REDUCTION);
        cuda_check(cudaFree(d_dqkv2));
        cuda_check(cudaFree(d_dqkv));
        cuda_check(cudaFree(d_dout));
    }
    cuda_check(cudaFree(d_stat));
    cuda_check(cudaFree(d_out));
    cuda_check(cudaFree(d_qkv));
    return failures;
}

// Every mode of modes on every shape of shapes; n numbers the cases (seeds, B, NH) across calls.
template <size_t N> int attention_cases(const Mode (&modes)[N], const Shapes& shapes, int& n) {
    int failures = 0;
    for (const Mode& mode : modes) {
        for (int hs : shapes.head_sizes) {
            for (int T : shapes.lengths) {
                failures += attention_case(mode, 1 + n % shapes.max_batch, shapes.min_heads + n % 4, hs, T, T, T,
                                           1000 + n);
                n++;
            }
            for (const auto& d : shapes.decode) {
                failures += attention_case(mode, 1 + n % shapes.max_batch, shapes.min_heads + (n / 2) % 3, hs, d[0],
                                           d[1], d[2], 1000 + n);
                n++;
            }
        }
    }
    return failures;
}

}   // namespace

int test_attention(void) {
    int n = 0;
    // decoding steps, and tensor-core shapes whose queries start 62..65 keys in (where a 64-row tile
    // first needs the causal mask)
    const Shapes all = {{8, 12, 32, 64, 128},
                        {1, 7, 64, 65, 200},
                        {{1, 70, 80}, {5, 70, 80}, {1, 1, 4}, {20, 70, 80}, {67, 150, 160},
                         {16, 78, 80}, {16, 79, 80}, {16, 80, 96}, {16, 81, 96}},
                        2,
                        1};
    // ALiBi, fewer shapes (the emulation is slow): a row-wise and the tensor-core head sizes; training
    // with T < 16 (row-wise forward) and over two tiles, the second partial; a decoding step (row-wise
    // forward) and tensor-core decoding, one and several key tiles into the cache. One sequence, 2-5 heads.
    const Shapes alibi = {{12, 32, 64, 128}, {7, 100}, {{1, 70, 80}, {20, 70, 80}, {67, 150, 160}}, 1, 2};
    return attention_cases(MODES, all, n) + attention_cases(ALIBI_MODES, alibi, n);
}
