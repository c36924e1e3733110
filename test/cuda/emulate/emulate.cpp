// The CPU emulation of the CUDA runtime (see cuda_runtime.h here): the block scheduler, warp
// collectives, cp.async groups and device memory.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <vector>

#include <csetjmp>
#include <sys/mman.h>
#include <ucontext.h>

#include "cuda_runtime.h"
#include "emulate.h"

namespace emu {
namespace {

struct Thread;

// Threads waiting at a barrier; the last to arrive makes them runnable again.
struct Barrier {
    std::vector<Thread*> waiting;
};

struct Thread {
    ucontext_t start;   // used once, to enter the kernel on this thread's stack
    jmp_buf resume;     // where it continues after a switch
    bool started = false, runnable = true, done = false;
    dim3 idx;
    int linear = 0;
    std::vector<std::vector<CopyOp>> committed;   // cp.async groups, oldest first
    std::vector<CopyOp> pending;                  // issued, not yet committed
};

struct Warp {
    Barrier barrier;
    int live = 0;
    unsigned char slots[32][32];   // what each lane puts in for a collective
};

struct Block {
    std::vector<void*> poisoned;   // the static __shared__ arrays already filled with NaN in this block
    dim3 idx, dim, grid;
    unsigned char* smem = nullptr;
    size_t smem_bytes = 0;
    Barrier barrier;
    int live = 0;
    std::vector<Warp> warps;
};

constexpr int MAX_THREADS = 1024;
constexpr size_t STACK_BYTES = 256 * 1024;

Thread threads[MAX_THREADS];
Thread* current = nullptr;
Block* block = nullptr;
ucontext_t scheduler_context;
jmp_buf scheduler;
const std::function<void()>* kernel_body = nullptr;

// Back to the scheduler; returns when the scheduler resumes this thread. _setjmp/_longjmp switch
// stacks without the signal-mask system call of swapcontext (the emulation's hot path).
void yield() {
    if (!_setjmp(current->resume)) _longjmp(scheduler, 1);
}

// Releases the waiters once `needed` threads (the live threads of the block or warp) have arrived.
void release_if_complete(Barrier& barrier, int needed) {
    if ((int)barrier.waiting.size() < needed) return;
    for (Thread* t : barrier.waiting) t->runnable = true;
    barrier.waiting.clear();
}

void arrive_and_wait(Barrier& barrier, int needed) {
    barrier.waiting.push_back(current);
    current->runnable = false;
    release_if_complete(barrier, needed);
    if (!current->runnable) yield();
}

Warp& warp_of(const Thread& t) { return block->warps[t.linear / 32]; }

[[noreturn]] void thread_main() {
    (*kernel_body)();
    if (!current->pending.empty() || !current->committed.empty()) {
        fprintf(stderr, "EMU: thread %d of block (%u,%u,%u) exits with cp.async copies not waited for\n",
                current->linear, block->idx.x, block->idx.y, block->idx.z);
        abort();
    }
    current->done = true;
    current->runnable = false;
    // a barrier others wait at may now be complete without this thread
    Warp& warp = warp_of(*current);
    release_if_complete(block->barrier, --block->live);
    release_if_complete(warp.barrier, --warp.live);
    _longjmp(scheduler, 1);
}

unsigned char* stack_of(int thread) {
    static unsigned char* stacks = nullptr;
    if (!stacks)
        stacks = (unsigned char*)mmap(nullptr, STACK_BYTES * MAX_THREADS, PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return stacks + STACK_BYTES * thread;
}

void switch_to(Thread& t) {
    current = &t;
    if (_setjmp(scheduler)) return;   // the thread yielded or finished
    if (t.started) _longjmp(t.resume, 1);
    t.started = true;
    swapcontext(&scheduler_context, &t.start);
}

// The schedules a block may run under, all legal on the hardware; each one exposes other missing
// synchronization:
//  FORWARD, REVERSE  every runnable thread in turn, in thread order or reversed: a shared-memory
//                    read lacking the barrier after another thread's write sees the old bytes
//                    in one of the two orders.
//  WARP_SERIAL       each warp runs as far as it can (to a block barrier or its end) before the next
//                    starts: a warp that reads a tile other warps load, without the barrier
//                    between their cp.async wait and its read, sees their copies missing.
//  WARP_SERIAL_EAGER the same with cp.async copies landing at once: a prefetch that overwrites a
//                    tile other warps still read, without the barrier between, is caught.
// Every other schedule leaves cp.async copies in flight until the wait that retires them.
enum Schedule { FORWARD, REVERSE, WARP_SERIAL, WARP_SERIAL_EAGER, NUM_SCHEDULES };
Schedule schedule = FORWARD;

// Resumes the runnable threads among first .. first + count - 1 once each; whether any ran.
bool sweep(int first, int count, bool reverse) {
    bool ran = false;
    for (int k = 0; k < count; k++) {
        Thread& t = threads[first + (reverse ? count - 1 - k : k)];
        if (!t.runnable) continue;
        switch_to(t);
        ran = true;
    }
    return ran;
}

void run_block(Block& b, int n) {
    block = &b;
    for (int i = 0; i < n; i++) {
        Thread& t = threads[i];
        t.linear = i;
        t.idx = dim3(i % b.dim.x, i / b.dim.x % b.dim.y, i / (b.dim.x * b.dim.y));
        t.started = false;
        t.runnable = true;
        t.done = false;
        t.committed.clear();
        t.pending.clear();
        getcontext(&t.start);
        t.start.uc_stack.ss_sp = stack_of(i);
        t.start.uc_stack.ss_size = STACK_BYTES;
        t.start.uc_link = nullptr;
        makecontext(&t.start, (void (*)())thread_main, 0);
    }
    while (b.live > 0) {
        bool ran = false;
        if (schedule == FORWARD || schedule == REVERSE) {
            ran = sweep(0, n, schedule == REVERSE);
        } else {
            for (int first = 0; first < n; first += 32)
                while (sweep(first, n - first < 32 ? n - first : 32, false)) ran = true;
        }
        if (!ran) {
            fprintf(stderr, "EMU: deadlock in block (%u,%u,%u): %d threads wait at a barrier that not all reach\n",
                    b.idx.x, b.idx.y, b.idx.z, b.live);
            abort();
        }
    }
    current = nullptr;
    block = nullptr;
}

void land(const CopyOp& op) {
    if (op.valid) memcpy(op.dst, op.src, op.bytes);
    else memset(op.dst, 0, op.bytes);
}

}   // namespace

const dim3& thread_idx() { return current->idx; }
const dim3& block_idx() { return block->idx; }
const dim3& block_dim() { return block->dim; }
const dim3& grid_dim() { return block->grid; }
int lane() { return current->linear % 32; }
void syncthreads() { arrive_and_wait(block->barrier, block->live); }
void syncwarp() { arrive_and_wait(warp_of(*current).barrier, warp_of(*current).live); }

const unsigned char (*warp_put(const void* mine, size_t bytes))[32] {
    if (bytes > 32) abort();
    Warp& w = warp_of(*current);
    memcpy(w.slots[lane()], mine, bytes);
    syncwarp();
    return w.slots;
}

void warp_done() {
    syncwarp();
    memset(warp_of(*current).slots[lane()], 0xFF, 32);   // a lane that left reads as NaN
}

void exchange(const void* mine, size_t bytes, int src_lane, void* out) {
    memcpy(out, warp_put(mine, bytes)[src_lane & 31], bytes);
    warp_done();
}

unsigned char* dynamic_smem() { return block->smem; }

void check_shared(const void* p, size_t bytes, size_t align) {
    const unsigned char* c = (const unsigned char*)p;
    if (c < block->smem || c + bytes > block->smem + block->smem_bytes || (uintptr_t)p % align) {
        fprintf(stderr, "EMU: bad shared memory access %p (+%zu, alignment %zu); dynamic shared memory is %p..+%zu\n",
                p, bytes, align, (void*)block->smem, block->smem_bytes);
        abort();
    }
}

void cp_async(void* smem, const void* gmem, int bytes, bool valid) {
    check_shared(smem, (size_t)bytes, (size_t)bytes);
    if ((uintptr_t)gmem % bytes) {
        fprintf(stderr, "EMU: cp.async of %d bytes from misaligned global address %p\n", bytes, gmem);
        abort();
    }
    if (schedule == WARP_SERIAL_EAGER) land({smem, gmem, bytes, valid});
    else current->pending.push_back({smem, gmem, bytes, valid});
}

void cp_async_commit() {
    current->committed.push_back(current->pending);
    current->pending.clear();
}

// The copies land when waited for, not before: a read of the tile before the wait sees the old bytes.
void cp_async_wait(int groups_in_flight) {
    auto& groups = current->committed;
    while ((int)groups.size() > groups_in_flight) {
        for (const CopyOp& op : groups.front()) land(op);
        groups.erase(groups.begin());
    }
}

// ------------------------------------------------------------------------------------ launches
namespace {
std::map<const void*, size_t>& smem_limits() {
    static std::map<const void*, size_t> limits;
    return limits;
}
long launches = 0;
}   // namespace

void set_smem_limit(const void* kernel, size_t bytes) {
    if (bytes > 227 * 1024) fail_launch("cudaFuncSetAttribute: dynamic shared memory over 227 KiB", bytes);
    smem_limits()[kernel] = bytes;
}

size_t smem_limit(const void* kernel) {
    auto it = smem_limits().find(kernel);
    return it == smem_limits().end() ? 48 * 1024 : it->second;
}

void fail_launch(const char* why, size_t value) {
    fprintf(stderr, "EMU: kernel launch refused: %s (%zu)\n", why, value);
    abort();
}

void run_grid(dim3 grid, dim3 dim, size_t smem_bytes, const std::function<void()>& body) {
    int n = (int)(dim.x * dim.y * dim.z);
    if (n == 0 || grid.x * grid.y * grid.z == 0) fail_launch("empty grid or block", 0);
    kernel_body = &body;
    launches++;
    std::vector<unsigned char> smem(smem_bytes + 16);
    // Blocks in order on even launches, in reverse on odd ones: two blocks adding into one global
    // address (a race on a GPU) then sum in another order, and the kernels that promise bitwise
    // determinism fail their run-twice checks.
    const long blocks = (long)grid.x * grid.y * grid.z;
    for (long k = 0; k < blocks; k++) {
        const long i = launches % 2 ? blocks - 1 - k : k;
        const unsigned x = (unsigned)(i % grid.x), y = (unsigned)(i / grid.x % grid.y), z = (unsigned)(i / grid.x / grid.y);
        Block b;
        b.idx = dim3(x, y, z);
        b.dim = dim;
        b.grid = grid;
        b.smem = (unsigned char*)(((uintptr_t)smem.data() + 15) & ~(uintptr_t)15);
        b.smem_bytes = smem_bytes;
        memset(b.smem, 0xFF, smem_bytes);
        b.live = n;
        b.warps.resize((n + 31) / 32);
        for (int w = 0; w < (int)b.warps.size(); w++) b.warps[w].live = n - 32 * w < 32 ? n - 32 * w : 32;
        // the schedule rotates over blocks and launches, so every kernel meets each one
        schedule = (Schedule)((i + launches) % NUM_SCHEDULES);
        run_block(b, n);
    }
}

long launch_count() { return launches; }

}   // namespace emu

// The first thread of a block to reach the declaration fills the array; the others find it done.
void emu_poison_shared(void* array, size_t bytes) {
    std::vector<void*>& done = emu::block->poisoned;
    for (void* p : done)
        if (p == array) return;
    done.push_back(array);
    memset(array, 0xFF, bytes);
}

// ------------------------------------------------------------------------------------ device memory
namespace {
struct Mapping {
    unsigned char* base;
    size_t span;
};
std::map<void*, Mapping>& allocations() {
    static std::map<void*, Mapping> m;
    return m;
}
size_t allocated_bytes = 0;
constexpr size_t DEVICE_BYTES = (size_t)16 << 30;   // what cudaMemGetInfo reports as total
cudaError_t last_error = cudaSuccess;
}   // namespace

// Each allocation ends 16-byte aligned right before an unmapped page; it starts filled with 0xFF.
cudaError_t cudaMalloc(void** ptr, size_t bytes) {
    const size_t page = 4096, used = (bytes + 15) / 16 * 16, span = (used + page - 1) / page * page + page;
    if (allocated_bytes + used > DEVICE_BYTES) return last_error = cudaErrorMemoryAllocation;
    void* m = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return last_error = cudaErrorMemoryAllocation;
    unsigned char* base = (unsigned char*)m;
    mprotect(base + span - page, page, PROT_NONE);
    *ptr = base + span - page - used;
    memset(*ptr, 0xFF, used);
    allocations()[*ptr] = {base, span};
    allocated_bytes += used;
    return cudaSuccess;
}

cudaError_t cudaMallocAsync(void** ptr, size_t bytes, cudaStream_t) { return cudaMalloc(ptr, bytes); }

// Freed memory stays reserved and unreadable, so a use after free faults.
cudaError_t cudaFree(void* ptr) {
    if (!ptr) return cudaSuccess;
    auto it = allocations().find(ptr);
    if (it == allocations().end()) {
        fprintf(stderr, "EMU: cudaFree of %p, which cudaMalloc did not return\n", ptr);
        abort();
    }
    const Mapping& m = it->second;
    allocated_bytes -= (m.base + m.span - 4096) - (unsigned char*)ptr;
    madvise(m.base, m.span, MADV_DONTNEED);
    mprotect(m.base, m.span, PROT_NONE);
    allocations().erase(it);
    return cudaSuccess;
}

cudaError_t cudaFreeAsync(void* ptr, cudaStream_t) { return cudaFree(ptr); }
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
    memmove(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
    return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* ptr, int value, size_t bytes) {
    memset(ptr, value, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t) { return cudaMemset(ptr, value, bytes); }
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int device) {
    if (device != 0) return last_error = cudaErrorInvalidValue;
    *pool = (cudaMemPool_t)&allocated_bytes;
    return cudaSuccess;
}
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value) {
    return pool && value && attr == cudaMemPoolAttrReleaseThreshold ? cudaSuccess : (last_error = cudaErrorInvalidValue);
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
    *free_bytes = DEVICE_BYTES - allocated_bytes;
    *total_bytes = DEVICE_BYTES;
    return cudaSuccess;
}

// ------------------------------------------------------------------------------------ device and errors
cudaError_t cudaGetDeviceCount(int* count) {
    *count = 1;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
    *device = 0;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidValue; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int) {
    memset(prop, 0, sizeof(*prop));
    snprintf(prop->name, sizeof(prop->name), "CPU emulation");
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = 132;
    prop->totalGlobalMem = DEVICE_BYTES;
    prop->sharedMemPerBlockOptin = 227 * 1024;
    return cudaSuccess;
}
cudaError_t cudaGetLastError(void) {
    cudaError_t err = last_error;
    last_error = cudaSuccess;
    return err;
}
const char* cudaGetErrorString(cudaError_t err) {
    switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    }
    return "unknown error";
}
