// The CUDA layer kernels (layers/*.cu) against their CPU twins (layers/*.c, fp32): random inputs
// rounded to floatX so both sides see the same values, outputs poisoned with NaN before each call,
// accumulating gradients starting from the same random values on both sides. Shapes include the
// odd ones (N=1, C=1, C=33, T=37, V=257 padded to Vp=384) and tensors one element off a 16-byte
// boundary, which take the kernels' per-element path instead of the 128-bit packs. The kernels
// that promise bitwise determinism (encoder and layernorm backward, the norm) are run twice.
#include <cstdarg>
#include <cstring>
#include <string>

#include "test/cuda/harness.cuh"
#include "layers/adamw.h"
#include "layers/crossentropy.h"
#include "layers/encoder.h"
#include "layers/gelu.h"
#include "layers/grad_norm.h"
#include "layers/layernorm.h"
#include "layers/matmul.h"
#include "layers/residual.h"
#include "layers/rmsnorm.h"
#include "layers/swiglu.h"

namespace {

// N(0, scale^2) host values as floatX holds them.
std::vector<float> random_floatx(size_t n, float scale, uint64_t seed) {
    std::vector<float> x = host_random(n, scale, seed);
    round_to_floatx(x);
    return x;
}

// Token ids in [0, V); a quarter of them are token 0, so one token repeats a lot.
std::vector<int> random_tokens(size_t n, int V, uint64_t seed) {
    std::vector<int> tokens(n);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 3;
    for (int& t : tokens) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        t = (s >> 60) % 4 == 0 ? 0 : (int)((s >> 16) % (uint64_t)V);
    }
    return tokens;
}

// A floatX device copy of x starting `offset` elements into its allocation (offset 1: not 16-byte aligned).
floatX* to_device_at(DeviceBuffers& dev, const std::vector<float>& x, int offset) {
    std::vector<float> padded(offset, 0.0f);
    padded.insert(padded.end(), x.begin(), x.end());
    return dev(to_device(padded)) + offset;
}

// A poisoned floatX device buffer of n elements starting `offset` elements into its allocation.
floatX* poisoned_at(DeviceBuffers& dev, size_t n, int offset) {
    floatX* d = dev(device_alloc<floatX>(n + offset));
    poison(d, (n + offset) * sizeof(floatX));
    return d + offset;
}

float* poisoned_float(DeviceBuffers& dev, size_t n) {
    float* d = dev(device_alloc<float>(n));
    poison(d, n * sizeof(float));
    return d;
}

int check(const std::string& what, double err, double bound) { return ::check(what.c_str(), err, bound); }

// 0 when a and b hold the same bits, else infinity (for check(..., 0.0)).
double bitwise_diff(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0 ? 0.0 : INFINITY;
}

