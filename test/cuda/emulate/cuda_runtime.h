// The CPU emulation of the CUDA runtime that test_cuda_emu builds the project's CUDA sources
// against (g++ with this folder first on the include path; test/cuda/emulate/launches.py turns each
// kernel<<<grid, block, smem>>>(args) into emu_launch(kernel, grid, block, smem, args)).
//
// Semantics. Blocks run one after another (in reverse on every other launch); the threads of a block are coroutines on one OS thread,
// each running until it reaches a collective: __syncthreads waits for every live thread of the
// block, warp collectives (__shfl_*, __syncwarp, ldmatrix, mma) for all 32 lanes of the warp.
// Blocks rotate over four schedules (emulate.cpp): threads in order, in reverse order, one warp at a
// time, and one warp at a time with cp.async copies landing at once, so that a missing barrier
// shows in at least one of them as stale or overwritten shared memory. Shared and freshly
// allocated device memory start as all-ones bytes (NaN in fp32 and bf16). Device allocations end
// at an unmapped page (a read or write past the end faults). A kernel stuck at a barrier that not
// every thread reaches aborts with "EMU: deadlock". What it cannot show: timing, real concurrency
// between blocks (two blocks adding into one global address both succeed here; only the changing
// block order can show it, through the run-twice determinism checks), bank conflicts,
// register pressure, and any behavior the emulated PTX does not model (see common/ptx.cuh here).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
// one copy per block: blocks run one at a time. launches.py follows each declaration with
// emu_poison_shared, which fills the array with NaN bytes when the block's first thread reaches it
// (before any thread of the block can have written it), as the dynamic shared memory is filled.
#define __shared__ static
void emu_poison_shared(void* array, size_t bytes);

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    constexpr dim3() = default;
    constexpr dim3(unsigned a, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct float2 { float x, y; };
struct float4 { float x, y, z, w; };

namespace emu {
const dim3& thread_idx();
const dim3& block_idx();
const dim3& block_dim();
const dim3& grid_dim();
void syncthreads();
void syncwarp();
int lane();
// out = the `bytes` (<= 32) that lane `src_lane` of this warp passed (every lane passes its own).
void exchange(const void* mine, size_t bytes, int src_lane, void* out);
void run_grid(dim3 grid, dim3 block, size_t smem_bytes, const std::function<void()>& body);
}   // namespace emu

#define threadIdx (emu::thread_idx())
#define blockIdx (emu::block_idx())
#define blockDim (emu::block_dim())
#define gridDim (emu::grid_dim())
constexpr int warpSize = 32;

static inline void __syncthreads() { emu::syncthreads(); }
static inline void __syncwarp(unsigned = 0xffffffffu) { emu::syncwarp(); }
template <typename T> static inline T __shfl_sync(unsigned, T v, int src_lane, int width = 32) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "4- and 8-byte shuffles only");
    const int lane = emu::lane();
    T r;
    emu::exchange(&v, sizeof(T), (lane & ~(width - 1)) + (src_lane & (width - 1)), &r);
    return r;
}
template <typename T> static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    return __shfl_sync(mask, v, emu::lane() ^ lane_mask, width);
}
template <typename T> static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    int lane = emu::lane(), src = (lane & (width - 1)) + (int)delta;
    return __shfl_sync(mask, v, src < width ? lane + (int)delta : lane, width);
}

// fast-math intrinsics: the accurate functions (the real ones are within a few ulp of these)
// (glibc declares __expf and __logf itself: renamed)
#define __expf emu_expf
#define __logf emu_logf
static inline float emu_expf(float x) { return expf(x); }
static inline float emu_logf(float x) { return logf(x); }
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
template <typename T> static inline T __ldg(const T* p) { return *p; }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline long min(long a, long b) { return a < b ? a : b; }
static inline long max(long a, long b) { return a > b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
static inline size_t min(size_t a, size_t b) { return a < b ? a : b; }
static inline size_t max(size_t a, size_t b) { return a > b ? a : b; }
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }

// ------------------------------------------------------------------------------------ runtime API
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2, cudaErrorNoDevice = 100 };
typedef cudaError_t cudaError;
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice,
                      cudaMemcpyDefault };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize };
typedef struct emu_stream* cudaStream_t;
#define cudaStreamPerThread ((cudaStream_t)0x2)
struct cudaDeviceProp {
    char name[256];
    int major, minor, multiProcessorCount;
    size_t totalGlobalMem, sharedMemPerBlockOptin;
};

const char* cudaGetErrorString(cudaError_t err);
cudaError_t cudaGetLastError(void);
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaMalloc(void** ptr, size_t bytes);
cudaError_t cudaMallocAsync(void** ptr, size_t bytes, cudaStream_t stream);
cudaError_t cudaFree(void* ptr);
cudaError_t cudaFreeAsync(void* ptr, cudaStream_t stream);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = 0);
cudaError_t cudaMemset(void* ptr, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream = 0);
// One device, one pool: the attribute is accepted and has no effect (memory is never pooled here).
typedef struct emu_mem_pool* cudaMemPool_t;
enum cudaMemPoolAttr { cudaMemPoolAttrReleaseThreshold = 4 };
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int device);
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
template <typename T> cudaError_t cudaMalloc(T** ptr, size_t bytes) { return cudaMalloc((void**)ptr, bytes); }
template <typename T> cudaError_t cudaMallocAsync(T** ptr, size_t bytes, cudaStream_t stream) {
    return cudaMallocAsync((void**)ptr, bytes, stream);
}

namespace emu {
// The dynamic shared memory a kernel may use (48 KiB unless raised by cudaFuncSetAttribute).
void set_smem_limit(const void* kernel, size_t bytes);
size_t smem_limit(const void* kernel);
void fail_launch(const char* why, size_t value);
}   // namespace emu
template <typename Kernel> cudaError_t cudaFuncSetAttribute(Kernel kernel, cudaFuncAttribute, int bytes) {
    emu::set_smem_limit((const void*)kernel, (size_t)bytes);
    return cudaSuccess;
}

// kernel<<<grid, block, smem>>>(args...) after launches.py: `call` calls the kernel by name.
template <typename Call> void emu_launch(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes, Call call) {
    if (smem_bytes > emu::smem_limit(kernel)) emu::fail_launch("dynamic shared memory over the limit", smem_bytes);
    if (block.x * block.y * block.z > 1024) emu::fail_launch("more than 1024 threads per block", block.x * block.y * block.z);
    if (grid.y > 65535 || grid.z > 65535) emu::fail_launch("grid y or z over 65535", grid.y > 65535 ? grid.y : grid.z);
    emu::run_grid(grid, block, smem_bytes, call);
}
