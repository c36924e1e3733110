// The CUDA kernels of the mixer options against their CPU twins (fp32): the G1 gate (attention/gate.cu,
// headwise and elementwise), RoPE (attention/rope.cu, training, in place, and at decoding positions
// up to 3000), QK-norm (attention/qknorm.cu), the sink slot (attention/sink_slot.cu, every kind,
// training and decoding shapes), LayerScale (layers/layerscale.cu, also in place) and the mLSTM head
// norm (layers/headnorm.cu). Inputs are random and rounded to floatX so that both sides see the same
// values; forward outputs are poisoned with NaN before the call; backward gradients accumulate onto
// the same random values on both sides. Shapes are odd (head sizes 5, 6, 40; N = 1, 37) and large
// enough for the column sums' several row chunks (N = 600 > 256 rows per chunk). The kernels with a
// reduction over rows or channels run twice and must give the same bits. Bounds (harness.cuh):
// TOL_ELEMENTWISE for elementwise outputs, TOL_REDUCTION for statistics and gradients.
#include <cstdarg>
#include <cstring>
#include <string>

#include "test/cuda/harness.cuh"

#include "attention/gate.h"
#include "attention/qknorm.h"
#include "attention/rope.h"
#include "attention/sink_slot.h"
#include "layers/headnorm.h"
#include "layers/layerscale.h"

namespace {

int check(const std::string& what, double err, double bound) { return ::check(what.c_str(), err, bound); }

// N(0, scale^2) host values as floatX holds them.
std::vector<float> random_floatx(size_t n, float scale, uint64_t seed) {
    std::vector<float> x = host_random(n, scale, seed);
    round_to_floatx(x);
    return x;
}

floatX* poisoned(DeviceBuffers& dev, size_t n) {
    floatX* d = dev(device_alloc<floatX>(n));
    poison(d, n * sizeof(floatX));
    return d;
}

float* poisoned_float(DeviceBuffers& dev, size_t n) {
    float* d = dev(device_alloc<float>(n));
    poison(d, n * sizeof(float));
    return d;
}

// 0 when every pair of runs holds the same bits, else infinity (for check(..., 0.0)).
double bitwise_diff(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
    for (size_t i = 0; i < a.size(); i++)
        if (a[i].size() != b[i].size() || memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)) != 0)
            return INFINITY;
    return 0.0;
}

// A backward's gradient outputs: random starting values (the kernels accumulate), uploaded afresh
// for each run, read back after it.
struct Grads {
    std::vector<std::vector<float>> host;   // the CPU's, updated in place by the CPU kernel
    std::vector<floatX*> device;
    Grads(std::initializer_list<size_t> sizes, uint64_t seed) {
        for (size_t n : sizes) host.push_back(random_floatx(n, 1.0f, seed++));
    }
    void upload(DeviceBuffers& dev) {
        device.clear();
        for (const auto& h : host) device.push_back(dev(to_device(h)));
    }
    std::vector<std::vector<float>> download() const {
        std::vector<std::vector<float>> got;
        for (size_t i = 0; i < host.size(); i++) got.push_back(from_device(device[i], host[i].size()));
        return got;
    }
};

// Runs a CUDA backward twice from the same starting gradients (run(device pointers)), then the CPU
// one (cpu(host pointers)); checks each gradient against the CPU and the two runs bit for bit.
template <typename RunCuda, typename RunCpu>
int check_backward(const std::string& what, const std::vector<const char*>& names, Grads& grads, RunCuda run,
                   RunCpu cpu) {
    DeviceBuffers dev;
    std::vector<std::vector<float>> got[2];
    for (int r = 0; r < 2; r++) {
        grads.upload(dev);
        run(grads.device);
        got[r] = grads.download();
    }
    std::vector<float*> host;
    for (auto& h : grads.host) host.push_back(h.data());
    cpu(host);
    int fails = 0;
    for (size_t i = 0; i < names.size(); i++)
        fails += check(what + " " + names[i], rel_err(got[0][i], grads.host[i]), TOL_REDUCTION);
    return fails + check(what + " bitwise repeatable", bitwise_diff(got[0], got[1]), 0.0);
}

