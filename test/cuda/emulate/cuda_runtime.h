// The CPU emulation of the CUDA runtime that test_cuda_emu builds the project's CUDA sources
// against (g++ with this folder first on the include path; test/cuda/emulate/launches.py turns each
// kernel<<<grid, block, smem>>>(args) into emu_launch(kernel, name, file, line, grid, block, smem,
// args), each static __shared__ variable or array into a per-block allocation and each
// `extern __shared__ T name[]` into a pointer to the block's dynamic shared memory, in the .cu files
// and in the project's .cuh headers).
//
// Semantics. The threads of a block are coroutines on one host thread, each running until it
// reaches a collective: __syncthreads (and _count, _and, _or) waits for every live thread of the
// block, warp collectives (__shfl_*, __ballot_sync and the votes, __syncwarp, ldmatrix, mma) for
// all 32 lanes of the warp. Atomics are atomic on the host too. Blocks rotate over four
// schedules (emulate.cpp): threads in order, in reverse order, one warp at a time, and one warp at a
// time with cp.async copies landing at once, so that a missing barrier shows in at least one of them
// as stale or overwritten shared memory. The blocks of a launch run one after another (in reverse
// on every other launch), or, with EMU_CONCURRENCY=N, on N host threads at once, each block still
// a set of coroutines on one of them: two blocks adding into one global address then race for real.
// Shared and freshly allocated device memory start as all-ones bytes (NaN in fp32 and bf16).
//
// Checks (each aborts with a line starting "EMU:" that names the kernel, the launch site, the block
// and the thread). test_cuda_emu's sources are compiled with AddressSanitizer and its alignment
// check (see the Makefile), and the emulation poisons what a kernel may not touch:
//  - shared memory: every plain load and store, not only ldmatrix and cp.async, must fall inside
//    the block's dynamic shared memory or one of its static __shared__ arrays (each between
//    poisoned red zones): one element before or after is caught, with its offset;
//  - device memory: each allocation has poisoned bytes right before and after it and ends at an
//    unmapped page; freed memory is poisoned and unmapped (use after free);
//  - alignment: a load or store of a type less aligned than its natural alignment (float4, 16-byte
//    packs, bf16 pairs, floats) aborts, as it faults on the GPU;
//  - launches: 1024 threads, block and grid dimensions, dynamic shared memory over 48 KiB without
//    cudaFuncSetAttribute, and static plus dynamic shared memory over 163 KiB (sm_80's opt-in
//    limit: the binaries also run on A100, so H100's 227 KiB is not the limit);
//  - a barrier that not every thread reaches: "EMU: deadlock".
// Fast-math: the device math functions (the fast intrinsics __expf, __fdividef, __logf, ... and
// rsqrtf, expf, exp2f, logf, ...) return results off the exact value by up to their documented
// maximum error (emulate_math.cpp; EMU_MATH_SEED picks the deviations, 0 makes them exact), and
// __CUDA_ARCH__ is defined, so device code paths (common/fastmath.h) are the ones emulated.
// What it cannot show: timing, bank conflicts, register pressure (scripts/check/check_kernel_resources.sh
// checks registers, spills and shared memory from ptxas at build time), races whose window holds no
// collective unless two host threads happen to interleave them, and any behavior the emulated PTX
// does not model (see common/ptx.cuh here).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

// Device code paths are the emulated ones (common/fastmath.h picks __expf and __fdividef by it).
#define __CUDA_ARCH__ 900
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
// __constant__ memory: an ordinary global, written with cudaMemcpyToSymbol below.
#define __constant__
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
// launches.py rewrites every static __shared__ array into emu_static_shared (one copy per block);
// a declaration it could not rewrite would be one copy shared by all blocks: refused here.
#define __shared__ static_assert(false, "a __shared__ declaration launches.py did not rewrite");

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    constexpr dim3() = default;
    constexpr dim3(unsigned a, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
// CUDA's vector types are aligned to their size: an access through a less aligned pointer faults.
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };

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
// The block's copy of the static __shared__ array declared at `tag` (filled with NaN bytes when the
// block's first thread reaches the declaration), between poisoned red zones.
void* static_shared(const void* tag, const char* name, size_t bytes, size_t align);
unsigned char* dynamic_smem();
// Warp vote: the lanes of this warp (those that exist and have not exited) whose pred is nonzero.
unsigned ballot(int pred);
// __syncthreads_count: a block barrier that also counts the threads whose pred is nonzero.
int syncthreads_count(int pred);
}   // namespace emu