int test_encoder(int B, int T, int C, int V, bool with_wpe, uint64_t seed) {
    DeviceBuffers dev;
    int fails = 0;
    size_t BTC = (size_t)B * T * C;
    std::string shape = fmt("B=%d T=%d C=%d V=%d%s", B, T, C, V, with_wpe ? "" : " no wpe");
    std::vector<int> tokens = random_tokens((size_t)B * T, V, seed);
    std::vector<float> wte = random_floatx((size_t)V * C, 1.0f, seed + 1);
    std::vector<float> wpe = random_floatx((size_t)T * C, 1.0f, seed + 2);
    int* d_tokens = dev(to_device_int(tokens));
    floatX* d_wte = dev(to_device(wte));
    floatX* d_wpe = with_wpe ? dev(to_device(wpe)) : nullptr;

    std::vector<float> out(BTC);
    encoder_forward(out.data(), tokens.data(), wte.data(), with_wpe ? wpe.data() : nullptr, B, T, C);
    floatX* d_out = poisoned_at(dev, BTC, 0);
    encoder_forward_cuda(d_out, d_tokens, d_wte, d_wpe, B, T, C);
    fails += check("encoder_forward " + shape, rel_err(from_device(d_out, BTC), out), TOL_ELEMENTWISE);

    std::vector<float> dout = random_floatx(BTC, 1.0f, seed + 3);
    std::vector<float> dwte = random_floatx((size_t)V * C, 1.0f, seed + 4);
    std::vector<float> dwpe = random_floatx((size_t)T * C, 1.0f, seed + 5);
    floatX* d_dout = dev(to_device(dout));
    std::vector<float> dwte_gpu[2], dwpe_gpu[2];
    for (int run = 0; run < 2; run++) {
        floatX* d_dwte = dev(to_device(dwte));
        floatX* d_dwpe = with_wpe ? dev(to_device(dwpe)) : nullptr;
        encoder_backward_cuda(d_dwte, d_dwpe, d_dout, d_tokens, B, T, C);
        dwte_gpu[run] = from_device(d_dwte, (size_t)V * C);
        if (with_wpe) dwpe_gpu[run] = from_device(d_dwpe, (size_t)T * C);
    }
    encoder_backward(dwte.data(), with_wpe ? dwpe.data() : nullptr, dout.data(), tokens.data(), B, T, C);
    fails += check("encoder_backward dwte " + shape, rel_err(dwte_gpu[0], dwte), TOL_REDUCTION);
    fails += check("encoder_backward dwte bitwise repeatable " + shape, bitwise_diff(dwte_gpu[0], dwte_gpu[1]), 0.0);
    if (with_wpe) {
        fails += check("encoder_backward dwpe " + shape, rel_err(dwpe_gpu[0], dwpe), TOL_REDUCTION);
        double repeat = bitwise_diff(dwpe_gpu[0], dwpe_gpu[1]);
        fails += check("encoder_backward dwpe bitwise repeatable " + shape, repeat, 0.0);
    }
    return fails;
}

int test_layernorm(int N, int C, uint64_t seed) {
    DeviceBuffers dev;
    int fails = 0;
    size_t NC = (size_t)N * C;
    std::string shape = fmt("N=%d C=%d", N, C);
    std::vector<float> inp = host_random(NC, 1.0f, seed);
    for (float& x : inp) x += 2.0f;   // an offset the mean has to remove
    round_to_floatx(inp);
    std::vector<float> weight = random_floatx(C, 1.0f, seed + 1), bias = random_floatx(C, 1.0f, seed + 2);
    floatX* d_inp = dev(to_device(inp));
    floatX* d_weight = dev(to_device(weight));
    floatX* d_bias = dev(to_device(bias));

    std::vector<float> out(NC), mean(N), rstd(N);
    layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), weight.data(), bias.data(), N, C);
    floatX* d_out = poisoned_at(dev, NC, 0);
    float* d_mean = poisoned_float(dev, N);
    float* d_rstd = poisoned_float(dev, N);
    layernorm_forward_cuda(d_out, d_mean, d_rstd, d_inp, d_weight, d_bias, N, C);
    fails += check("layernorm_forward out " + shape, rel_err(from_device(d_out, NC), out), TOL_ELEMENTWISE);
    fails += check("layernorm_forward mean " + shape, rel_err(from_device_float(d_mean, N), mean), TOL_REDUCTION);
    fails += check("layernorm_forward rstd " + shape, rel_err(from_device_float(d_rstd, N), rstd), TOL_REDUCTION);

    // The backward uses the CPU's statistics on both sides.
    std::vector<float> dout = random_floatx(NC, 1.0f, seed + 3), dinp = random_floatx(NC, 1.0f, seed + 4);
    std::vector<float> dweight = random_floatx(C, 1.0f, seed + 5), dbias = random_floatx(C, 1.0f, seed + 6);
    floatX* d_dout = dev(to_device(dout));
    float* d_mean_cpu = dev(to_device_float(mean));
    float* d_rstd_cpu = dev(to_device_float(rstd));
    std::vector<float> got[2][3];   // per run: dinp, dweight, dbias
    for (int run = 0; run < 2; run++) {
        floatX* d_dinp = dev(to_device(dinp));
        floatX* d_dweight = dev(to_device(dweight));
        floatX* d_dbias = dev(to_device(dbias));
        layernorm_backward_cuda(d_dinp, d_dweight, d_dbias, d_dout, d_inp, d_weight, d_mean_cpu, d_rstd_cpu, N, C);
        got[run][0] = from_device(d_dinp, NC);
        got[run][1] = from_device(d_dweight, C);
        got[run][2] = from_device(d_dbias, C);
    }
    layernorm_backward(dinp.data(), dweight.data(), dbias.data(), dout.data(), inp.data(), weight.data(), mean.data(),
                       rstd.data(), N, C);
    fails += check("layernorm_backward dinp " + shape, rel_err(got[0][0], dinp), TOL_REDUCTION);
    fails += check("layernorm_backward dweight " + shape, rel_err(got[0][1], dweight), TOL_REDUCTION);
    fails += check("layernorm_backward dbias " + shape, rel_err(got[0][2], dbias), TOL_REDUCTION);
    double repeat = fmax(bitwise_diff(got[0][0], got[1][0]),
                         fmax(bitwise_diff(got[0][1], got[1][1]), bitwise_diff(got[0][2], got[1][2])));
    fails += check("layernorm_backward bitwise repeatable " + shape, repeat, 0.0);
    return fails;
}

