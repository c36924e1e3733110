// The CPU emulation of the cuBLASLt calls in layers/matmul.cu (declared in cublasLt.h here).
//
// What it computes. cublasLtMatmul: D = epilogue(alpha * op(A) op(B) + beta * C), all column-major,
// op = N or T, with fp32 A/B/C/D or bf16 A/B and bf16 or fp32 C/D, compute and scale type fp32,
// alpha and beta host floats. Each dot product is summed in double (exact products) and rounded
// once to float, the scale type; alpha, beta * C (C unread when beta is 0, as in BLAS) and the bias
// are then applied in float, GELU (evaluated in double) on that, and the result is rounded once
// into D's type. The bias vector
// and the aux matrix are in D's type (their documented default). The real library sums in fp32 in
// an order of its own, so the two agree to within fp32 accumulation error, not bit for bit.
// Epilogues: DEFAULT, BIAS, GELU, GELU_BIAS, GELU_AUX, GELU_AUX_BIAS. The call runs to completion
// on the calling thread; the workspace and the stream are not used.
//
// What it checks, returning the status the real library documents (INVALID_VALUE for arguments in
// conflict, NOT_SUPPORTED for configurations it has no kernel for) with one line on stderr saying
// why: attribute sizes, types, transposes, ld >= rows, m/n/k agreeing between the layouts and the
// transposes, the bias and aux arguments the epilogue needs (aux ld >= m and a multiple of 8), an
// algorithm from the heuristic, pointers at least as aligned as the heuristic was promised, C == D
// only with the same layout. A few checks are stricter than cuBLASLt, which would silently ignore
// or race on these; they catch plumbing bugs: a bias or aux pointer the epilogue does not use, and
// D or aux overlapping an input.
//
// Caveat. All of this encodes our reading of NVIDIA's documentation (the cuBLAS guide,
// https://docs.nvidia.com/cuda/cublas/index.html, sections cublasLtMatmul, cublasLtEpilogue_t and
// cublasLtMatmulDescAttributes_t, and the comments of the real cublasLt.h, which carry the same
// text): it checks the plumbing of matmul.cu, not cuBLASLt itself. In particular the docs
// name the epilogue "GELU" without saying which; this uses the tanh approximation, as GPT-2 and
// layers/gelu.c do. Run the real thing on a GPU for the last word.
#include "cublasLt.h"

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <vector>

struct cublasLtContext {
    int unused;
};

struct cublasLtMatmulDescOpaque_t {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    int32_t trans_a = CUBLAS_OP_N, trans_b = CUBLAS_OP_N;
    uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    const void* bias = nullptr;
    void* aux = nullptr;
    int64_t aux_ld = 0;
};

struct cublasLtMatrixLayoutOpaque_t {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};

// Alignments in the order A, B, C, D.
struct cublasLtMatmulPreferenceOpaque_t {
    uint64_t max_workspace = 0;
    uint32_t min_alignment[4] = {256, 256, 256, 256};
    uint32_t reduction_schemes = CUBLASLT_REDUCTION_SCHEME_MASK;   // any; the emulation never splits K
};

