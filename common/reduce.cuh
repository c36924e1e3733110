// Deterministic reductions for the elementwise and per-head CUDA kernels, with no atomics and the
// same bits on every run and every GPU: a warp sum, and column sums for the parameter gradients
// (LayerScale's dscale, the head norm's and QK-norm's weights, the sink slot's parameters):
// out[col] += sum over rows of term(row, col). The rows are split into fixed chunks; one thread per
// (chunk, column) sums its chunk in row order into a float scratch buffer (cudaMallocAsync per call),
// then one thread per column adds the chunks in chunk order and hands the total to the term.
// Neighbouring threads take neighbouring columns, so a term reading a row-major tensor reads it
// coalesced. The split depends only on the sizes, as the CPU twins' fixed row chunks do.
#pragma once
#include "common/cuda_common.cuh"

#define COLSUM_THREADS 256
#define COLSUM_MIN_CHUNK_ROWS 256   // rows per partial sum (more when rows would exceed 65535 chunks)

// A Term is a struct (passed by value to the kernels) with
//   __device__ float value(long row, int col) const;   // the row's contribution to column col
//   __device__ void add(int col, float sum) const;      // adds the column's total into its output

// partial (chunks, cols): the sum of the rows of chunk blockIdx.y, in row order.
template <typename Term>
__global__ void column_partial_kernel(float* partial, Term term, long rows, int cols, long chunk_rows) {
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= cols) return;
    long row0 = (long)blockIdx.y * chunk_rows, row1 = min(rows, row0 + chunk_rows);
    float sum = 0.0f;
    for (long row = row0; row < row1; row++) sum += term.value(row, col);
    partial[(size_t)blockIdx.y * cols + col] = sum;
}

// term.add(col, the chunk partials added in chunk order); one thread per column.
template <typename Term>
__global__ void column_total_kernel(Term term, const float* partial, int chunks, int cols) {
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= cols) return;
    float sum = 0.0f;
    for (int chunk = 0; chunk < chunks; chunk++) sum += partial[(size_t)chunk * cols + col];
    term.add(col, sum);
}

// For every column col < cols: term.add(col, sum over rows of term.value(row, col)).
template <typename Term> void column_sum_add(const Term& term, long rows, int cols) {
    if (rows <= 0 || cols <= 0) return;
    long chunk_rows = rows / 65535 + 1 > COLSUM_MIN_CHUNK_ROWS ? rows / 65535 + 1 : COLSUM_MIN_CHUNK_ROWS;
    int chunks = ceil_div(rows, chunk_rows);
    float* partial = nullptr;
    cuda_check(cudaMallocAsync(&partial, (size_t)chunks * cols * sizeof(float), 0));
    dim3 grid(ceil_div(cols, COLSUM_THREADS), chunks);
    column_partial_kernel<Term><<<grid, COLSUM_THREADS>>>(partial, term, rows, cols, chunk_rows);
    cuda_check_launch();
    column_total_kernel<Term><<<ceil_div(cols, COLSUM_THREADS), COLSUM_THREADS>>>(term, partial, chunks, cols);
    cuda_check_launch();
    cuda_check(cudaFreeAsync(partial, 0));
}

// Sum over the warp, butterfly order: every lane gets the same bits.
static __device__ __forceinline__ float warp_reduce_sum(float v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}