int test_gate(int N, int NH, int hs, bool headwise, uint64_t seed) {
    DeviceBuffers dev;
    int C = NH * hs, G = headwise ? NH : C, fails = 0;
    size_t NC = (size_t)N * C;
    std::string shape = fmt("gate %s N=%d NH=%d hs=%d", headwise ? "head" : "elem", N, NH, hs);
    std::vector<float> inp = random_floatx(NC, 1.0f, seed), z = random_floatx((size_t)N * G, 3.0f, seed + 1);
    floatX* d_inp = dev(to_device(inp));
    floatX* d_z = dev(to_device(z));
    std::vector<float> out(NC);
    gate_forward(out.data(), inp.data(), z.data(), N, NH, hs, headwise);
    floatX* d_out = poisoned(dev, NC);
    gate_forward_cuda(d_out, d_inp, d_z, N, NH, hs, headwise);
    fails += check(shape + " forward", rel_err(from_device(d_out, NC), out), TOL_ELEMENTWISE);

    std::vector<float> dout = random_floatx(NC, 1.0f, seed + 2);
    floatX* d_dout = dev(to_device(dout));
    Grads grads({NC, (size_t)N * G}, seed + 3);
    return fails + check_backward(
                       shape + " backward", {"dinp", "dgate_preact"}, grads,
                       [&](std::vector<floatX*>& d) {
                           gate_backward_cuda(d[0], d[1], d_dout, d_inp, d_z, N, NH, hs, headwise);
                       },
                       [&](std::vector<float*>& h) {
                           gate_backward(h[0], h[1], dout.data(), inp.data(), z.data(), N, NH, hs, headwise);
                       });
}

int test_rope(int B, int T, int NH, int hs, int pos0, uint64_t seed) {
    DeviceBuffers dev;
    int C = NH * hs, fails = 0;
    size_t n = (size_t)B * T * 3 * C;
    std::string shape = fmt("rope B=%d T=%d NH=%d hs=%d pos0=%d", B, T, NH, hs, pos0);
    std::vector<float> inp = random_floatx(n, 1.0f, seed);
    floatX* d_inp = dev(to_device(inp));
    std::vector<float> out(n);
    rope_forward(out.data(), inp.data(), B, T, C, NH, pos0);
    floatX* d_out = poisoned(dev, n);
    rope_forward_cuda(d_out, d_inp, B, T, C, NH, pos0);
    fails += check(shape + " forward", rel_err(from_device(d_out, n), out), TOL_ELEMENTWISE);
    floatX* d_in_place = dev(to_device(inp));   // as the graph calls it: qkv rotated in place
    rope_forward_cuda(d_in_place, d_in_place, B, T, C, NH, pos0);
    fails += check(shape + " forward in place", rel_err(from_device(d_in_place, n), out), TOL_ELEMENTWISE);

    std::vector<float> dout = random_floatx(n, 1.0f, seed + 1);
    floatX* d_dout = dev(to_device(dout));
    Grads grads({n}, seed + 2);
    return fails + check_backward(
                       shape + " backward", {"dinp"}, grads,
                       [&](std::vector<floatX*>& d) { rope_backward_cuda(d[0], d_dout, B, T, C, NH, pos0); },
                       [&](std::vector<float*>& h) { rope_backward(h[0], dout.data(), B, T, C, NH, pos0); });
}