// exact 0: the tanh approximation; 1: the erf GELU (gelu=erf).
int test_gelu(int N, int offset, int exact, uint64_t seed) {
    DeviceBuffers dev;
    int fails = 0;
    std::string shape = fmt("N=%d offset=%d %s", N, offset, exact ? "erf" : "tanh");
    std::vector<float> inp = random_floatx(N, 3.0f, seed);
    floatX* d_inp = to_device_at(dev, inp, offset);

    std::vector<float> out(N);
    gelu_forward(out.data(), inp.data(), N, exact);
    floatX* d_out = poisoned_at(dev, N, offset);
    gelu_forward_cuda(d_out, d_inp, N, exact);
    fails += check("gelu_forward " + shape, rel_err(from_device(d_out, N), out), TOL_ELEMENTWISE);

    std::vector<float> dout = random_floatx(N, 1.0f, seed + 1), dinp = random_floatx(N, 1.0f, seed + 2);
    floatX* d_dout = to_device_at(dev, dout, offset);
    floatX* d_dinp = to_device_at(dev, dinp, offset);
    gelu_backward(dinp.data(), inp.data(), dout.data(), N, exact);
    gelu_backward_cuda(d_dinp, d_inp, d_dout, N, exact);
    fails += check("gelu_backward " + shape, rel_err(from_device(d_dinp, N), dinp), TOL_ELEMENTWISE);
    return fails;
}

// SwiGLU's activation: rows [gate | up] of 2 hidden, gates far into both tails of the sigmoid.
int test_swiglu(int N, int hidden, uint64_t seed) {
    DeviceBuffers dev;
    std::string shape = fmt("N=%d hidden=%d", N, hidden);
    size_t n_in = (size_t)N * 2 * hidden, n_out = (size_t)N * hidden;
    std::vector<float> inp = random_floatx(n_in, 4.0f, seed);
    floatX* d_inp = dev(to_device(inp));
    std::vector<float> out(n_out);
    swiglu_forward(out.data(), inp.data(), N, hidden);
    floatX* d_out = poisoned_at(dev, n_out, 0);
    swiglu_forward_cuda(d_out, d_inp, N, hidden);
    int fails = check("swiglu_forward " + shape, rel_err(from_device(d_out, n_out), out), TOL_ELEMENTWISE);

    std::vector<float> dout = random_floatx(n_out, 1.0f, seed + 1), dinp = random_floatx(n_in, 1.0f, seed + 2);
    floatX* d_dinp = dev(to_device(dinp));
    swiglu_backward(dinp.data(), inp.data(), dout.data(), N, hidden);
    swiglu_backward_cuda(d_dinp, d_inp, dev(to_device(dout)), N, hidden);
    fails += check("swiglu_backward " + shape, rel_err(from_device(d_dinp, n_in), dinp), TOL_ELEMENTWISE);
    return fails;
}