namespace {

// Marks an algorithm handed out by the heuristic (data[1..4]: the alignments it was chosen for).
const uint64_t ALGO_TAG = 0x454d55434c544c54ull;   // "EMUCLTLT"
const char* const MATRIX_NAMES[4] = {"A", "B", "C", "D"};

cublasStatus_t reject(cublasStatus_t status, const char* function, const char* format, ...)
    __attribute__((format(printf, 3, 4)));
cublasStatus_t reject(cublasStatus_t status, const char* function, const char* format, ...) {
    fprintf(stderr, "cuBLASLt (emulated): %s: %s: ", function, cublasLtGetStatusName(status));
    va_list args;
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fputc('\n', stderr);
    return status;
}

// Reads an attribute value; the real library rejects a NULL buffer or a size other than the attribute's.
template <typename T>
cublasStatus_t read_attribute(const char* function, const char* name, const void* buf, size_t size, T* value) {
    if (!buf || size != sizeof(T))
        return reject(CUBLAS_STATUS_INVALID_VALUE, function, "%s takes %zu bytes, got %zu%s", name, sizeof(T), size,
                      buf ? "" : " and a NULL buffer");
    memcpy(value, buf, sizeof(T));
    return CUBLAS_STATUS_SUCCESS;
}

size_t element_size(cudaDataType_t type) { return type == CUDA_R_16BF ? 2 : 4; }
const char* type_name(cudaDataType_t type) { return type == CUDA_R_16BF ? "CUDA_R_16BF" : "CUDA_R_32F"; }

float load(const void* base, cudaDataType_t type, size_t i) {
    if (type == CUDA_R_16BF) return (float)static_cast<const __nv_bfloat16*>(base)[i];
    return static_cast<const float*>(base)[i];
}
void store(void* base, cudaDataType_t type, size_t i, float value) {
    if (type == CUDA_R_16BF) static_cast<__nv_bfloat16*>(base)[i] = __nv_bfloat16(value);
    else static_cast<float*>(base)[i] = value;
}

// The bytes a column-major rows x cols matrix with leading dimension ld spans.
size_t extent_bytes(uint64_t rows, uint64_t cols, int64_t ld, cudaDataType_t type) {
    if (rows == 0 || cols == 0) return 0;
    return (size_t)(((cols - 1) * (uint64_t)ld + rows) * element_size(type));
}
bool overlap(const void* p, size_t p_bytes, const void* q, size_t q_bytes) {
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)q;
    return p_bytes && q_bytes && a < b + q_bytes && b < a + p_bytes;
}

// GELU with the tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
float gelu(float x) {
    double u = 0.7978845608028654 * ((double)x + 0.044715 * (double)x * x * x);
    return (float)(0.5 * x * (1.0 + tanh(u)));
}

struct Epilogue {
    bool bias, gelu, aux;
};
bool decode_epilogue(uint32_t epilogue, Epilogue* e) {
    switch (epilogue) {
    case CUBLASLT_EPILOGUE_DEFAULT: *e = {false, false, false}; return true;
    case CUBLASLT_EPILOGUE_BIAS: *e = {true, false, false}; return true;
    case CUBLASLT_EPILOGUE_GELU: *e = {false, true, false}; return true;
    case CUBLASLT_EPILOGUE_GELU_BIAS: *e = {true, true, false}; return true;
    case CUBLASLT_EPILOGUE_GELU_AUX: *e = {false, true, true}; return true;
    case CUBLASLT_EPILOGUE_GELU_AUX_BIAS: *e = {true, true, true}; return true;
    default: return false;
    }
}

// One GEMM as the descriptors describe it, once they are found consistent.
struct Problem {
    uint64_t m, n, k;
    bool trans_a, trans_b;
    Epilogue epilogue;
};

