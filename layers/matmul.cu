// Linear layer (matmul) forward and backward on the GPU: the CUDA twin of layers/matmul.c, through
// cuBLASLt (the one library call of the project; llm.c's matmul_cublaslt is the model).
//
// Layout. cuBLASLt is column-major; a row-major (R,K) matrix is, in the same memory, the
// column-major (K,R) matrix = its transpose, with leading dimension K. So every row-major product
// Y = X @ W^T is computed as the column-major product Y^T = W @ X^T on the same bytes:
//
//   row-major product                column-major GEMM  D (m,n) = op(A) (m,k) @ op(B) (k,n)
//   out (N,OC) = inp @ weight^T      out^T (OC,N) = T(weight: (C,OC), ld C) @ N(inp: (C,N), ld C)
//                                    m = OC, n = N, k = C; D ld OC; bias (OC) = one per row of D
//   dinp (N,C) += dout @ weight      dinp^T (C,N) += N(weight: (C,OC), ld C) @ N(dout: (OC,N), ld OC)
//                                    m = C, n = N, k = OC; D ld C; beta 1
//   dweight (OC,C) += dout^T @ inp   dweight^T (C,OC) += N(inp: (C,N), ld C) @ T(dout: (OC,N), ld OC)
//                                    m = C, n = OC, k = N; D ld C; beta 1
// (T(X) / N(X): X as stored, column-major, transposed or not.) CUBLASLT_EPILOGUE_BIAS adds a vector
// of length m to every column of D, i.e. bias (OC) to every row of out: exactly the forward.
//
// Bias gradient. dbias (OC) += column sums of dout (N,OC). In the dweight GEMM that is a reduction
// of op(B) = dout over k, so CUBLASLT_EPILOGUE_BGRADB would apply, but the epilogue OVERWRITES its
// output (and its support for fp32 and these transposes is narrow), so it would need a scratch and
// an add anyway. Instead two small deterministic kernels: per (32 columns x chunk of rows) block,
// fp32 partial sums in a fixed order into a scratch; then one thread per column sums its chunks in
// order, adds the old dbias in fp32 and rounds once. The chunking depends only on (N, OC), so the
// result is bitwise reproducible.
//
// Precision. floatX = bf16 (ATTNLAB_BF16): CUDA_R_16BF A/B/C/D and bias; fp32 build: CUDA_R_32F.
// Both compute in CUBLAS_COMPUTE_32F with float alpha/beta; the fp32 build never uses TF32, so it
// stays within 1e-4 of the CPU twin. With beta 1 the GEMM computes alpha*AB + beta*C in fp32 and
// rounds once into D (= C), so accumulation costs one rounding per call, as the CPU twin's += does.
//
// State. The module's only state: per device, one cuBLASLt handle, a 32 MiB workspace and the plans of
// the GEMMs run so far, created lazily on first use on that device and kept for the process (one host
// thread drives one GPU, so an entry is never touched by two threads). The workspace doubles as the
// scratch of the bias gradient's partial sums: everything here runs in order on the calling thread's
// default stream (cudaStreamPerThread), so the two uses never overlap.
//
// Plans. Describing a GEMM to cuBLASLt (descriptor, layouts, preference) and asking its heuristic for
// an algorithm takes host time, on every call it was ~150 times per micro-step of GPT-2; a plan keeps
// all of it for one problem: sizes, transposes, epilogue, aux leading dimension and the alignment of
// every pointer (the algorithm holds for those alignments). A call finds its plan by that key and sets
// only the bias and aux pointers, the parts that change between calls, on the plan's descriptor.
//
// Pointer alignment. cuBLASLt's heuristics assume 256-byte aligned A/B/C/D unless told otherwise;
// tensors may be slices of one big parameter buffer, so every call states each pointer's actual
// alignment and gets an algorithm that can handle it.
#include <cublasLt.h>
#include <stdint.h>
#include <string.h>

#include "common/cuda_common.cuh"

extern "C" {
#include "common/check.h"
}
#include "layers/gelu.h"
#include "layers/matmul.h"

// Fails with one line naming the call site and the status, e.g.
// "error: cuBLASLt: CUBLAS_STATUS_NOT_SUPPORTED (15): <what it means> (layers/matmul.cu:120)".
#define cublaslt_check(call) cublaslt_check_at((call), __FILE__, __LINE__)
static void cublaslt_check_at(cublasStatus_t status, const char* file, int line) {
    if (status != CUBLAS_STATUS_SUCCESS)
        fail("cuBLASLt: %s (%d): %s (%s:%d)", cublasLtGetStatusName(status), (int)status,
             cublasLtGetStatusString(status), file, line);
}

#ifdef ATTNLAB_BF16
static const cudaDataType_t FLOATX_CUDA_TYPE = CUDA_R_16BF;
#else
static const cudaDataType_t FLOATX_CUDA_TYPE = CUDA_R_32F;
#endif