// RMSNorm (ln=rms) forward and backward; the backward uses the CPU's rstd on both sides and runs twice
// on the device (bitwise repeatable).
int test_rmsnorm(int N, int C, uint64_t seed) {
    DeviceBuffers dev;
    int fails = 0;
    size_t NC = (size_t)N * C;
    std::string shape = fmt("N=%d C=%d", N, C);
    std::vector<float> inp = host_random(NC, 1.0f, seed);
    for (float& x : inp) x += 0.5f;   // a mean, which RMSNorm keeps
    round_to_floatx(inp);
    std::vector<float> weight = random_floatx(C, 1.0f, seed + 1);
    floatX* d_inp = dev(to_device(inp));
    floatX* d_weight = dev(to_device(weight));
    std::vector<float> out(NC), rstd(N);
    rmsnorm_forward(out.data(), rstd.data(), inp.data(), weight.data(), N, C);
    floatX* d_out = poisoned_at(dev, NC, 0);
    float* d_rstd = poisoned_float(dev, N);
    rmsnorm_forward_cuda(d_out, d_rstd, d_inp, d_weight, N, C);
    fails += check("rmsnorm_forward out " + shape, rel_err(from_device(d_out, NC), out), TOL_ELEMENTWISE);
    fails += check("rmsnorm_forward rstd " + shape, rel_err(from_device_float(d_rstd, N), rstd), TOL_REDUCTION);

    std::vector<float> dout = random_floatx(NC, 1.0f, seed + 3), dinp = random_floatx(NC, 1.0f, seed + 4);
    std::vector<float> dweight = random_floatx(C, 1.0f, seed + 5);
    floatX* d_dout = dev(to_device(dout));
    float* d_rstd_cpu = dev(to_device_float(rstd));
    std::vector<float> got[2][2];   // per run: dinp, dweight
    for (int run = 0; run < 2; run++) {
        floatX* d_dinp = dev(to_device(dinp));
        floatX* d_dweight = dev(to_device(dweight));
        rmsnorm_backward_cuda(d_dinp, d_dweight, d_dout, d_inp, d_weight, d_rstd_cpu, N, C);
        got[run][0] = from_device(d_dinp, NC);
        got[run][1] = from_device(d_dweight, C);
    }
    rmsnorm_backward(dinp.data(), dweight.data(), dout.data(), inp.data(), weight.data(), rstd.data(), N, C);
    fails += check("rmsnorm_backward dinp " + shape, rel_err(got[0][0], dinp), TOL_REDUCTION);
    fails += check("rmsnorm_backward dweight " + shape, rel_err(got[0][1], dweight), TOL_REDUCTION);
    double repeat = fmax(bitwise_diff(got[0][0], got[1][0]), bitwise_diff(got[0][1], got[1][1]));
    fails += check("rmsnorm_backward bitwise repeatable " + shape, repeat, 0.0);
    return fails;
}

int test_residual(int N, int offset, uint64_t seed) {
    DeviceBuffers dev;
    int fails = 0;
    std::string shape = fmt("N=%d offset=%d", N, offset);
    std::vector<float> inp1 = random_floatx(N, 1.0f, seed), inp2 = random_floatx(N, 1.0f, seed + 1);
    std::vector<float> out(N);
    residual_forward(out.data(), inp1.data(), inp2.data(), N);
    floatX* d_out = poisoned_at(dev, N, offset);
    residual_forward_cuda(d_out, to_device_at(dev, inp1, offset), to_device_at(dev, inp2, offset), N);
    fails += check("residual_forward " + shape, rel_err(from_device(d_out, N), out), TOL_ELEMENTWISE);

    std::vector<float> dout = random_floatx(N, 1.0f, seed + 2);
    std::vector<float> dinp1 = random_floatx(N, 1.0f, seed + 3), dinp2 = random_floatx(N, 1.0f, seed + 4);
    floatX* d_dinp1 = to_device_at(dev, dinp1, offset);
    floatX* d_dinp2 = to_device_at(dev, dinp2, offset);
    residual_backward(dinp1.data(), dinp2.data(), dout.data(), N);
    residual_backward_cuda(d_dinp1, d_dinp2, to_device_at(dev, dout, offset), N);
    fails += check("residual_backward dinp1 " + shape, rel_err(from_device(d_dinp1, N), dinp1), TOL_ELEMENTWISE);
    fails += check("residual_backward dinp2 " + shape, rel_err(from_device(d_dinp2, N), dinp2), TOL_ELEMENTWISE);
    return fails;
}