// Everything the heuristic and the matmul both check: the descriptors alone, no matrix pointers.
cublasStatus_t check_problem(const char* function, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a,
                             cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                             Problem* problem) {
    if (!desc || !a || !b || !c || !d)
        return reject(CUBLAS_STATUS_INVALID_VALUE, function, "a NULL descriptor (desc %p, A %p, B %p, C %p, D %p)",
                      (void*)desc, (void*)a, (void*)b, (void*)c, (void*)d);
    if (desc->compute != CUBLAS_COMPUTE_32F || desc->scale != CUDA_R_32F)
        return reject(CUBLAS_STATUS_NOT_SUPPORTED, function,
                      "compute type %d, scale type %d: only CUBLAS_COMPUTE_32F with CUDA_R_32F is emulated",
                      (int)desc->compute, (int)desc->scale);

    // The fp32-compute rows of cublasLtMatmul's type table that this emulates: A and B alike, C and
    // D alike (C's type must equal D's outside fp8), fp32 inputs only with an fp32 output.
    const cublasLtMatrixLayout_t layouts[4] = {a, b, c, d};
    for (int i = 0; i < 4; i++) {
        cudaDataType_t t = layouts[i]->type;
        if (t != CUDA_R_32F && t != CUDA_R_16BF)
            return reject(CUBLAS_STATUS_NOT_SUPPORTED, function, "matrix %s has data type %d (emulated: %s, %s)",
                          MATRIX_NAMES[i], (int)t, type_name(CUDA_R_32F), type_name(CUDA_R_16BF));
    }
    if (a->type != b->type || c->type != d->type || (a->type == CUDA_R_32F && d->type != CUDA_R_32F))
        return reject(CUBLAS_STATUS_NOT_SUPPORTED, function, "types A %s, B %s, C %s, D %s: no such kernel",
                      type_name(a->type), type_name(b->type), type_name(c->type), type_name(d->type));

    // Layouts: sizes as int32 (a negative int converted to uint64 shows up here), ld >= rows.
    for (int i = 0; i < 4; i++) {
        const cublasLtMatrixLayoutOpaque_t* l = layouts[i];
        if (l->rows > INT32_MAX || l->cols > INT32_MAX)
            return reject(CUBLAS_STATUS_INVALID_VALUE, function,
                          "matrix %s is %llu x %llu: beyond int32 (a negative size converted to uint64?)",
                          MATRIX_NAMES[i], (unsigned long long)l->rows, (unsigned long long)l->cols);
        if (l->ld < 1 || (uint64_t)l->ld < l->rows)
            return reject(CUBLAS_STATUS_INVALID_VALUE, function,
                          "matrix %s: leading dimension %lld is below its %llu rows (column-major needs ld >= rows)",
                          MATRIX_NAMES[i], (long long)l->ld, (unsigned long long)l->rows);
    }

    for (int32_t op : {desc->trans_a, desc->trans_b})
        if (op != CUBLAS_OP_N && op != CUBLAS_OP_T)
            return reject(CUBLAS_STATUS_INVALID_VALUE, function, "transpose %d: not CUBLAS_OP_N or CUBLAS_OP_T",
                          (int)op);
    Problem p;
    p.trans_a = desc->trans_a == CUBLAS_OP_T;
    p.trans_b = desc->trans_b == CUBLAS_OP_T;
    p.m = d->rows;
    p.n = d->cols;
    p.k = p.trans_a ? a->rows : a->cols;
    uint64_t a_m = p.trans_a ? a->cols : a->rows;
    uint64_t b_k = p.trans_b ? b->cols : b->rows, b_n = p.trans_b ? b->rows : b->cols;
    if (a_m != p.m || b_n != p.n || b_k != p.k || c->rows != d->rows || c->cols != d->cols)
        return reject(CUBLAS_STATUS_INVALID_VALUE, function,
                      "shapes disagree: D %llux%llu, C %llux%llu, op%c(A) %llux%llu, op%c(B) %llux%llu",
                      (unsigned long long)d->rows, (unsigned long long)d->cols, (unsigned long long)c->rows,
                      (unsigned long long)c->cols, p.trans_a ? 'T' : 'N', (unsigned long long)a_m,
                      (unsigned long long)p.k, p.trans_b ? 'T' : 'N', (unsigned long long)b_k,
                      (unsigned long long)b_n);

    if (!decode_epilogue(desc->epilogue, &p.epilogue))
        return reject(CUBLAS_STATUS_NOT_SUPPORTED, function,
                      "epilogue %u is not emulated (DEFAULT, BIAS, GELU, GELU_BIAS, GELU_AUX, GELU_AUX_BIAS are)",
                      desc->epilogue);
    const Epilogue& e = p.epilogue;
    if (e.bias && !desc->bias)
        return reject(CUBLAS_STATUS_INVALID_VALUE, function, "epilogue %u adds a bias but BIAS_POINTER is NULL",
                      desc->epilogue);
    if (!e.bias && desc->bias)   // stricter than cuBLASLt, which ignores it: a bias that is never added
        return reject(CUBLAS_STATUS_INVALID_VALUE, function,
                      "BIAS_POINTER is set but epilogue %u adds no bias (it would be silently dropped)",
                      desc->epilogue);
    if (e.aux) {
        if (!desc->aux)
            return reject(CUBLAS_STATUS_INVALID_VALUE, function,
                          "epilogue %u writes the GELU input to EPILOGUE_AUX_POINTER, which is NULL", desc->epilogue);
        // The real header: the GELU input's ld "must be divisible by 8 and be no less than the number
        // of rows in the output matrix".
        if (desc->aux_ld < (int64_t)p.m || desc->aux_ld % 8 != 0)
            return reject(CUBLAS_STATUS_INVALID_VALUE, function,
                          "EPILOGUE_AUX_LD %lld: must be a multiple of 8 and at least m = %llu",
                          (long long)desc->aux_ld, (unsigned long long)p.m);
    } else if (desc->aux) {   // stricter than cuBLASLt: an aux output that is never written
        return reject(CUBLAS_STATUS_INVALID_VALUE, function,
                      "EPILOGUE_AUX_POINTER is set but epilogue %u has no aux output", desc->epilogue);
    }
    *problem = p;
    return CUBLAS_STATUS_SUCCESS;
}