int test_qknorm(int N, int NH, int hs, uint64_t seed) {
    DeviceBuffers dev;
    int C = NH * hs, fails = 0;
    size_t n = (size_t)N * 3 * C, stats = (size_t)N * 2 * NH;
    std::string shape = fmt("qknorm N=%d NH=%d hs=%d", N, NH, hs);
    std::vector<float> inp = host_random(n, 1.0f, seed);
    for (float& x : inp) x += 1.5f;   // an offset the mean has to remove
    round_to_floatx(inp);
    std::vector<float> w[4];   // qw, qb, kw, kb
    floatX* d_w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = random_floatx(hs, 1.0f, seed + 1 + i);
        d_w[i] = dev(to_device(w[i]));
    }
    floatX* d_inp = dev(to_device(inp));
    std::vector<float> out(n), mean(stats), rstd(stats);
    qknorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w[0].data(), w[1].data(), w[2].data(),
                   w[3].data(), N, C, NH);
    floatX* d_out = poisoned(dev, n);
    float* d_mean = poisoned_float(dev, stats);
    float* d_rstd = poisoned_float(dev, stats);
    qknorm_forward_cuda(d_out, d_mean, d_rstd, d_inp, d_w[0], d_w[1], d_w[2], d_w[3], N, C, NH);
    fails += check(shape + " forward out", rel_err(from_device(d_out, n), out), TOL_ELEMENTWISE);
    fails += check(shape + " forward mean", rel_err(from_device_float(d_mean, stats), mean), TOL_REDUCTION);
    fails += check(shape + " forward rstd", rel_err(from_device_float(d_rstd, stats), rstd), TOL_REDUCTION);

    // the backward uses the CPU's statistics on both sides
    std::vector<float> dout = random_floatx(n, 1.0f, seed + 5);
    floatX* d_dout = dev(to_device(dout));
    float* d_mean_cpu = dev(to_device_float(mean));
    float* d_rstd_cpu = dev(to_device_float(rstd));
    Grads grads({n, (size_t)hs, (size_t)hs, (size_t)hs, (size_t)hs}, seed + 6);
    return fails + check_backward(
                       shape + " backward", {"dinp", "dqw", "dqb", "dkw", "dkb"}, grads,
                       [&](std::vector<floatX*>& d) {
                           qknorm_backward_cuda(d[0], d[1], d[2], d[3], d[4], d_dout, d_inp, d_w[0], d_w[2],
                                                d_mean_cpu, d_rstd_cpu, N, C, NH);
                       },
                       [&](std::vector<float*>& h) {
                           qknorm_backward(h[0], h[1], h[2], h[3], h[4], dout.data(), inp.data(), w[0].data(),
                                           w[2].data(), mean.data(), rstd.data(), N, C, NH);
                       });
}

int test_layerscale(int N, int C, uint64_t seed) {
    DeviceBuffers dev;
    int fails = 0;
    size_t NC = (size_t)N * C;
    std::string shape = fmt("layerscale N=%d C=%d", N, C);
    std::vector<float> inp = random_floatx(NC, 1.0f, seed), scale = random_floatx(C, 1.0f, seed + 1);
    floatX* d_inp = dev(to_device(inp));
    floatX* d_scale = dev(to_device(scale));
    std::vector<float> out(NC);
    layerscale_forward(out.data(), inp.data(), scale.data(), N, C);
    floatX* d_out = poisoned(dev, NC);
    layerscale_forward_cuda(d_out, d_inp, d_scale, N, C);
    fails += check(shape + " forward", rel_err(from_device(d_out, NC), out), TOL_ELEMENTWISE);
    floatX* d_in_place = dev(to_device(inp));
    layerscale_forward_cuda(d_in_place, d_in_place, d_scale, N, C);
    fails += check(shape + " forward in place", rel_err(from_device(d_in_place, NC), out), TOL_ELEMENTWISE);

    std::vector<float> dout = random_floatx(NC, 1.0f, seed + 2);
    floatX* d_dout = dev(to_device(dout));
    Grads grads({NC, (size_t)C}, seed + 3);
    return fails + check_backward(
                       shape + " backward", {"dinp", "dscale"}, grads,
                       [&](std::vector<floatX*>& d) { layerscale_backward_cuda(d[0], d[1], d_dout, d_inp, d_scale, N, C); },
                       [&](std::vector<float*>& h) {
                           layerscale_backward(h[0], h[1], dout.data(), inp.data(), scale.data(), N, C);
                       });
}