int test_crossentropy(int N, int V, int Vp, uint64_t seed) {
    DeviceBuffers dev;
    int fails = 0;
    size_t NVp = (size_t)N * Vp;
    std::string shape = fmt("N=%d V=%d Vp=%d", N, V, Vp);
    std::vector<float> logits = random_floatx(NVp, 2.0f, seed);
    for (int n = 0; n < N; n++)   // the padding must never enter the math
        for (int v = V; v < Vp; v++) logits[(size_t)n * Vp + v] = NAN;
    std::vector<int> targets = random_tokens(N, V, seed + 1);
    float dloss = 1.0f / N;
    std::vector<float> losses(N), dlogits(NVp);
    crossentropy_forward_backward(losses.data(), dlogits.data(), logits.data(), targets.data(), dloss, N, V, Vp);
    int* d_targets = dev(to_device_int(targets));

    // separate dlogits buffer
    floatX* d_logits = dev(to_device(logits));
    floatX* d_dlogits = poisoned_at(dev, NVp, 0);
    float* d_losses = poisoned_float(dev, N);
    crossentropy_forward_backward_cuda(d_losses, d_dlogits, d_logits, d_targets, dloss, N, V, Vp);
    fails += check("crossentropy losses " + shape, rel_err(from_device_float(d_losses, N), losses), TOL_REDUCTION);
    fails += check("crossentropy dlogits " + shape, rel_err(from_device(d_dlogits, NVp), dlogits), TOL_REDUCTION);

    // dlogits in place of the logits, as the trainer calls it
    floatX* d_inplace = dev(to_device(logits));
    poison(d_losses, N * sizeof(float));
    crossentropy_forward_backward_cuda(d_losses, d_inplace, d_inplace, d_targets, dloss, N, V, Vp);
    std::vector<float> losses_inplace = from_device_float(d_losses, N), dlogits_inplace = from_device(d_inplace, NVp);
    fails += check("crossentropy in place losses " + shape, rel_err(losses_inplace, losses), TOL_REDUCTION);
    fails += check("crossentropy in place dlogits " + shape, rel_err(dlogits_inplace, dlogits), TOL_REDUCTION);

    // loss only
    poison(d_losses, N * sizeof(float));
    crossentropy_forward_backward_cuda(d_losses, nullptr, d_logits, d_targets, dloss, N, V, Vp);
    fails += check("crossentropy loss only " + shape, rel_err(from_device_float(d_losses, N), losses), TOL_REDUCTION);
    return fails;
}

