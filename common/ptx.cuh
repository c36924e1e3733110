// The device code written in PTX (inline assembly), kept in one place: the tensor-core primitives
// of the flash attention kernels (mma.sync, ldmatrix, cp.async; PTX ISA 7.0+, sm_80+) and the
// dynamic shared memory. Nothing else in the project is assembly, so test/cuda/emulate can run
// every kernel on the CPU by supplying its own version of this one header.
#pragma once
#include <cstdint>

#include "common/cuda_common.cuh"

// The dynamic shared memory of a kernel, as T (one declaration for every kernel of a file).
template <typename T> __device__ __forceinline__ T* dynamic_smem() {
    extern __shared__ __align__(16) unsigned char flash_smem[];
    return reinterpret_cast<T*>(flash_smem);
}

// d (16 x 8, fp32) += a (16 x 16, bf16) b (16 x 8, bf16).
static __device__ __forceinline__ void mma_bf16(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                 "{%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

static __device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const __nv_bfloat16* smem) {
    const uint32_t addr = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

static __device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const __nv_bfloat16* smem) {
    const uint32_t addr = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// 16 bytes global -> shared without registers; valid == false fills the 16 bytes with zeros (src
// must still be a mapped address; it is not read).
static __device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid) {
    const uint32_t addr = (uint32_t)__cvta_generic_to_shared(smem);
    const int src_bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(gmem), "r"(src_bytes)
                 : "memory");
}

static __device__ __forceinline__ void cp_async_4(void* smem, const void* gmem, bool valid) {
    const uint32_t addr = (uint32_t)__cvta_generic_to_shared(smem);
    const int src_bytes = valid ? 4 : 0;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(addr), "l"(gmem), "r"(src_bytes)
                 : "memory");
}

static __device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most N committed groups of this thread are still in flight.
template <int N> static __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