// ---------------------------------------------------------------------------------------------
// Per-device state: handle and workspace.

enum { MAX_DEVICES = 64, MAX_PLANS = 256 };
static const size_t WORKSPACE_BYTES = (size_t)32 << 20;

// What makes two GEMMs the same problem for cuBLASLt (compared whole: built from a zeroed struct).
typedef struct {
    int m, n, k, trans_a, trans_b;
    uint32_t epilogue, align_a, align_b, align_d, align_bias, align_aux;
    int64_t aux_ld;
} GemmKey;

typedef struct {
    GemmKey key;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t layout_a, layout_b, layout_d;
    cublasLtMatmulAlgo_t algo;
} GemmPlan;

typedef struct {
    cublasLtHandle_t handle;
    void* workspace;    // WORKSPACE_BYTES, 256-byte aligned (cudaMalloc)
    GemmPlan* plans;    // MAX_PLANS; when all are taken, the oldest is replaced
    int num_plans, next_replaced;
} LtState;

static LtState lt_states[MAX_DEVICES];

static LtState* lt_state(void) {
    int device = 0;
    cuda_check(cudaGetDevice(&device));
    if (device < 0 || device >= MAX_DEVICES)
        fail("matmul: CUDA device %d is beyond the %d this module supports (raise MAX_DEVICES in %s)", device,
             MAX_DEVICES, __FILE__);
    LtState* s = &lt_states[device];
    if (!s->handle) {
        cublaslt_check(cublasLtCreate(&s->handle));
        cuda_check(cudaMalloc(&s->workspace, WORKSPACE_BYTES));
        s->plans = (GemmPlan*)calloc_check(MAX_PLANS, sizeof(GemmPlan));
    }
    return s;
}

// ---------------------------------------------------------------------------------------------
// One GEMM: D (m,n) = op(A) @ op(B) + beta * D (+ epilogue), all column-major, D also serving as C.
// A is stored (k,m) if trans_a else (m,k); B is stored (n,k) if trans_b else (k,n); each with leading
// dimension = its stored row count. bias (m) and aux (pre-GELU, ld aux_ld) as the epilogue needs.

// The largest power of two (<= 256) that divides the address.
static uint32_t alignment_of(const void* p) {
    uintptr_t address = (uintptr_t)p;
    uint32_t alignment = 256;
    while (alignment > 1 && address % alignment != 0) alignment >>= 1;
    return alignment;
}

static void set_pointers(cublasLtMatmulDesc_t desc, const floatX* bias, floatX* aux) {
    // Set before the heuristic too: it reads these pointers' alignment (bias type defaults to D's type).
    if (bias)
        cublaslt_check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    if (aux)
        cublaslt_check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux,
                                                      sizeof(aux)));
}

static void destroy_plan(GemmPlan* p) {
    cublaslt_check(cublasLtMatrixLayoutDestroy(p->layout_d));
    cublaslt_check(cublasLtMatrixLayoutDestroy(p->layout_b));
    cublaslt_check(cublasLtMatrixLayoutDestroy(p->layout_a));
    cublaslt_check(cublasLtMatmulDescDestroy(p->desc));
}