int test_adamw(size_t N, int t, bool with_master, uint64_t seed) {
    DeviceBuffers dev;
    int fails = 0;
    std::string shape = fmt("N=%zu t=%d%s", N, t, with_master ? " master" : "");
    const float lr = 1e-2f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.1f, grad_scale = 0.5f;
    std::vector<float> params = random_floatx(N, 1.0f, seed), grads = random_floatx(N, 1.0f, seed + 1);
    std::vector<float> m = host_random(N, 0.1f, seed + 2), v = host_random(N, 0.1f, seed + 3);
    for (float& x : v) x *= x;   // v >= 0
    const std::vector<float> old_params = params;
    floatX* d_params = dev(to_device(params));
    float* d_master = with_master ? dev(to_device_float(params)) : nullptr;
    float* d_m = dev(to_device_float(m));
    float* d_v = dev(to_device_float(v));
    adamw_update(params.data(), m.data(), v.data(), grads.data(), N, lr, beta1, beta2, eps, weight_decay, grad_scale,
                 t);
    adamw_update_cuda(d_params, d_master, d_m, d_v, dev(to_device(grads)), N, lr, beta1, beta2, eps, weight_decay,
                      grad_scale, t);
    fails += check("adamw params " + shape, rel_err(from_device(d_params, N), params), TOL_ELEMENTWISE);
    fails += check("adamw m " + shape, rel_err(from_device_float(d_m, N), m), TOL_FP32_MATH);
    fails += check("adamw v " + shape, rel_err(from_device_float(d_v, N), v), TOL_FP32_MATH);
    // The step itself (new - old) where the result is fp32 (the master weights, or the fp32 build's
    // parameters): one step barely moves a weight, so comparing weights alone would hide a wrong step.
    std::vector<float> updated = with_master ? from_device_float(d_master, N) : from_device(d_params, N);
    if (with_master || sizeof(floatX) == sizeof(float)) {
        std::vector<float> got_step(N), ref_step(N);
        for (size_t i = 0; i < N; i++) {
            got_step[i] = updated[i] - old_params[i];
            ref_step[i] = params[i] - old_params[i];
        }
        fails += check("adamw step " + shape, rel_err(got_step, ref_step), 1e-4);
    }
    return fails;
}

int test_grad_norm(size_t N, int offset, uint64_t seed) {
    DeviceBuffers dev;
    int fails = 0;
    std::string shape = fmt("N=%zu offset=%d", N, offset);
    std::vector<float> values = random_floatx(N, 1.0f, seed);
    std::vector<float> ref(1);
    global_norm_squared(ref.data(), values.data(), N);
    floatX* d_values = to_device_at(dev, values, offset);
    float* d_out = poisoned_float(dev, 1);
    std::vector<float> got[2];
    for (int run = 0; run < 2; run++) {
        poison(d_out, sizeof(float));
        global_norm_squared_cuda(d_out, d_values, N);
        got[run] = from_device_float(d_out, 1);
    }
    fails += check("global_norm_squared " + shape, rel_err(got[0], ref), TOL_REDUCTION);
    fails += check("global_norm_squared bitwise repeatable " + shape, bitwise_diff(got[0], got[1]), 0.0);
    return fails;
}

}  // namespace

// The fused residual add + LayerNorm against residual_forward then layernorm_forward on the CPU,
// also with the residual written over inp2 (the graph's in-place use).
int test_residual_layernorm(int N, int C, bool in_place, uint64_t seed) {
    DeviceBuffers dev;
    int fails = 0;
    size_t NC = (size_t)N * C;
    std::string shape = fmt("N=%d C=%d%s", N, C, in_place ? " in place" : "");
    std::vector<float> inp1 = random_floatx(NC, 1.0f, seed), inp2 = random_floatx(NC, 1.0f, seed + 1);
    std::vector<float> weight = random_floatx(C, 1.0f, seed + 2), bias = random_floatx(C, 1.0f, seed + 3);
    std::vector<float> residual(NC), out(NC), mean(N), rstd(N);
    residual_layernorm_forward(residual.data(), out.data(), mean.data(), rstd.data(), inp1.data(), inp2.data(),
                               weight.data(), bias.data(), N, C);
    round_to_floatx(residual);   // the device stores the sum in floatX before normalizing it
    floatX* d_inp1 = dev(to_device(inp1));
    floatX* d_inp2 = dev(to_device(inp2));
    floatX* d_residual = in_place ? d_inp2 : poisoned_at(dev, NC, 0);
    floatX* d_out = poisoned_at(dev, NC, 0);
    float* d_mean = poisoned_float(dev, N);
    float* d_rstd = poisoned_float(dev, N);
    residual_layernorm_forward_cuda(d_residual, d_out, d_mean, d_rstd, d_inp1, d_inp2, dev(to_device(weight)),
                                    dev(to_device(bias)), N, C);
    fails += check("residual_layernorm residual " + shape, rel_err(from_device(d_residual, NC), residual),
                   TOL_ELEMENTWISE);
    fails += check("residual_layernorm out " + shape, rel_err(from_device(d_out, NC), out), TOL_REDUCTION);
    fails += check("residual_layernorm rstd " + shape, rel_err(from_device_float(d_rstd, N), rstd), TOL_REDUCTION);
    return fails;
}