// The largest power of two (<= 256) dividing the address.
uint32_t alignment_of(const void* p) {
    uint32_t alignment = 256;
    while (alignment > 1 && (uintptr_t)p % alignment != 0) alignment >>= 1;
    return alignment;
}

}   // namespace

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t* lightHandle) {
    if (!lightHandle) return reject(CUBLAS_STATUS_INVALID_VALUE, __func__, "NULL handle pointer");
    *lightHandle = new cublasLtContext();
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t lightHandle) {
    if (!lightHandle) return reject(CUBLAS_STATUS_NOT_INITIALIZED, __func__, "NULL handle");
    delete lightHandle;
    return CUBLAS_STATUS_SUCCESS;
}

const char* cublasLtGetStatusName(cublasStatus_t status) {
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

const char* cublasLtGetStatusString(cublasStatus_t status) {
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid value was used as an argument";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    }
    return "unknown error";
}

// The version whose header cublasLt.h mirrors (13.1.0, as major * 10000 + minor * 100 + patch).
size_t cublasLtGetVersion(void) { return 130100; }

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* matmulDesc, cublasComputeType_t computeType,
                                        cudaDataType_t scaleType) {
    if (!matmulDesc) return reject(CUBLAS_STATUS_INVALID_VALUE, __func__, "NULL descriptor pointer");
    *matmulDesc = new cublasLtMatmulDescOpaque_t();
    (*matmulDesc)->compute = computeType;
    (*matmulDesc)->scale = scaleType;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc) {
    delete matmulDesc;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t sizeInBytes) {
    const char* f = __func__;
    if (!matmulDesc) return reject(CUBLAS_STATUS_INVALID_VALUE, f, "NULL descriptor");
    cublasLtMatmulDescOpaque_t* d = matmulDesc;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: return read_attribute(f, "TRANSA", buf, sizeInBytes, &d->trans_a);
    case CUBLASLT_MATMUL_DESC_TRANSB: return read_attribute(f, "TRANSB", buf, sizeInBytes, &d->trans_b);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return read_attribute(f, "EPILOGUE", buf, sizeInBytes, &d->epilogue);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return read_attribute(f, "BIAS_POINTER", buf, sizeInBytes, &d->bias);
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER:
        return read_attribute(f, "EPILOGUE_AUX_POINTER", buf, sizeInBytes, &d->aux);
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD:
        return read_attribute(f, "EPILOGUE_AUX_LD", buf, sizeInBytes, &d->aux_ld);
    }
    return reject(CUBLAS_STATUS_INVALID_VALUE, f, "attribute %d is not emulated", (int)attr);
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* matLayout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
    if (!matLayout) return reject(CUBLAS_STATUS_INVALID_VALUE, __func__, "NULL layout pointer");
    // Like the real one, accepts any values here; the heuristic and the matmul check them.
    *matLayout = new cublasLtMatrixLayoutOpaque_t{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout) {
    delete matLayout;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
    if (!pref) return reject(CUBLAS_STATUS_INVALID_VALUE, __func__, "NULL preference pointer");
    *pref = new cublasLtMatmulPreferenceOpaque_t();
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    delete pref;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t sizeInBytes) {
    const char* f = __func__;
    if (!pref) return reject(CUBLAS_STATUS_INVALID_VALUE, f, "NULL preference");
    switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
        return read_attribute(f, "MAX_WORKSPACE_BYTES", buf, sizeInBytes, &pref->max_workspace);
    case CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK:
        return read_attribute(f, "REDUCTION_SCHEME_MASK", buf, sizeInBytes, &pref->reduction_schemes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES:
        return read_attribute(f, "MIN_ALIGNMENT_*_BYTES", buf, sizeInBytes,
                              &pref->min_alignment[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES]);
    }
    return reject(CUBLAS_STATUS_INVALID_VALUE, f, "attribute %d is not emulated", (int)attr);
}