// Describes the problem of `key` (with its first call's bias and aux pointers) and picks its algorithm.
static void make_plan(GemmPlan* p, LtState* s, const GemmKey* key, const floatX* bias, floatX* aux) {
    const int m = key->m, n = key->n, k = key->k;
    p->key = *key;
    cublaslt_check(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t op_a = key->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = key->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublaslt_check(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
    cublaslt_check(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
    uint32_t epilogue = key->epilogue;
    cublaslt_check(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                                  sizeof(epilogue)));
    set_pointers(p->desc, bias, aux);
    if (aux) {
        int64_t aux_ld = key->aux_ld;
        cublaslt_check(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld,
                                                      sizeof(aux_ld)));
    }
    cublaslt_check(cublasLtMatrixLayoutCreate(&p->layout_a, FLOATX_CUDA_TYPE, key->trans_a ? k : m,
                                              key->trans_a ? m : k, key->trans_a ? k : m));
    cublaslt_check(cublasLtMatrixLayoutCreate(&p->layout_b, FLOATX_CUDA_TYPE, key->trans_b ? n : k,
                                              key->trans_b ? k : n, key->trans_b ? n : k));
    cublaslt_check(cublasLtMatrixLayoutCreate(&p->layout_d, FLOATX_CUDA_TYPE, m, n, m));

    cublasLtMatmulPreference_t pref;
    cublaslt_check(cublasLtMatmulPreferenceCreate(&pref));
    size_t workspace_bytes = WORKSPACE_BYTES;
    cublaslt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                        &workspace_bytes, sizeof(workspace_bytes)));
    const uint32_t aligns[4] = {key->align_a, key->align_b, key->align_d, key->align_d};
    const cublasLtMatmulPreferenceAttributes_t align_attrs[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; i++)
        cublaslt_check(cublasLtMatmulPreferenceSetAttribute(pref, align_attrs[i], &aligns[i], sizeof(aligns[i])));
    // Split-K only with partial sums kept in fp32: the in-place and output-type schemes would add
    // them in D's type (bf16), rounding many times instead of once.
    uint32_t reduction_schemes = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    cublaslt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                                                        &reduction_schemes, sizeof(reduction_schemes)));

    // "No algorithm fits" comes back as NOT_SUPPORTED or as zero results: both get the message that
    // names the problem.
    cublasLtMatmulHeuristicResult_t heuristic;
    int found = 0;
    cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(s->handle, p->desc, p->layout_a, p->layout_b, p->layout_d,
                                                           p->layout_d, pref, 1, &heuristic, &found);
    if (status != CUBLAS_STATUS_NOT_SUPPORTED) cublaslt_check(status);
    if (status == CUBLAS_STATUS_NOT_SUPPORTED || found == 0)
        fail("cuBLASLt has no algorithm for D (%d,%d) = %c(A) @ %c(B), k=%d, epilogue %u, alignments A %u B %u D %u "
             "(%s:%d)",
             m, n, key->trans_a ? 'T' : 'N', key->trans_b ? 'T' : 'N', k, epilogue, key->align_a, key->align_b,
             key->align_d, __FILE__, __LINE__);
    p->algo = heuristic.algo;
    cublaslt_check(cublasLtMatmulPreferenceDestroy(pref));
}

// The plan for `key`: a kept one, or a new one (in place of the oldest when MAX_PLANS are kept).
static const GemmPlan* find_plan(LtState* s, const GemmKey* key, const floatX* bias, floatX* aux) {
    for (int i = 0; i < s->num_plans; i++)
        if (memcmp(&s->plans[i].key, key, sizeof(*key)) == 0) {
            set_pointers(s->plans[i].desc, bias, aux);
            return &s->plans[i];
        }
    GemmPlan* p;
    if (s->num_plans < MAX_PLANS) {
        p = &s->plans[s->num_plans++];
    } else {
        p = &s->plans[s->next_replaced];
        s->next_replaced = (s->next_replaced + 1) % MAX_PLANS;
        destroy_plan(p);
    }
    make_plan(p, s, key, bias, aux);
    return p;
}

static void lt_matmul(floatX* d, const floatX* a, bool trans_a, const floatX* b, bool trans_b, int m, int n, int k,
                      float beta, cublasLtEpilogue_t epilogue, const floatX* bias, floatX* aux, int64_t aux_ld) {
    LtState* s = lt_state();
    GemmKey key;
    memset(&key, 0, sizeof(key));   // the padding too: keys are compared with memcmp
    key.m = m, key.n = n, key.k = k, key.trans_a = trans_a, key.trans_b = trans_b;
    key.epilogue = (uint32_t)epilogue, key.aux_ld = aux ? aux_ld : 0;
    key.align_a = alignment_of(a), key.align_b = alignment_of(b), key.align_d = alignment_of(d);
    key.align_bias = bias ? alignment_of(bias) : 0, key.align_aux = aux ? alignment_of(aux) : 0;
    const GemmPlan* p = find_plan(s, &key, bias, aux);
    const float alpha = 1.0f;
    cublaslt_check(cublasLtMatmul(s->handle, p->desc, &alpha, a, p->layout_a, b, p->layout_b, &beta, d, p->layout_d, d,
                                  p->layout_d, &p->algo, s->workspace, WORKSPACE_BYTES, cudaStreamPerThread));
}

static void check_sizes(const char* what, int N, int C, int OC) {
    if (N <= 0 || C <= 0 || OC <= 0) fail("%s: sizes must be positive (N=%d C=%d OC=%d)", what, N, C, OC);
}

// ---------------------------------------------------------------------------------------------
// Bias gradient: dbias (OC) += column sums of dout (N,OC), deterministic.

enum {
    BIAS_COLS = 32,          // columns per block: one warp reads 32 consecutive elements of a row
    BIAS_ROWS = 16,          // warps per block, each summing every BIAS_ROWS-th row of the chunk
    BIAS_MIN_CHUNK = 64,     // fewest rows per chunk
    BIAS_TARGET_BLOCKS = 1024,
};