int test_headnorm(int N, int NH, int hs, uint64_t seed) {
    DeviceBuffers dev;
    int C = NH * hs, fails = 0;
    size_t NC = (size_t)N * C, stats = (size_t)N * NH;
    const float eps = 1e-6f;   // the mLSTM block's
    std::string shape = fmt("headnorm N=%d NH=%d hs=%d", N, NH, hs);
    std::vector<float> inp = host_random(NC, 1.0f, seed);
    for (float& x : inp) x -= 2.0f;
    round_to_floatx(inp);
    std::vector<float> weight = random_floatx(C, 1.0f, seed + 1);
    floatX* d_inp = dev(to_device(inp));
    floatX* d_weight = dev(to_device(weight));
    std::vector<float> out(NC), mean(stats), rstd(stats);
    headnorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), weight.data(), N, NH, hs, eps);
    floatX* d_out = poisoned(dev, NC);
    float* d_mean = poisoned_float(dev, stats);
    float* d_rstd = poisoned_float(dev, stats);
    headnorm_forward_cuda(d_out, d_mean, d_rstd, d_inp, d_weight, N, NH, hs, eps);
    fails += check(shape + " forward out", rel_err(from_device(d_out, NC), out), TOL_ELEMENTWISE);
    fails += check(shape + " forward mean", rel_err(from_device_float(d_mean, stats), mean), TOL_REDUCTION);
    fails += check(shape + " forward rstd", rel_err(from_device_float(d_rstd, stats), rstd), TOL_REDUCTION);

    std::vector<float> dout = random_floatx(NC, 1.0f, seed + 2);
    floatX* d_dout = dev(to_device(dout));
    float* d_mean_cpu = dev(to_device_float(mean));
    float* d_rstd_cpu = dev(to_device_float(rstd));
    Grads grads({NC, (size_t)C}, seed + 3);
    return fails + check_backward(
                       shape + " backward", {"dinp", "dweight"}, grads,
                       [&](std::vector<floatX*>& d) {
                           headnorm_backward_cuda(d[0], d[1], d_dout, d_inp, d_weight, d_mean_cpu, d_rstd_cpu, N, NH,
                                                  hs);
                       },
                       [&](std::vector<float*>& h) {
                           headnorm_backward(h[0], h[1], dout.data(), inp.data(), weight.data(), mean.data(),
                                             rstd.data(), N, NH, hs);
                       });
}

const char* sink_name(SinkKind kind) {
    return kind == SINK_KEY ? "k" : kind == SINK_KEY_VALUE ? "kv" : kind == SINK_LOGIT ? "logit" : "one";
}

