// Token + position embedding, the GPT-2 input layer (llm.c encoder_forward/backward).
// The backward scatters rows of dout into the dwte rows picked by the tokens, and tokens repeat,
// so threads split the CHANNELS: each owns a slice of columns of dwte and dwpe and walks every
// position in order. No two threads touch the same element (race-free), and each element sums its
// contributions in (b,t) order whatever the thread count (bitwise deterministic).
#include <omp.h>

#include "layers/encoder.h"

// out (B,T,C) = wte[inp[b,t]] + wpe[t]. inp (B,T); wte (V,C); wpe (>=T,C), NULL without learned positions (RoPE).
void encoder_forward(float* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C) {
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float* restrict out_bt = out + ((size_t)b * T + t) * C;
            const float* restrict wte_row = wte + (size_t)inp[b * T + t] * C;
            if (!wpe) {
                for (int c = 0; c < C; c++) out_bt[c] = wte_row[c];
                continue;
            }
            const float* restrict wpe_row = wpe + (size_t)t * C;
            for (int c = 0; c < C; c++) out_bt[c] = wte_row[c] + wpe_row[c];
        }
    }
}

// dwte (V,C), dwpe (>=T,C) += from dout (B,T,C); columns c0..c1 only.
static void encoder_backward_columns(float* dwte, float* dwpe, const float* dout, const int* inp,
                                     int B, int T, int C, int c0, int c1) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const float* restrict dout_bt = dout + ((size_t)b * T + t) * C;
            float* restrict dwte_row = dwte + (size_t)inp[b * T + t] * C;
            for (int c = c0; c < c1; c++) dwte_row[c] += dout_bt[c];
            if (!dwpe) continue;
            float* restrict dwpe_row = dwpe + (size_t)t * C;
            for (int c = c0; c < c1; c++) dwpe_row[c] += dout_bt[c];
        }
    }
}

// dwte (V,C), dwpe (>=T,C) += from dout (B,T,C); dwpe NULL without learned positions.
void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp, int B, int T, int C) {
    #pragma omp parallel
    {
        int nthreads = omp_get_num_threads(), tid = omp_get_thread_num();
        int slice = ((C + nthreads - 1) / nthreads + 15) / 16 * 16;   // whole 64-byte lines per thread
        int c0 = tid * slice, c1 = c0 + slice < C ? c0 + slice : C;
        if (c0 < c1) encoder_backward_columns(dwte, dwpe, dout, inp, B, T, C, c0, c1);
    }
}