// The fused residual add + RMSNorm against residual_rmsnorm_forward on the CPU, also in place.
int test_residual_rmsnorm(int N, int C, bool in_place, uint64_t seed) {
    DeviceBuffers dev;
    int fails = 0;
    size_t NC = (size_t)N * C;
    std::string shape = fmt("N=%d C=%d%s", N, C, in_place ? " in place" : "");
    std::vector<float> inp1 = random_floatx(NC, 1.0f, seed), inp2 = random_floatx(NC, 1.0f, seed + 1);
    std::vector<float> weight = random_floatx(C, 1.0f, seed + 2);
    std::vector<float> residual(NC), out(NC), rstd(N);
    residual_rmsnorm_forward(residual.data(), out.data(), rstd.data(), inp1.data(), inp2.data(), weight.data(), N, C);
    round_to_floatx(residual);   // the device stores the sum in floatX before normalizing it
    floatX* d_inp1 = dev(to_device(inp1));
    floatX* d_inp2 = dev(to_device(inp2));
    floatX* d_residual = in_place ? d_inp2 : poisoned_at(dev, NC, 0);
    floatX* d_out = poisoned_at(dev, NC, 0);
    float* d_rstd = poisoned_float(dev, N);
    residual_rmsnorm_forward_cuda(d_residual, d_out, d_rstd, d_inp1, d_inp2, dev(to_device(weight)), N, C);
    fails += check("residual_rmsnorm residual " + shape, rel_err(from_device(d_residual, NC), residual),
                   TOL_ELEMENTWISE);
    fails += check("residual_rmsnorm out " + shape, rel_err(from_device(d_out, NC), out), TOL_REDUCTION);
    fails += check("residual_rmsnorm rstd " + shape, rel_err(from_device_float(d_rstd, N), rstd), TOL_REDUCTION);
    return fails;
}

// The matmul with cuBLASLt's GELU epilogue (and the fallback for OC not a multiple of 8, and for the
// erf GELU) against matmul_forward then gelu_forward on the CPU; without a bias as linbias=0 runs it.
int test_matmul_gelu(int N, int C, int OC, bool with_bias, int exact, uint64_t seed) {
    DeviceBuffers dev;
    std::string shape = fmt("N=%d C=%d OC=%d%s %s", N, C, OC, with_bias ? "" : " no bias", exact ? "erf" : "tanh");
    std::vector<float> inp = random_floatx((size_t)N * C, 1.0f, seed), weight = random_floatx((size_t)OC * C, 0.1f, seed + 1);
    std::vector<float> bias = random_floatx(OC, 1.0f, seed + 2), pre((size_t)N * OC), out((size_t)N * OC);
    const float* host_bias = with_bias ? bias.data() : nullptr;
    matmul_gelu_forward(out.data(), pre.data(), inp.data(), weight.data(), host_bias, N, C, OC, exact);
    floatX* d_out = poisoned_at(dev, (size_t)N * OC, 0);
    floatX* d_pre = poisoned_at(dev, (size_t)N * OC, 0);
    floatX* d_bias = with_bias ? dev(to_device(bias)) : nullptr;
    matmul_gelu_forward_cuda(d_out, d_pre, dev(to_device(inp)), dev(to_device(weight)), d_bias, N, C, OC, exact);
    int fails = check("matmul_gelu pre_gelu " + shape, rel_err(from_device(d_pre, (size_t)N * OC), pre), TOL_REDUCTION);
    fails += check("matmul_gelu out " + shape, rel_err(from_device(d_out, (size_t)N * OC), out), TOL_REDUCTION);
    return fails;
}