// The slot on a softmax attention's output and LSE (random here: the slot's kernels take them as
// given): the forward over the last Tq of Tk positions of a (B,Tmax,3C) qkv whose rows past Tk are
// NaN; the backward too when Tq = Tk = Tmax (training).
int test_sink(SinkKind kind, int B, int NH, int hs, int Tq, int Tk, int Tmax, uint64_t seed) {
    DeviceBuffers dev;
    int C = NH * hs, fails = 0;
    size_t n_out = (size_t)B * Tq * C, n_lse = (size_t)B * NH * Tq;
    std::string shape = fmt("sink %s B=%d NH=%d hs=%d Tq=%d Tk=%d Tmax=%d", sink_name(kind), B, NH, hs, Tq, Tk, Tmax);
    std::vector<float> qkv = random_floatx((size_t)B * Tmax * 3 * C, 1.0f, seed);
    for (int b = 0; b < B; b++)   // the rows not yet written
        for (size_t i = (size_t)(b * Tmax + Tk) * 3 * C; i < (size_t)(b + 1) * Tmax * 3 * C; i++) qkv[i] = NAN;
    std::vector<float> out = random_floatx(n_out, 1.0f, seed + 1), lse = host_random(n_lse, 1.0f, seed + 2);
    std::vector<float> key = random_floatx((size_t)NH * hs, 1.0f, seed + 3);
    std::vector<float> value = random_floatx((size_t)NH * hs, 1.0f, seed + 4);
    std::vector<float> logit = random_floatx(NH, 1.0f, seed + 5);
    floatX* d_qkv = dev(to_device(qkv));
    floatX* d_key = dev(to_device(key));
    floatX* d_value = dev(to_device(value));
    floatX* d_logit = dev(to_device(logit));
    floatX* d_out = dev(to_device(out));
    float* d_lse = dev(to_device_float(lse));
    const std::vector<float> out0 = out, lse0 = lse;   // the backward's inputs
    attention_sink_forward(out.data(), lse.data(), qkv.data(), key.data(), value.data(), logit.data(), B, Tq, Tk,
                           Tmax, C, NH, kind);
    attention_sink_forward_cuda(d_out, d_lse, d_qkv, d_key, d_value, d_logit, B, Tq, Tk, Tmax, C, NH, kind);
    fails += check(shape + " forward out", rel_err(from_device(d_out, n_out), out), TOL_ELEMENTWISE);
    fails += check(shape + " forward lse", rel_err(from_device_float(d_lse, n_lse), lse), TOL_REDUCTION);
    if (Tq != Tk || Tk != Tmax) return fails;

    int T = Tq;
    std::vector<float> dout = random_floatx(n_out, 1.0f, seed + 6);
    floatX* d_dout = dev(to_device(dout));
    floatX* d_out0 = dev(to_device(out0));
    float* d_lse0 = dev(to_device_float(lse0));
    Grads grads({(size_t)B * T * 3 * C, (size_t)NH * hs, (size_t)NH * hs, (size_t)NH}, seed + 7);
    return fails + check_backward(
                       shape + " backward", {"dqkv", "dsink_key", "dsink_value", "dsink_logit"}, grads,
                       [&](std::vector<floatX*>& d) {
                           attention_sink_backward_cuda(d[0], d[1], d[2], d[3], d_dout, d_qkv, d_out0, d_lse0, d_key,
                                                        d_value, d_logit, B, T, C, NH, kind);
                       },
                       [&](std::vector<float*>& h) {
                           attention_sink_backward(h[0], h[1], h[2], h[3], dout.data(), qkv.data(), out0.data(),
                                                   lse0.data(), key.data(), value.data(), logit.data(), B, T, C, NH,
                                                   kind);
                       });
}

}  // namespace

int test_mixers(void) {
    int fails = 0;
    uint64_t seed = 900;
    for (int headwise = 0; headwise < 2; headwise++) {
        fails += test_gate(1, 1, 1, headwise, seed += 10);
        fails += test_gate(37, 3, 5, headwise, seed += 10);
        fails += test_gate(64, 2, 40, headwise, seed += 10);
    }
    fails += test_rope(1, 1, 1, 2, 0, seed += 10);
    fails += test_rope(2, 7, 3, 6, 0, seed += 10);
    fails += test_rope(1, 5, 2, 64, 3000, seed += 10);   // decoding far into a sequence
    fails += test_rope(2, 33, 2, 40, 17, seed += 10);
    fails += test_qknorm(1, 1, 1, seed += 10);
    fails += test_qknorm(37, 3, 5, seed += 10);
    fails += test_qknorm(600, 2, 40, seed += 10);
    fails += test_layerscale(1, 1, seed += 10);
    fails += test_layerscale(37, 33, seed += 10);
    fails += test_layerscale(600, 96, seed += 10);
    fails += test_headnorm(1, 1, 1, seed += 10);
    fails += test_headnorm(37, 3, 5, seed += 10);
    fails += test_headnorm(600, 2, 40, seed += 10);
    const SinkKind kinds[] = {SINK_KEY, SINK_KEY_VALUE, SINK_LOGIT, SINK_ONE};
    for (SinkKind kind : kinds) {
        fails += test_sink(kind, 2, 3, 5, 37, 37, 37, seed += 10);     // training
        fails += test_sink(kind, 1, 2, 40, 300, 300, 300, seed += 10);  // several row chunks
        fails += test_sink(kind, 1, 2, 40, 1, 70, 80, seed += 10);      // a decoding step
        fails += test_sink(kind, 2, 3, 5, 5, 70, 80, seed += 10);       // several new rows over a cache
    }
    return fails;
}
