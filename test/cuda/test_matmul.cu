// matmul_forward_cuda / matmul_backward_cuda (cuBLASLt) against the CPU twin (layers/matmul.c, fp32)
// on random inputs: shapes from {1,3,17,64,65,130,257,768,2304} with odd ones in every position,
// with and without bias, with dinp and dbias NULL, and tensors at an odd element offset (not
// 256-byte aligned, as slices of one parameter buffer can be). The forward output is poisoned with
// NaN before the call; the gradients start from the same random values on both sides, so the +=
// semantics are checked too. Shapes come again with other buffers and other alignments, so that the
// GEMM plans matmul.cu keeps per problem are found again with the new bias pointer, and not reused
// for a pointer less aligned than they were made for (the cuBLASLt emulation rejects that). A last
// case runs the backward twice and requires bitwise-equal results.
#include "test/cuda/harness.cuh"

#include "layers/matmul.h"

#include <cstring>
#include <string>

namespace {

// A floatX device copy of host floats, `offset` elements into its allocation (offset 1 breaks the
// 256-byte alignment cudaMalloc gives).
struct DeviceTensor {
    floatX* base = nullptr;
    floatX* ptr = nullptr;
    size_t n = 0;
    DeviceTensor(const std::vector<float>& x, int offset) : n(x.size()) {
        base = device_alloc<floatX>(x.size() + offset);
        ptr = base + offset;
        std::vector<floatX> xs(x.size());
        for (size_t i = 0; i < x.size(); i++) xs[i] = floatx_from_float(x[i]);
        cuda_check(cudaMemcpy(ptr, xs.data(), xs.size() * sizeof(floatX), cudaMemcpyHostToDevice));
    }
    ~DeviceTensor() { cuda_check(cudaFree(base)); }
    DeviceTensor(const DeviceTensor&) = delete;
    DeviceTensor& operator=(const DeviceTensor&) = delete;
    std::vector<float> get() const { return from_device(ptr, n); }
};

std::vector<float> random_rounded(size_t n, uint64_t seed) {
    std::vector<float> x = host_random(n, 1.0f, seed);
    round_to_floatx(x);
    return x;
}

struct Case {
    int N, C, OC;
    bool bias, dinp, dbias;
    int offset;
};

int run_case(const Case& c, uint64_t seed) {
    const int N = c.N, C = c.C, OC = c.OC;
    std::vector<float> inp = random_rounded((size_t)N * C, seed + 1), weight = random_rounded((size_t)OC * C, seed + 2);
    std::vector<float> bias = random_rounded(OC, seed + 3), dout = random_rounded((size_t)N * OC, seed + 4);
    std::vector<float> dinp = random_rounded((size_t)N * C, seed + 5), dbias = random_rounded(OC, seed + 7);
    std::vector<float> dweight = random_rounded((size_t)OC * C, seed + 6);

    // CPU twin, fp32.
    std::vector<float> out_ref((size_t)N * OC), dinp_ref = dinp, dweight_ref = dweight, dbias_ref = dbias;
    matmul_forward(out_ref.data(), inp.data(), weight.data(), c.bias ? bias.data() : NULL, N, C, OC);
    matmul_backward(c.dinp ? dinp_ref.data() : NULL, dweight_ref.data(), c.dbias ? dbias_ref.data() : NULL,
                    dout.data(), inp.data(), weight.data(), N, C, OC);

    // CUDA.
    DeviceTensor d_inp(inp, c.offset), d_weight(weight, c.offset), d_bias(bias, c.offset), d_dout(dout, c.offset),
        d_dinp(dinp, c.offset), d_dweight(dweight, c.offset), d_dbias(dbias, c.offset),
        d_out(std::vector<float>((size_t)N * OC), c.offset);
    poison(d_out.ptr, (size_t)N * OC * sizeof(floatX));
    matmul_forward_cuda(d_out.ptr, d_inp.ptr, d_weight.ptr, c.bias ? d_bias.ptr : NULL, N, C, OC);
    matmul_backward_cuda(c.dinp ? d_dinp.ptr : NULL, d_dweight.ptr, c.dbias ? d_dbias.ptr : NULL, d_dout.ptr,
                         d_inp.ptr, d_weight.ptr, N, C, OC);
    cuda_check(cudaDeviceSynchronize());

    char name[128];
    int failures = 0;
    snprintf(name, sizeof(name), "matmul N=%d C=%d OC=%d%s%s%s%s", N, C, OC, c.bias ? "" : " nobias",
             c.dinp ? "" : " dinp=NULL", c.dbias ? "" : " dbias=NULL", c.offset ? " unaligned" : "");
    std::string base(name);
    failures += check((base + " out").c_str(), rel_err(d_out.get(), out_ref), TOL_REDUCTION);
    if (c.dinp) failures += check((base + " dinp").c_str(), rel_err(d_dinp.get(), dinp_ref), TOL_REDUCTION);
    else failures += check((base + " dinp untouched").c_str(), rel_err(d_dinp.get(), dinp), 0.0);
    failures += check((base + " dweight").c_str(), rel_err(d_dweight.get(), dweight_ref), TOL_REDUCTION);
    if (c.dbias) failures += check((base + " dbias").c_str(), rel_err(d_dbias.get(), dbias_ref), TOL_REDUCTION);
    else failures += check((base + " dbias untouched").c_str(), rel_err(d_dbias.get(), dbias), 0.0);
    return failures;
}

// The backward twice from the same state: dinp, dweight, dbias must match bit for bit.
int run_determinism(int N, int C, int OC, uint64_t seed) {
    std::vector<float> inp = random_rounded((size_t)N * C, seed + 1), weight = random_rounded((size_t)OC * C, seed + 2),
                       dout = random_rounded((size_t)N * OC, seed + 3), dinp = random_rounded((size_t)N * C, seed + 4),
                       dweight = random_rounded((size_t)OC * C, seed + 5), dbias = random_rounded(OC, seed + 6);
    DeviceTensor d_inp(inp, 0), d_weight(weight, 0), d_dout(dout, 0);
    std::vector<float> results[2][3];
    for (int run = 0; run < 2; run++) {
        DeviceTensor d_dinp(dinp, 0), d_dweight(dweight, 0), d_dbias(dbias, 0);
        matmul_backward_cuda(d_dinp.ptr, d_dweight.ptr, d_dbias.ptr, d_dout.ptr, d_inp.ptr, d_weight.ptr, N, C, OC);
        cuda_check(cudaDeviceSynchronize());
        results[run][0] = d_dinp.get();
        results[run][1] = d_dweight.get();
        results[run][2] = d_dbias.get();
    }
    int same = 1;
    for (int i = 0; i < 3; i++)
        same &= results[0][i].size() == results[1][i].size() &&
                memcmp(results[0][i].data(), results[1][i].data(), results[0][i].size() * sizeof(float)) == 0;
    char name[128];
    snprintf(name, sizeof(name), "matmul backward N=%d C=%d OC=%d bitwise reproducible", N, C, OC);
    return check(name, same ? 0.0 : INFINITY, 0.0);
}

}  // namespace