int test_layers(void) {
    int fails = 0;
    // B*T of 1204 and 8000 sort across several tiles (global bitonic steps); C=33 takes the
    // per-element path, C=64 and 768 the packs.
    fails += test_encoder(1, 1, 1, 5, true, 11);
    fails += test_encoder(2, 37, 33, 11, true, 12);
    fails += test_encoder(3, 37, 64, 257, false, 13);
    fails += test_encoder(4, 301, 768, 1000, true, 14);
    fails += test_encoder(8, 1000, 32, 50257, true, 15);

    // N=1100 spans three chunks of the column sums, the last one partial.
    fails += test_layernorm(1, 1, 21);
    fails += test_layernorm(7, 33, 22);
    fails += test_layernorm(37, 768, 23);
    fails += test_layernorm(1100, 96, 24);
    fails += test_layernorm(5, 1600, 25);

    fails += test_residual_layernorm(1, 1, false, 26);
    fails += test_residual_layernorm(37, 33, true, 27);
    fails += test_residual_layernorm(64, 768, false, 28);
    fails += test_residual_layernorm(64, 768, true, 29);
    fails += test_matmul_gelu(1, 3, 5, true, 0, 41);
    fails += test_matmul_gelu(37, 64, 256, true, 0, 42);
    fails += test_matmul_gelu(128, 768, 3072, true, 0, 43);
    fails += test_matmul_gelu(37, 64, 256, false, 0, 44);
    fails += test_matmul_gelu(1, 3, 5, true, 1, 45);
    fails += test_matmul_gelu(37, 64, 256, false, 1, 46);
    fails += test_matmul_gelu(128, 768, 3072, true, 1, 47);

    // RMSNorm (ln=rms): C=33 takes the per-element path, C=64 and 768 the packs; N=1100 spans
    // several chunks of the column sums.
    fails += test_rmsnorm(1, 1, 91);
    fails += test_rmsnorm(7, 33, 92);
    fails += test_rmsnorm(37, 768, 93);
    fails += test_rmsnorm(1100, 64, 94);
    fails += test_residual_rmsnorm(1, 1, false, 95);
    fails += test_residual_rmsnorm(37, 33, true, 96);
    fails += test_residual_rmsnorm(64, 768, false, 97);
    fails += test_residual_rmsnorm(64, 768, true, 98);
    fails += test_swiglu(1, 1, 101);
    fails += test_swiglu(37, 40, 102);
    fails += test_swiglu(64, 384, 103);

    const int elementwise_sizes[] = {1, 7, 4099, 768 * 37};
    for (int N : elementwise_sizes) {
        for (int offset = 0; offset < 2; offset++) {
            fails += test_gelu(N, offset, 0, 31 + N);
            fails += test_gelu(N, offset, 1, 35 + N);
            fails += test_residual(N, offset, 41 + N);
        }
    }

    // Vp=384 % 8 == 0 takes the packs, Vp=257 the per-element path.
    fails += test_crossentropy(1, 1, 1, 51);
    fails += test_crossentropy(5, 257, 384, 52);
    fails += test_crossentropy(4, 257, 257, 53);
    fails += test_crossentropy(33, 1000, 1024, 54);
    fails += test_crossentropy(3, 50257, 50304, 55);

    const size_t adamw_sizes[] = {1, 1001, 65539};
    for (size_t N : adamw_sizes) {
        fails += test_adamw(N, 1, false, 61 + N);
        fails += test_adamw(N, 7, true, 71 + N);
    }

    fails += test_grad_norm(1, 0, 81);
    fails += test_grad_norm(37, 1, 82);
    fails += test_grad_norm((1 << 20) + 5, 0, 83);
    fails += test_grad_norm((1 << 20) + 5, 1, 84);
    return fails;
}