// What launches.py makes of `__shared__ T name...;` (a static array or variable) and of
// `extern __shared__ T name[];` (the dynamic shared memory).
template <typename Array> static inline Array* emu_static_shared(const void* tag, const char* name, size_t align) {
    return static_cast<Array*>(emu::static_shared(tag, name, sizeof(Array), align > alignof(Array) ? align : alignof(Array)));
}
template <typename T> static inline T* emu_dynamic_shared() { return reinterpret_cast<T*>(emu::dynamic_smem()); }

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
template <typename T> static inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    int lane = emu::lane();
    return __shfl_sync(mask, v, (lane & (width - 1)) >= (int)delta ? lane - (int)delta : lane, width);
}
static inline unsigned __ballot_sync(unsigned, int pred) { return emu::ballot(pred); }
static inline int __any_sync(unsigned, int pred) { return emu::ballot(pred) != 0; }
static inline int __all_sync(unsigned, int pred) { return emu::ballot(!pred) == 0; }
static inline unsigned __activemask() { return emu::ballot(1); }
static inline int __syncthreads_count(int pred) { return emu::syncthreads_count(pred); }
static inline int __syncthreads_and(int pred) { return emu::syncthreads_count(!pred) == 0; }
static inline int __syncthreads_or(int pred) { return emu::syncthreads_count(pred) != 0; }
// Fences order memory between the host threads that run blocks at once (EMU_CONCURRENCY).
static inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ------------------------------------------------------------------------------------ atomics
// Atomic on the host too: blocks on several host threads (EMU_CONCURRENCY) add into one address
// without losing updates, as on the GPU (in an order that varies from run to run, as there).
template <typename T> static inline T emu_atomic_update(T* address, T (*op)(T, T), T value) {
    T old = __atomic_load_n(address, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(address, &old, op(old, value), false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {}
    return old;
}
template <typename F> static inline F emu_atomic_update_float(F* address, F (*op)(F, F), F value) {
    static_assert(sizeof(F) == 4 || sizeof(F) == 8, "float and double");
    typedef typename std::conditional<sizeof(F) == 4, uint32_t, uint64_t>::type Bits;
    Bits* bits = reinterpret_cast<Bits*>(address);
    Bits old = __atomic_load_n(bits, __ATOMIC_RELAXED), next;
    F was;
    do {
        memcpy(&was, &old, sizeof(F));
        const F now = op(was, value);
        memcpy(&next, &now, sizeof(F));
    } while (!__atomic_compare_exchange_n(bits, &old, next, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    return was;
}
template <typename T> struct emu_same {   // a parameter that takes T's type from the pointer (non-deduced)
    typedef T type;
};
template <typename T> static inline T emu_add(T a, T b) { return a + b; }
template <typename T> static inline T emu_max(T a, T b) { return a > b ? a : b; }
template <typename T> static inline T emu_min(T a, T b) { return a < b ? a : b; }
static inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline unsigned atomicAdd(unsigned* p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
static inline float atomicAdd(float* p, float v) { return emu_atomic_update_float<float>(p, emu_add<float>, v); }
static inline double atomicAdd(double* p, double v) { return emu_atomic_update_float<double>(p, emu_add<double>, v); }
static inline int atomicSub(int* p, int v) { return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST); }
static inline unsigned atomicSub(unsigned* p, unsigned v) { return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST); }
template <typename T> static inline T atomicMax(T* p, typename emu_same<T>::type v) { return emu_atomic_update<T>(p, emu_max<T>, v); }
template <typename T> static inline T atomicMin(T* p, typename emu_same<T>::type v) { return emu_atomic_update<T>(p, emu_min<T>, v); }
template <typename T> static inline T atomicExch(T* p, typename emu_same<T>::type v) {
    if constexpr (std::is_floating_point<T>::value) return emu_atomic_update_float<T>(p, [](T, T b) { return b; }, v);
    else return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
}
template <typename T>
static inline T atomicCAS(T* p, typename emu_same<T>::type compare, typename emu_same<T>::type value) {
    __atomic_compare_exchange_n(p, &compare, value, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return compare;
}
static inline unsigned atomicInc(unsigned* p, unsigned limit) {
    return emu_atomic_update<unsigned>(p, [](unsigned old, unsigned lim) { return old >= lim ? 0u : old + 1; }, limit);
}

// ------------------------------------------------------------------------------------ device math
// The CUDA C++ Programming Guide's bounds (appendix "Mathematical Functions": the single-precision
// standard functions' and intrinsic functions' tables), implemented in emulate_math.cpp. Each result
// is the exact value moved by a deviation within the bound that depends only on the arguments and
// EMU_MATH_SEED (so a kernel stays bitwise deterministic), biased to one side per function and seed
// (the worst case for sums). The intrinsics flush subnormal results to zero as the hardware does.
namespace emu {
float fast_exp(float x);          // __expf: 2 + floor(1.16 |x|) ulp (ex2.approx of x log2(e) rounded to float)
float fast_exp10(float x);        // __exp10f: 2 + floor(2.95 |x|) ulp
float fast_log(float x);          // __logf: 2^-21.41 absolute in [0.5, 2], else 3 ulp
float fast_log2(float x);         // __log2f: 2^-22 absolute in [0.5, 2], else 2 ulp
float fast_log10(float x);        // __log10f: 2^-24 absolute in [0.5, 2], else 3 ulp
float fast_sin(float x);          // __sinf: 2^-21.41 absolute in [-pi, pi] (no bound stated outside)
float fast_cos(float x);          // __cosf: likewise
float fast_pow(float x, float y); // __powf: ex2.approx(y lg2.approx(x))
float fast_divide(float x, float y);   // __fdividef: 2 ulp for |y| in [2^-126, 2^126], 0 above (NaN for x = inf)
float device_rsqrtf(float x);             // rsqrtf: 2 ulp
float device_expf(float x);               // expf: 2 ulp
float device_exp2f(float x);              // exp2f: 2 ulp
float device_exp10f(float x);             // exp10f: 2 ulp
float device_logf(float x);               // logf: 1 ulp
float device_log2f(float x);              // log2f: 1 ulp
float device_log10f(float x);             // log10f: 2 ulp
float device_sinf(float x);               // sinf: 2 ulp
float device_cosf(float x);               // cosf: 2 ulp
float device_tanhf(float x);              // tanhf: 2 ulp
float device_powf(float x, float y);      // powf: 4 ulp
float device_normcdff(float x);           // normcdff: 5 ulp
}   // namespace emu

// (glibc declares __expf and __logf itself, and the standard names: macros, after <cmath>.)
#define __expf emu::fast_exp
#define __exp10f emu::fast_exp10
#define __logf emu::fast_log
#define __log2f emu::fast_log2
#define __log10f emu::fast_log10
#define __sinf emu::fast_sin
#define __cosf emu::fast_cos
#define __powf emu::fast_pow
namespace emu {
static inline float fast_tan(float x) { return fast_divide(fast_sin(x), fast_cos(x)); }   // as documented
static inline void fast_sincos(float x, float* s, float* c) { *s = fast_sin(x), *c = fast_cos(x); }
}   // namespace emu
#define __tanf emu::fast_tan
#define __sincosf emu::fast_sincos
static inline float __fdividef(float a, float b) { return emu::fast_divide(a, b); }
static inline float rsqrtf(float x) { return emu::device_rsqrtf(x); }
#define expf emu::device_expf
#define exp2f emu::device_exp2f
#define exp10f emu::device_exp10f
#define logf emu::device_logf
#define log2f emu::device_log2f
#define log10f emu::device_log10f
#define sinf emu::device_sinf
#define cosf emu::device_cosf
#define tanhf emu::device_tanhf
#define powf emu::device_powf
#define normcdff emu::device_normcdff
// correctly rounded on the device (IEEE): exact here too
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fsqrt_rn(float x) { return sqrtf(x); }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __saturatef(float x) { return x != x ? 0.0f : x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
static inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; i++) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
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
// Pinned host memory: plain host memory here.
cudaError_t cudaMallocHost(void** ptr, size_t bytes);
cudaError_t cudaFreeHost(void* ptr);
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
// __constant__ variables are host globals here: the copies are plain copies.
template <typename T>
cudaError_t cudaMemcpyToSymbol(T& symbol, const void* src, size_t bytes, size_t offset = 0,
                               cudaMemcpyKind = cudaMemcpyHostToDevice) {
    if (offset + bytes > sizeof(T)) return cudaErrorInvalidValue;
    memcpy((unsigned char*)&symbol + offset, src, bytes);
    return cudaSuccess;
}
template <typename T>
cudaError_t cudaMemcpyFromSymbol(void* dst, const T& symbol, size_t bytes, size_t offset = 0,
                                 cudaMemcpyKind = cudaMemcpyDeviceToHost) {
    if (offset + bytes > sizeof(T)) return cudaErrorInvalidValue;
    memcpy(dst, (const unsigned char*)&symbol + offset, bytes);
    return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
// Streams with flags and events: everything already runs in order, so they order nothing more; an
// event's time is the host time of its cudaEventRecord.
#define cudaStreamNonBlocking 0x1
#define cudaEventDisableTiming 0x2
typedef struct emu_event* cudaEvent_t;
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags = 0);
template <typename T> cudaError_t cudaMallocAsync(T** ptr, size_t bytes, cudaStream_t stream) {
    return cudaMallocAsync((void**)ptr, bytes, stream);
}

namespace emu {
// Dynamic shared memory a kernel may use: 48 KiB unless raised by cudaFuncSetAttribute, which
// refuses more than SMEM_OPTIN; static and dynamic together at most SMEM_OPTIN (checked per block).
constexpr size_t SMEM_DEFAULT = 48 * 1024, SMEM_OPTIN = 163 * 1024;
void set_smem_limit(const void* kernel, size_t bytes);
size_t smem_limit(const void* kernel);
[[noreturn]] void fail_launch(const char* name, const char* file, int line, const char* why, size_t value);
// One kernel launch as launches.py writes it.
struct Launch {
    const char* name;   // the kernel as the launch names it
    const char* file;   // the launch site
    int line;
    dim3 grid, block;
    size_t smem_bytes, smem_limit;
    const std::function<void()>* body;
};
void run_grid(const Launch& launch);
}   // namespace emu
template <typename Kernel> cudaError_t cudaFuncSetAttribute(Kernel kernel, cudaFuncAttribute, int bytes) {
    emu::set_smem_limit((const void*)kernel, (size_t)bytes);
    return cudaSuccess;
}

// kernel<<<grid, block, smem>>>(args...) after launches.py: `call` calls the kernel by name.
template <typename Call>
void emu_launch(const void* kernel, const char* name, const char* file, int line, dim3 grid, dim3 block,
                size_t smem_bytes, Call call) {
    const size_t limit = emu::smem_limit(kernel);
    if (smem_bytes > limit)
        emu::fail_launch(name, file, line,
                         limit == emu::SMEM_DEFAULT ? "dynamic shared memory over 48 KiB without cudaFuncSetAttribute"
                                                    : "dynamic shared memory over the kernel's cudaFuncSetAttribute",
                         smem_bytes);
    const size_t threads = (size_t)block.x * block.y * block.z;
    if (threads > 1024) emu::fail_launch(name, file, line, "more than 1024 threads per block", threads);
    if (block.z > 64) emu::fail_launch(name, file, line, "block z over 64", block.z);
    if (grid.x > 2147483647u) emu::fail_launch(name, file, line, "grid x over 2^31 - 1", grid.x);
    if (grid.y > 65535 || grid.z > 65535)
        emu::fail_launch(name, file, line, "grid y or z over 65535", grid.y > 65535 ? grid.y : grid.z);
    const std::function<void()> body = call;
    emu::run_grid({name, file, line, grid, block, smem_bytes, limit, &body});
}