int test_matmul(void) {
    const Case cases[] = {
        // N, C, OC, bias, dinp, dbias, offset
        {1, 1, 1, true, true, true, 0},
        {1, 3, 17, true, true, true, 0},
        {3, 17, 1, true, true, true, 0},
        {17, 1, 3, false, true, true, 0},
        {64, 64, 64, true, true, true, 0},
        {65, 130, 257, true, true, true, 0},
        {257, 65, 130, false, false, true, 0},
        {130, 257, 65, true, true, false, 0},
        {3, 2304, 17, true, true, true, 0},
        {2304, 17, 65, true, true, true, 0},
        {17, 65, 2304, true, true, true, 0},
        {257, 768, 2304, true, true, true, 0},    // GPT-2 attention qkv
        {130, 2304, 768, true, false, true, 0},   // (shapes of the GPT-2 124M layers, fewer rows)
        {768, 768, 768, false, true, false, 0},
        {65, 130, 257, true, true, true, 1},      // every tensor 1 element off its allocation
        {257, 768, 64, true, false, true, 1},
        {64, 17, 3, true, true, true, 1},
        {65, 130, 257, true, true, true, 0},      // the same problems again, with new buffers: kept plans
        {64, 17, 3, true, true, true, 1},
    };
    int failures = 0;
    uint64_t seed = 1000;
    for (const Case& c : cases) failures += run_case(c, seed += 10);
    failures += run_determinism(2304, 768, 257, 77);
    return failures;
}