// partial[chunk][o] = sum of dout[n][o] over the rows n of the chunk, in a fixed order.
static __global__ void __launch_bounds__(BIAS_COLS * BIAS_ROWS)
    bias_partial_kernel(float* partial, const floatD* dout, int N, int OC, int rows_per_chunk) {
    __shared__ float sums[BIAS_ROWS][BIAS_COLS];
    int o = blockIdx.x * BIAS_COLS + threadIdx.x;
    int lo = blockIdx.y * rows_per_chunk, hi = min(N, lo + rows_per_chunk);
    float sum = 0.0f;
    if (o < OC)
        for (int n = lo + threadIdx.y; n < hi; n += BIAS_ROWS) sum += to_float(dout[(size_t)n * OC + o]);
    sums[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && o < OC) {
        float total = 0.0f;
        for (int r = 0; r < BIAS_ROWS; r++) total += sums[r][threadIdx.x];
        partial[(size_t)blockIdx.y * OC + o] = total;
    }
}

// dbias[o] = round(dbias[o] + sum over chunks of partial[chunk][o]), summed in chunk order in fp32.
static __global__ void bias_finish_kernel(floatD* dbias, const float* partial, int chunks, int OC) {
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= OC) return;
    float sum = 0.0f;
    for (int c = 0; c < chunks; c++) sum += partial[(size_t)c * OC + o];
    dbias[o] = from_float(to_float(dbias[o]) + sum);
}

static void bias_backward(floatX* dbias, const floatX* dout, int N, int OC) {
    LtState* s = lt_state();
    int col_blocks = ceil_div(OC, BIAS_COLS);
    // Enough blocks to fill the GPU, at least BIAS_MIN_CHUNK rows each, partials within the workspace.
    long chunks = ceil_div(BIAS_TARGET_BLOCKS, col_blocks);
    long max_chunks = ceil_div(N, BIAS_MIN_CHUNK), fit = (long)(WORKSPACE_BYTES / (sizeof(float) * (size_t)OC));
    if (chunks > max_chunks) chunks = max_chunks;
    if (chunks > fit) chunks = fit;
    if (chunks < 1) chunks = 1;
    int rows_per_chunk = ceil_div(N, chunks);
    chunks = ceil_div(N, rows_per_chunk);   // no empty chunks
    if ((size_t)chunks * OC * sizeof(float) > WORKSPACE_BYTES)
        fail("matmul bias gradient: OC=%d is too wide for the %zu-byte workspace (%s)", OC, WORKSPACE_BYTES, __FILE__);
    float* partial = (float*)s->workspace;
    bias_partial_kernel<<<dim3(col_blocks, (unsigned)chunks), dim3(BIAS_COLS, BIAS_ROWS), 0, cudaStreamPerThread>>>(
        partial, as_device(dout), N, OC, rows_per_chunk);
    cuda_check_launch();
    bias_finish_kernel<<<ceil_div(OC, 256), 256, 0, cudaStreamPerThread>>>(as_device(dbias), partial, (int)chunks,
                                                                          OC);
    cuda_check_launch();
}

// ---------------------------------------------------------------------------------------------

void matmul_forward_cuda(floatX* out, const floatX* inp, const floatX* weight, const floatX* bias, int N, int C,
                         int OC) {
    check_sizes("matmul_forward_cuda", N, C, OC);
    lt_matmul(out, weight, true, inp, false, OC, N, C, 0.0f, bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT,
              bias, NULL, 0);
}

void matmul_backward_cuda(floatX* dinp, floatX* dweight, floatX* dbias, const floatX* dout, const floatX* inp,
                          const floatX* weight, int N, int C, int OC) {
    check_sizes("matmul_backward_cuda", N, C, OC);
    if (dbias) bias_backward(dbias, dout, N, OC);
    if (dinp) lt_matmul(dinp, weight, false, dout, false, C, N, OC, 1.0f, CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0);
    lt_matmul(dweight, inp, false, dout, true, C, OC, N, 1.0f, CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0);
}

// The GELU epilogue (the tanh approximation, as layers/gelu.c): pre_gelu = inp @ weight^T + bias is
// kept as cuBLASLt's aux output for the backward, out_gelu = gelu(pre_gelu). cuBLASLt needs the aux
// leading dimension OC to be a multiple of 8, and has no erf GELU: other widths and exact = 1 take
// the matmul and the GELU kernel.
void matmul_gelu_forward_cuda(floatX* out_gelu, floatX* pre_gelu, const floatX* inp, const floatX* weight,
                              const floatX* bias, int N, int C, int OC, int exact) {
    check_sizes("matmul_gelu_forward_cuda", N, C, OC);
    if (exact || OC % 8 != 0) {
        matmul_forward_cuda(pre_gelu, inp, weight, bias, N, C, OC);
        gelu_forward_cuda(out_gelu, pre_gelu, N * OC, exact);
        return;
    }
    lt_matmul(out_gelu, weight, true, inp, false, OC, N, C, 0.0f,
              bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX, bias, pre_gelu, OC);
}
