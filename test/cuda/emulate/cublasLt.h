// The CPU emulation's <cublasLt.h> (see cuda_runtime.h here): the slice of cuBLASLt that
// layers/matmul.cu uses, implemented in cublaslt.cpp as a plain loop on the CPU.
//
// Names, numeric values, struct layouts and signatures are those of the real header (cuBLAS 13.1,
// /usr/local/cuda/include/cublasLt.h, cublas_api.h, library_types.h), so matmul.cu compiles
// unchanged; anything matmul.cu does not name is left out on purpose, so that a new use fails to
// compile here instead of silently meaning something else. What cublaslt.cpp checks and computes
// is our reading of NVIDIA's documentation: it checks the plumbing of matmul.cu (shapes, leading
// dimensions, transposes, epilogue arguments, alignment promises), not cuBLASLt itself.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cuda_bf16.h"
#include "cuda_runtime.h"

// library_types.h (the emulated cuda_runtime.h does not carry it).
enum cudaDataType_t {
    CUDA_R_32F = 0,
    CUDA_R_16BF = 14,
};
typedef cudaDataType_t cudaDataType;

// cublas_api.h
enum cublasStatus_t {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
};
enum cublasOperation_t {
    CUBLAS_OP_N = 0,
    CUBLAS_OP_T = 1,
};
enum cublasComputeType_t {
    CUBLAS_COMPUTE_32F = 68,
};

extern "C" {

typedef struct cublasLtContext* cublasLtHandle_t;
typedef struct cublasLtMatmulDescOpaque_t* cublasLtMatmulDesc_t;
typedef struct cublasLtMatrixLayoutOpaque_t* cublasLtMatrixLayout_t;
typedef struct cublasLtMatmulPreferenceOpaque_t* cublasLtMatmulPreference_t;

// Semi-opaque in the real library too: the caller copies it from a heuristic result to cublasLtMatmul.
typedef struct {
    uint64_t data[8];
} cublasLtMatmulAlgo_t;

typedef struct {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
} cublasLtMatmulHeuristicResult_t;

// The forward epilogues (bit flags as in the real enum: 4 bias, 32 GELU, 128 aux output).
typedef enum {
    CUBLASLT_EPILOGUE_DEFAULT = 1,
    CUBLASLT_EPILOGUE_BIAS = 4,
    CUBLASLT_EPILOGUE_GELU = 32,
    CUBLASLT_EPILOGUE_GELU_AUX = (CUBLASLT_EPILOGUE_GELU | 128),
    CUBLASLT_EPILOGUE_GELU_BIAS = (CUBLASLT_EPILOGUE_GELU | CUBLASLT_EPILOGUE_BIAS),
    CUBLASLT_EPILOGUE_GELU_AUX_BIAS = (CUBLASLT_EPILOGUE_GELU_AUX | CUBLASLT_EPILOGUE_BIAS),
} cublasLtEpilogue_t;

// Each attribute's value type (what sizeInBytes must be) is in the comment, as in the real header.
typedef enum {
    CUBLASLT_MATMUL_DESC_TRANSA = 3,                  // int32_t (cublasOperation_t), default CUBLAS_OP_N
    CUBLASLT_MATMUL_DESC_TRANSB = 4,                  // int32_t (cublasOperation_t), default CUBLAS_OP_N
    CUBLASLT_MATMUL_DESC_EPILOGUE = 7,                // uint32_t (cublasLtEpilogue_t), default DEFAULT
    CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8,            // const void*, default NULL
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER = 11,   // void*, default NULL
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD = 12,        // int64_t, default 0
} cublasLtMatmulDescAttributes_t;

// Split-K reduction schemes (the emulation sums each dot product in one sequence: NONE).
typedef enum {
    CUBLASLT_REDUCTION_SCHEME_NONE = 0,
    CUBLASLT_REDUCTION_SCHEME_INPLACE = 1,
    CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE = 2,
    CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE = 4,
    CUBLASLT_REDUCTION_SCHEME_MASK = 0x7,
} cublasLtReductionScheme_t;

typedef enum {
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,     // uint64_t, default 0
    CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK = 3,   // uint32_t (cublasLtReductionScheme_t bits), default all
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,   // uint32_t, default 256
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6,   // uint32_t, default 256
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,   // uint32_t, default 256
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8,   // uint32_t, default 256
} cublasLtMatmulPreferenceAttributes_t;

cublasStatus_t cublasLtCreate(cublasLtHandle_t* lightHandle);
cublasStatus_t cublasLtDestroy(cublasLtHandle_t lightHandle);
const char* cublasLtGetStatusName(cublasStatus_t status);
const char* cublasLtGetStatusString(cublasStatus_t status);
size_t cublasLtGetVersion(void);

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* matmulDesc, cublasComputeType_t computeType,
                                        cudaDataType_t scaleType);
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc);
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t sizeInBytes);

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* matLayout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld);
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout);

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref);
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref);
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t sizeInBytes);

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc,
                                              cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                              cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t preference, int requestedAlgoCount,
                                              cublasLtMatmulHeuristicResult_t heuristicResultsArray[],
                                              int* returnAlgoCount);

// D = epilogue(alpha * op(A) op(B) + beta * C), column-major; runs to completion before returning
// (the emulation has no streams to queue on).
cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void* alpha,
                              const void* A, cublasLtMatrixLayout_t Adesc, const void* B,
                              cublasLtMatrixLayout_t Bdesc, const void* beta, const void* C,
                              cublasLtMatrixLayout_t Cdesc, void* D, cublasLtMatrixLayout_t Ddesc,
                              const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspaceSizeInBytes,
                              cudaStream_t stream);

}   // extern "C"
