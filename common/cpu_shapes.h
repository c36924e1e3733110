// The CPU kernels' register shapes, one row per instruction set, chosen at compile time from what
// -march enables (make ISA=..., docs/PERF.md). A register tile must fit the register file: its
// accumulators, the vectors of its right operand and a broadcast of its left one.
//   avx512   32 registers of 16 floats (tuned on AVX-512 hardware)
//   avx2     16 registers of 8 floats (x86-64-v3: AVX2 + FMA)
//   neon     32 registers of 4 floats (aarch64)
//   generic  16 registers of 4 floats (SSE2 or any other target; the compiler splits or scalarizes)
// CPU_VLEN: floats per vector register.
// MATMUL_MR x MATMUL_NR: layers/matmul.c's register tile, MR rows x NR floats (NR / CPU_VLEN
// vectors) of C; MATMUL_MC x MATMUL_KC: its packed block of A, sized for the L2 cache;
// MATMUL_KUNROLL: how many steps of its k loop are unrolled (1: none).
// ATTN_VEC, ATTN_GROUP: attention/softmax_sigmoid.c's vector width and its group of query rows (a
// multiple of ATTN_VEC); ATTN_TILE_ROWS x ATTN_TILE_VECS: its main register tile, rows x vectors,
// and the last columns of a product in tiles of ATTN_TAIL_ROWS x 1 vector.
// MLSTM_GROUP x MLSTM_TILE: attention/mlstm.c's register tile, rows x floats of a product.
// Plain literals, so that CPU_KERNEL_SHAPES can spell them.
#pragma once

#if defined(__AVX512F__)
#define CPU_ISA "avx512"
#define CPU_VLEN 16
#define MATMUL_MR 8
#define MATMUL_NR 48
#define MATMUL_MC 256
#define MATMUL_KC 384
#define MATMUL_KUNROLL 1
#define ATTN_VEC 16
#define ATTN_GROUP 16
#define ATTN_TILE_ROWS 8
#define ATTN_TILE_VECS 2
#define ATTN_TAIL_ROWS 16
#define MLSTM_GROUP 8
#define MLSTM_TILE 32
#elif defined(__AVX2__) && defined(__FMA__)
#define CPU_ISA "avx2"
#define CPU_VLEN 8
#define MATMUL_MR 6
#define MATMUL_NR 16
#define MATMUL_MC 240
#define MATMUL_KC 384
#define MATMUL_KUNROLL 4
#define ATTN_VEC 8
#define ATTN_GROUP 16
#define ATTN_TILE_ROWS 6
#define ATTN_TILE_VECS 2
#define ATTN_TAIL_ROWS 12
#define MLSTM_GROUP 3
#define MLSTM_TILE 32
#elif defined(__aarch64__)
#define CPU_ISA "neon"
#define CPU_VLEN 4
#define MATMUL_MR 8
#define MATMUL_NR 12
#define MATMUL_MC 256
#define MATMUL_KC 384
#define MATMUL_KUNROLL 4
#define ATTN_VEC 4
#define ATTN_GROUP 16
#define ATTN_TILE_ROWS 6
#define ATTN_TILE_VECS 4
#define ATTN_TAIL_ROWS 16
#define MLSTM_GROUP 6
#define MLSTM_TILE 16
#else
#define CPU_ISA "generic"
#define CPU_VLEN 4
#define MATMUL_MR 4
#define MATMUL_NR 12
#define MATMUL_MC 240
#define MATMUL_KC 256
#define MATMUL_KUNROLL 4
#define ATTN_VEC 4
#define ATTN_GROUP 16
#define ATTN_TILE_ROWS 6
#define ATTN_TILE_VECS 2
#define ATTN_TAIL_ROWS 12
#define MLSTM_GROUP 3
#define MLSTM_TILE 16
#endif

#define CPU_SHAPES_STR_(x) #x
#define CPU_SHAPES_STR(x) CPU_SHAPES_STR_(x)
// e.g. "cpu kernels: avx2 (matmul 6x16, attention vec 8 group 8, mlstm 6x16)"
#define CPU_KERNEL_SHAPES                                                                                   \
    "cpu kernels: " CPU_ISA " (matmul " CPU_SHAPES_STR(MATMUL_MR) "x" CPU_SHAPES_STR(MATMUL_NR)           \
    ", attention vec " CPU_SHAPES_STR(ATTN_VEC) " group " CPU_SHAPES_STR(ATTN_GROUP)                       \
    ", mlstm " CPU_SHAPES_STR(MLSTM_GROUP) "x" CPU_SHAPES_STR(MLSTM_TILE) ")"

// CPU_KERNEL_SHAPES of the build (common/cpu_shapes.c), for programs and the Python scripts.
const char* cpu_kernel_shapes(void);