// One algorithm, needing no workspace, for any consistent problem whose promised alignments are at
// least one element; none (NOT_SUPPORTED, count 0) otherwise, as no real kernel reads a matrix at
// addresses that are not multiples of its element size.
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc,
                                              cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                              cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t preference, int requestedAlgoCount,
                                              cublasLtMatmulHeuristicResult_t heuristicResultsArray[],
                                              int* returnAlgoCount) {
    const char* f = __func__;
    if (!returnAlgoCount || !heuristicResultsArray)
        return reject(CUBLAS_STATUS_INVALID_VALUE, f, "NULL result array or count");
    *returnAlgoCount = 0;
    if (requestedAlgoCount <= 0)
        return reject(CUBLAS_STATUS_INVALID_VALUE, f, "requestedAlgoCount %d <= 0", requestedAlgoCount);
    if (!lightHandle) return reject(CUBLAS_STATUS_NOT_INITIALIZED, f, "NULL handle");
    if (!preference) return reject(CUBLAS_STATUS_INVALID_VALUE, f, "NULL preference");
    Problem p;
    cublasStatus_t status = check_problem(f, operationDesc, Adesc, Bdesc, Cdesc, Ddesc, &p);
    if (status != CUBLAS_STATUS_SUCCESS) return status;

    const cublasLtMatrixLayout_t layouts[4] = {Adesc, Bdesc, Cdesc, Ddesc};
    for (int i = 0; i < 4; i++)
        if (preference->min_alignment[i] < element_size(layouts[i]->type))
            return reject(CUBLAS_STATUS_NOT_SUPPORTED, f,
                          "no algorithm: matrix %s is promised %u-byte alignment, below its %zu-byte elements",
                          MATRIX_NAMES[i], preference->min_alignment[i], element_size(layouts[i]->type));
    // The heuristic reads the bias and aux pointers from the descriptor for their alignment.
    size_t d_size = element_size(Ddesc->type);
    const void* vectors[2] = {operationDesc->bias, operationDesc->aux};
    for (const void* v : vectors)
        if (v && (uintptr_t)v % d_size != 0)
            return reject(CUBLAS_STATUS_NOT_SUPPORTED, f, "no algorithm: bias/aux pointer %p is not %zu-byte aligned",
                          v, d_size);

    cublasLtMatmulHeuristicResult_t& r = heuristicResultsArray[0];
    memset(&r, 0, sizeof(r));
    r.algo.data[0] = ALGO_TAG;
    for (int i = 0; i < 4; i++) r.algo.data[1 + i] = preference->min_alignment[i];
    r.workspaceSize = 0;
    r.state = CUBLAS_STATUS_SUCCESS;
    r.wavesCount = 1.0f;
    *returnAlgoCount = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void* alpha,
                              const void* A, cublasLtMatrixLayout_t Adesc, const void* B,
                              cublasLtMatrixLayout_t Bdesc, const void* beta, const void* C,
                              cublasLtMatrixLayout_t Cdesc, void* D, cublasLtMatrixLayout_t Ddesc,
                              const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspaceSizeInBytes,
                              cudaStream_t stream) {
    const char* f = __func__;
    (void)workspace, (void)workspaceSizeInBytes, (void)stream;   // the algorithm needs no workspace; runs now
    if (!lightHandle) return reject(CUBLAS_STATUS_NOT_INITIALIZED, f, "NULL handle");
    Problem p;
    cublasStatus_t status = check_problem(f, computeDesc, Adesc, Bdesc, Cdesc, Ddesc, &p);
    if (status != CUBLAS_STATUS_SUCCESS) return status;
    if (!alpha || !beta) return reject(CUBLAS_STATUS_INVALID_VALUE, f, "NULL alpha or beta");
    // Scale type fp32, pointer mode host (the defaults): alpha and beta are host floats.
    const float alpha_f = *static_cast<const float*>(alpha), beta_f = *static_cast<const float*>(beta);
    // As in BLAS, C is not read when beta is 0 (it may hold anything, NaN included).
    const bool read_c = beta_f != 0.0f;
    const bool empty = p.m == 0 || p.n == 0;
    if (!empty && (!D || (p.k > 0 && (!A || !B)) || (read_c && !C)))
        return reject(CUBLAS_STATUS_INVALID_VALUE, f, "a NULL matrix (A %p, B %p, C %p, D %p)", A, B, C, D);

    // An algorithm from the heuristic, and the alignments it was chosen for. NULL asks for an
    // implicit query, which sees the actual pointers: then only element alignment is required.
    uint64_t promised[4] = {1, 1, 1, 1};
    if (algo) {
        if (algo->data[0] != ALGO_TAG)
            return reject(CUBLAS_STATUS_INVALID_VALUE, f,
                          "algo was not returned by cublasLtMatmulAlgoGetHeuristic (uninitialized?)");
        for (int i = 0; i < 4; i++) promised[i] = algo->data[1 + i];
    }
    const void* matrices[4] = {A, B, C, D};
    const cublasLtMatrixLayout_t layouts[4] = {Adesc, Bdesc, Cdesc, Ddesc};
    for (int i = 0; i < 4; i++) {
        if (!matrices[i]) continue;
        uint64_t need = promised[i] > element_size(layouts[i]->type) ? promised[i] : element_size(layouts[i]->type);
        if ((uintptr_t)matrices[i] % need != 0)
            return reject(CUBLAS_STATUS_INVALID_VALUE, f,
                          "matrix %s at %p is %u-byte aligned, but the algorithm was chosen for %llu-byte alignment",
                          MATRIX_NAMES[i], matrices[i], alignment_of(matrices[i]), (unsigned long long)need);
    }
    const cudaDataType_t d_type = Ddesc->type;   // the bias and aux type (their default: D's type)
    const void* bias = computeDesc->bias;
    void* aux = computeDesc->aux;
    for (const void* v : {bias, (const void*)aux})
        if (v && (uintptr_t)v % element_size(d_type) != 0)
            return reject(CUBLAS_STATUS_INVALID_VALUE, f, "bias/aux pointer %p is not %zu-byte aligned", v,
                          element_size(d_type));

    // Memory the outputs may not share with anything else (a GPU would race on it).
    const size_t a_bytes = extent_bytes(Adesc->rows, Adesc->cols, Adesc->ld, Adesc->type);
    const size_t b_bytes = extent_bytes(Bdesc->rows, Bdesc->cols, Bdesc->ld, Bdesc->type);
    const size_t c_bytes = read_c ? extent_bytes(Cdesc->rows, Cdesc->cols, Cdesc->ld, Cdesc->type) : 0;
    const size_t d_bytes = extent_bytes(p.m, p.n, Ddesc->ld, d_type);
    const size_t bias_bytes = bias ? p.m * element_size(d_type) : 0;
    const size_t aux_bytes = aux ? extent_bytes(p.m, p.n, computeDesc->aux_ld, d_type) : 0;
    if (read_c && C == D) {
        if (Cdesc->ld != Ddesc->ld)   // in place needs Cdesc == Ddesc (types and shapes already agree)
            return reject(CUBLAS_STATUS_INVALID_VALUE, f, "C == D in place with ld %lld != %lld",
                          (long long)Cdesc->ld, (long long)Ddesc->ld);
    } else if (overlap(C, c_bytes, D, d_bytes)) {
        return reject(CUBLAS_STATUS_INVALID_VALUE, f, "C and D overlap without being the same matrix");
    }
    if (overlap(D, d_bytes, A, a_bytes) || overlap(D, d_bytes, B, b_bytes) || overlap(D, d_bytes, bias, bias_bytes))
        return reject(CUBLAS_STATUS_INVALID_VALUE, f, "D overlaps A, B or the bias");
    if (overlap(aux, aux_bytes, A, a_bytes) || overlap(aux, aux_bytes, B, b_bytes) ||
        overlap(aux, aux_bytes, C, c_bytes) || overlap(aux, aux_bytes, D, d_bytes) ||
        overlap(aux, aux_bytes, bias, bias_bytes))
        return reject(CUBLAS_STATUS_INVALID_VALUE, f, "the aux output overlaps A, B, C, D or the bias");
    if (empty) return CUBLAS_STATUS_SUCCESS;

    // op(A) as m rows of k floats and op(B) as n columns of k floats, so each dot product reads
    // contiguous memory whatever the transposes.
    const size_t m = p.m, n = p.n, k = p.k;
    const size_t lda = (size_t)Adesc->ld, ldb = (size_t)Bdesc->ld;
    std::vector<float> a_rows(m * k), b_cols(n * k);
    for (size_t i = 0; i < m; i++)
        for (size_t q = 0; q < k; q++) a_rows[i * k + q] = load(A, Adesc->type, p.trans_a ? i * lda + q : q * lda + i);
    for (size_t j = 0; j < n; j++)
        for (size_t q = 0; q < k; q++) b_cols[j * k + q] = load(B, Bdesc->type, p.trans_b ? q * ldb + j : j * ldb + q);

    const size_t ldc = (size_t)Cdesc->ld, ldd = (size_t)Ddesc->ld, aux_ld = (size_t)computeDesc->aux_ld;
    const Epilogue& e = p.epilogue;
    const size_t ROWS = 16;   // rows of op(A) per pass over op(B): they stay in cache
    for (size_t i0 = 0; i0 < m; i0 += ROWS)
        for (size_t j = 0; j < n; j++)
            for (size_t i = i0; i < m && i < i0 + ROWS; i++) {
                const float* a_row = &a_rows[i * k];
                const float* b_col = &b_cols[j * k];
                // Four interleaved partial sums in a fixed order: the same result every run, and
                // four times the speed of one chain of dependent double adds.
                double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
                size_t q = 0;
                for (; q + 4 <= k; q += 4) {
                    s0 += (double)a_row[q] * b_col[q];
                    s1 += (double)a_row[q + 1] * b_col[q + 1];
                    s2 += (double)a_row[q + 2] * b_col[q + 2];
                    s3 += (double)a_row[q + 3] * b_col[q + 3];
                }
                for (; q < k; q++) s0 += (double)a_row[q] * b_col[q];
                const double sum = (s0 + s1) + (s2 + s3);
                // The accumulator in the scale type, scaled; then the epilogue in order: bias, the
                // aux copy of the GELU input, GELU; then one rounding into D's type.
                float v = alpha_f * (float)sum;
                if (read_c) v += beta_f * load(C, Cdesc->type, j * ldc + i);
                if (e.bias) v += load(bias, d_type, i);
                if (e.aux) store(aux, d_type, j * aux_ld + i, v);
                if (e.gelu) v = gelu(v);
                store(D, d_type, j * ldd + i, v);
            }
    return CUBLAS_STATUS_SUCCESS;
}

}   // extern "C"
