// The CPU emulation of the CUDA runtime (see cuda_runtime.h here): the block scheduler, warp
// collectives, cp.async groups, shared and device memory, and the reports of the sanitizer checks.
// This file itself is compiled without sanitizers; it poisons and unpoisons memory through
// AddressSanitizer's interface, which test_cuda_emu links (weak: without it, only the guard pages
// and the NaN fill remain).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <sys/mman.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include "cuda_runtime.h"
#include "emulate.h"

extern "C" {
void __asan_poison_memory_region(void const volatile* addr, size_t size) __attribute__((weak));
void __asan_unpoison_memory_region(void const volatile* addr, size_t size) __attribute__((weak));
void* __asan_region_is_poisoned(void* begin, size_t size) __attribute__((weak));
int __asan_report_present(void) __attribute__((weak));
void* __asan_get_report_address(void) __attribute__((weak));
int __asan_get_report_access_type(void) __attribute__((weak));
size_t __asan_get_report_access_size(void) __attribute__((weak));
}

namespace emu {
namespace {

void poison(const void* p, size_t bytes) {
    if (__asan_poison_memory_region && bytes) __asan_poison_memory_region(p, bytes);
}
void unpoison(const void* p, size_t bytes) {
    if (__asan_unpoison_memory_region && bytes) __asan_unpoison_memory_region(p, bytes);
}

constexpr size_t PAGE = 4096;
unsigned char* map_with_guards(size_t bytes, int extra_flags = 0) {   // bytes (page multiple) between two unmapped pages
    void* m = mmap(nullptr, bytes + 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
    if (m == MAP_FAILED) {
        perror("EMU: mmap");
        abort();
    }
    unsigned char* base = (unsigned char*)m;
    mprotect(base, PAGE, PROT_NONE);
    mprotect(base + PAGE + bytes, PAGE, PROT_NONE);
    return base + PAGE;
}

// ------------------------------------------------------------------------------------ coroutines
// A thread of a block runs on a stack of its own; switching saves the callee-saved registers and
// the stack pointer (x86-64: a few instructions, no system call, none of setjmp's signal or
// unwinding work; elsewhere ucontext).
#if defined(__x86_64__)
extern "C" void emu_switch_stack(void** save_sp, void* new_sp);
asm(R"(
    .text
    .p2align 4
    .type emu_switch_stack, @function
emu_switch_stack:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $16, %rsp
    stmxcsr 8(%rsp)
    fnstcw (%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    fldcw (%rsp)
    ldmxcsr 8(%rsp)
    addq $16, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch_stack, .-emu_switch_stack
)");
struct Context {
    void* sp = nullptr;
};
inline void context_switch(Context& from, Context& to) { emu_switch_stack(&from.sp, to.sp); }
// The stack as emu_switch_stack leaves it, so that switching to it "returns" into entry with the
// stack aligned as after a call.
void context_init(Context& c, unsigned char* stack, size_t bytes, void (*entry)()) {
    uint64_t* sp = (uint64_t*)(((uintptr_t)(stack + bytes) & ~(uintptr_t)15) - 80);
    uint32_t mxcsr;
    uint16_t fcw;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(fcw));
    memset(sp, 0, 80);
    memcpy(&sp[0], &fcw, sizeof(fcw));
    memcpy(&sp[1], &mxcsr, sizeof(mxcsr));
    sp[8] = (uint64_t)(uintptr_t)entry;
    c.sp = sp;
}
#else
struct Context {
    ucontext_t uc;
};
inline void context_switch(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
void context_init(Context& c, unsigned char* stack, size_t bytes, void (*entry)()) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = bytes;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, entry, 0);
}
#endif

struct Thread;

// Threads waiting at a barrier; the last to arrive makes them runnable again. tally: the count of
// __syncthreads_count, kept per generation (even, odd) so that a count is read after its barrier
// while the next one is already being gathered.
struct Barrier {
    std::vector<Thread*> waiting;
    long generation = 0;
    int tally[2] = {0, 0};
};

struct Thread {
    Context context;
    bool runnable = true, done = false;
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

struct StaticArray {
    const void* tag;
    const char* name;
    unsigned char* at;
    size_t bytes;
};

struct Block {
    dim3 idx;
    unsigned char* smem = nullptr;   // the dynamic shared memory
    size_t smem_bytes = 0;
    std::vector<StaticArray> statics;   // the static __shared__ arrays reached so far
    size_t static_bytes = 0;
    size_t arena_end = 0;               // arena bytes handed out (dynamic, static, red zones)
    Barrier barrier;
    int live = 0;
    std::vector<Warp> warps;
};

constexpr int MAX_THREADS = 1024;
constexpr size_t STACK_BYTES = 256 * 1024;
// Shared memory: a red zone, the dynamic shared memory, then each static array after a red zone.
constexpr size_t SMEM_RED_ZONE = 256, STATIC_RED_ZONE = 64, ARENA_BYTES = 512 * 1024;

enum Schedule { FORWARD, REVERSE, WARP_SERIAL, WARP_SERIAL_EAGER, NUM_SCHEDULES };

// One host thread's scheduler: the blocks it runs, one at a time, and their threads.
struct Worker {
    Thread threads[MAX_THREADS];
    Thread* current = nullptr;
    Block* block = nullptr;
    const Launch* launch = nullptr;
    Context scheduler;
    Schedule schedule = FORWARD;
    unsigned char* stacks = nullptr;   // MAX_THREADS stacks, each above an unmapped page
    unsigned char* arena = nullptr;    // the shared memory of the running block, between unmapped pages

    Worker() {
        stacks = map_with_guards(STACK_BYTES * MAX_THREADS, MAP_NORESERVE);
        for (int i = 1; i < MAX_THREADS; i++) mprotect(stacks + STACK_BYTES * i, PAGE, PROT_NONE);
        arena = map_with_guards(ARENA_BYTES);
        poison(arena, ARENA_BYTES);
    }
};

thread_local Worker* me = nullptr;
Worker& worker() {
    if (!me) me = new Worker();   // one per host thread, kept for the process
    return *me;
}

// ------------------------------------------------------------------------------------ reports
// "kernel K (launched at F:L), block (x,y,z), thread (x,y,z)", or "host code" outside a kernel.
void print_context(FILE* out) {
    Worker* w = me;
    if (!w || !w->block || !w->launch) {
        fprintf(out, "host code");
        return;
    }
    fprintf(out, "kernel %s (launched at %s:%d), block (%u,%u,%u)", w->launch->name, w->launch->file,
            w->launch->line, w->block->idx.x, w->block->idx.y, w->block->idx.z);
    if (w->current) fprintf(out, ", thread (%u,%u,%u)", w->current->idx.x, w->current->idx.y, w->current->idx.z);
}

[[noreturn]] void fail(const char* format, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] void fail(const char* format, ...) {
    fflush(stdout);
    fprintf(stderr, "EMU: ");
    va_list args;
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fprintf(stderr, " in ");
    print_context(stderr);
    fprintf(stderr, "\n");
    abort();
}

// ------------------------------------------------------------------------------------ scheduling

// Back to the scheduler; returns when the scheduler resumes this thread.
inline void yield() {
    Worker& w = *me;
    context_switch(w.current->context, w.scheduler);
}

// Releases the waiters once `needed` threads (the live threads of the block or warp) have arrived.
void release_if_complete(Barrier& barrier, int needed) {
    if ((int)barrier.waiting.size() < needed) return;
    for (Thread* t : barrier.waiting) t->runnable = true;
    barrier.waiting.clear();
    barrier.generation++;
    barrier.tally[barrier.generation % 2] = 0;   // every reader of this slot has passed this barrier
}

void arrive_and_wait(Barrier& barrier, int needed) {
    Thread* current = me->current;
    barrier.waiting.push_back(current);
    current->runnable = false;
    release_if_complete(barrier, needed);
    if (!current->runnable) yield();
}

inline Warp& warp_of(Worker& w, const Thread& t) { return w.block->warps[t.linear / 32]; }

[[noreturn]] void thread_main() {
    Worker& w = *me;
    (*w.launch->body)();
    Thread* t = w.current;
    if (!t->pending.empty() || !t->committed.empty()) fail("thread exits with cp.async copies not waited for");
    t->done = true;
    t->runnable = false;
    // a barrier others wait at may now be complete without this thread
    Warp& warp = warp_of(w, *t);
    release_if_complete(w.block->barrier, --w.block->live);
    release_if_complete(warp.barrier, --warp.live);
    context_switch(t->context, w.scheduler);
    abort();   // never resumed
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

// Resumes the runnable threads among first .. first + count - 1 once each; whether any ran.
bool sweep(Worker& w, int first, int count, bool reverse) {
    bool ran = false;
    for (int k = 0; k < count; k++) {
        Thread& t = w.threads[first + (reverse ? count - 1 - k : k)];
        if (!t.runnable) continue;
        w.current = &t;
        context_switch(w.scheduler, t.context);
        ran = true;
    }
    w.current = nullptr;
    return ran;
}

void run_block(Worker& w, Block& b, int n) {
    const dim3 dim = w.launch->block;
    for (int i = 0; i < n; i++) {
        Thread& t = w.threads[i];
        t.linear = i;
        t.idx = dim3(i % dim.x, i / dim.x % dim.y, i / (dim.x * dim.y));
        t.runnable = true;
        t.done = false;
        t.committed.clear();
        t.pending.clear();
        context_init(t.context, w.stacks + STACK_BYTES * i + (i ? PAGE : 0), STACK_BYTES - (i ? PAGE : 0),
                     thread_main);
    }
    while (b.live > 0) {
        bool ran = false;
        if (w.schedule == FORWARD || w.schedule == REVERSE) {
            ran = sweep(w, 0, n, w.schedule == REVERSE);
        } else {
            for (int first = 0; first < n; first += 32)
                while (sweep(w, first, n - first < 32 ? n - first : 32, false)) ran = true;
        }
        if (!ran) fail("deadlock: %d threads wait at a barrier that not all reach", b.live);
    }
}

// Block i of the launch on this host thread, in its shared-memory arena.
void run_block_at(Worker& w, const Launch& launch, long i, long launch_number) {
    const dim3 grid = launch.grid, dim = launch.block;
    const int n = (int)(dim.x * dim.y * dim.z);
    Block b;
    b.idx = dim3((unsigned)(i % grid.x), (unsigned)(i / grid.x % grid.y), (unsigned)(i / grid.x / grid.y));
    b.smem = w.arena + SMEM_RED_ZONE;
    b.smem_bytes = launch.smem_bytes;
    b.arena_end = SMEM_RED_ZONE + (launch.smem_bytes + 15) / 16 * 16;
    unpoison(b.smem, b.smem_bytes);
    memset(b.smem, 0xFF, b.smem_bytes);
    b.live = n;
    b.warps.resize((n + 31) / 32);
    for (int k = 0; k < (int)b.warps.size(); k++) b.warps[k].live = n - 32 * k < 32 ? n - 32 * k : 32;
    // the schedule rotates over blocks and launches, so every kernel meets each one
    w.schedule = (Schedule)((i + launch_number) % NUM_SCHEDULES);
    w.launch = &launch;
    w.block = &b;
    run_block(w, b, n);
    poison(w.arena, b.arena_end);
    w.block = nullptr;
    w.launch = nullptr;
}

void land(const CopyOp& op) {
    if (op.valid) memcpy(op.dst, op.src, op.bytes);
    else memset(op.dst, 0, op.bytes);
}

// Where p lies in the block's shared memory: the region (dynamic, or a static array) holding
// [p, p + bytes), else null; `nearest` names the closest region for a report.
struct SharedRegion {
    const char* name;
    const unsigned char* at;
    size_t bytes;
};
bool find_shared(const Block& b, const void* p, size_t bytes, SharedRegion* nearest) {
    const unsigned char* c = (const unsigned char*)p;
    SharedRegion best = {"the dynamic shared memory", b.smem, b.smem_bytes};
    auto distance = [&](const SharedRegion& r) {
        return c < r.at ? (size_t)(r.at - c) : c + bytes > r.at + r.bytes ? (size_t)(c + bytes - (r.at + r.bytes)) : 0;
    };
    for (const StaticArray& s : b.statics) {
        SharedRegion r = {s.name, s.at, s.bytes};
        if (distance(r) < distance(best)) best = r;
    }
    if (nearest) *nearest = best;
    return distance(best) == 0;
}

}   // namespace

const dim3& thread_idx() { return me->current->idx; }
const dim3& block_idx() { return me->block->idx; }
const dim3& block_dim() { return me->launch->block; }
const dim3& grid_dim() { return me->launch->grid; }
int lane() { return me->current->linear % 32; }
void syncthreads() { arrive_and_wait(me->block->barrier, me->block->live); }
void syncwarp() {
    Warp& warp = warp_of(*me, *me->current);
    arrive_and_wait(warp.barrier, warp.live);
}

const unsigned char (*warp_put(const void* mine, size_t bytes))[32] {
    if (bytes > 32) abort();
    Warp& w = warp_of(*me, *me->current);
    memcpy(w.slots[lane()], mine, bytes);
    syncwarp();
    return w.slots;
}

unsigned ballot(int pred) {
    Worker& w = *me;
    const int first = w.current->linear & ~31, n = (int)(w.launch->block.x * w.launch->block.y * w.launch->block.z);
    const int mine = pred != 0;
    const unsigned char(*slots)[32] = warp_put(&mine, sizeof(mine));
    unsigned mask = 0;
    for (int l = 0; l < 32 && first + l < n; l++) {
        int p;
        memcpy(&p, slots[l], sizeof(p));
        if (p && !w.threads[first + l].done) mask |= 1u << l;
    }
    warp_done();
    return mask;
}

int syncthreads_count(int pred) {
    Barrier& barrier = me->block->barrier;
    int* tally = &barrier.tally[barrier.generation % 2];
    *tally += pred != 0;
    syncthreads();
    return *tally;
}

void warp_done() {
    syncwarp();
    memset(warp_of(*me, *me->current).slots[lane()], 0xFF, 32);   // a lane that left reads as NaN
}

void exchange(const void* mine, size_t bytes, int src_lane, void* out) {
    memcpy(out, warp_put(mine, bytes)[src_lane & 31], bytes);
    warp_done();
}

unsigned char* dynamic_smem() { return me->block->smem; }

void check_shared(const void* p, size_t bytes, size_t align, const char* what) {
    SharedRegion r;
    if (!find_shared(*me->block, p, bytes, &r))
        fail("%s %p (%zu bytes) outside shared memory: offset %td of %s (%zu bytes)", what, p, bytes,
             (const unsigned char*)p - r.at, r.name, r.bytes);
    if ((uintptr_t)p % align) fail("%s %p not %zu-byte aligned", what, p, align);
}

void* static_shared(const void* tag, const char* name, size_t bytes, size_t align) {
    Worker& w = *me;
    Block& b = *w.block;
    for (const StaticArray& s : b.statics)
        if (s.tag == tag) return s.at;
    b.static_bytes += bytes;
    if (b.static_bytes > SMEM_DEFAULT) fail("static __shared__ arrays over 48 KiB (%zu bytes)", b.static_bytes);
    if (b.static_bytes + b.smem_bytes > SMEM_OPTIN)
        fail("static (%zu bytes) and dynamic (%zu bytes) shared memory over sm_80's 163 KiB", b.static_bytes,
             b.smem_bytes);
    if (b.static_bytes + b.smem_bytes > SMEM_DEFAULT && w.launch->smem_limit == SMEM_DEFAULT)
        fail("static (%zu bytes) and dynamic (%zu bytes) shared memory over 48 KiB without cudaFuncSetAttribute",
             b.static_bytes, b.smem_bytes);
    if (align < 16) align = 16;
    size_t at = (b.arena_end + STATIC_RED_ZONE + align - 1) / align * align;
    if (at + bytes + STATIC_RED_ZONE > ARENA_BYTES) fail("shared-memory arena full");
    unsigned char* p = w.arena + at;
    b.arena_end = at + bytes;
    unpoison(p, bytes);
    memset(p, 0xFF, bytes);
    b.statics.push_back({tag, name, p, bytes});
    return p;
}

void cp_async(void* smem, const void* gmem, int bytes, bool valid) {
    check_shared(smem, (size_t)bytes, (size_t)bytes, "cp.async destination");
    if ((uintptr_t)gmem % bytes) fail("cp.async of %d bytes from misaligned global address %p", bytes, gmem);
    if (valid && __asan_region_is_poisoned && __asan_region_is_poisoned(const_cast<void*>(gmem), (size_t)bytes))
        fail("cp.async of %d bytes from %p, outside device memory", bytes, gmem);
    if (me->schedule == WARP_SERIAL_EAGER) land({smem, gmem, bytes, valid});
    else me->current->pending.push_back({smem, gmem, bytes, valid});
}

void cp_async_commit() {
    Thread* t = me->current;
    t->committed.push_back(t->pending);
    t->pending.clear();
}

// The copies land when waited for, not before: a read of the tile before the wait sees the old bytes.
void cp_async_wait(int groups_in_flight) {
    auto& groups = me->current->committed;
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

// EMU_CONCURRENCY=N: the blocks of each launch on N host threads (this one and N - 1 others).
int clamp_threads(int n) { return n < 1 ? 1 : n > 64 ? 64 : n; }
int threads_per_launch = [] {
    const char* s = getenv("EMU_CONCURRENCY");
    return clamp_threads(s ? atoi(s) : 1);
}();
int concurrency() { return threads_per_launch; }

// The host threads that run blocks besides the launching one, waiting for the next launch.
struct Pool {
    std::mutex mutex;
    std::condition_variable wake, finished;
    long generation = 0;
    int busy = 0;
    const Launch* launch = nullptr;
    long blocks = 0, launch_number = 0;
    std::atomic<long> next{0};

    // Runs blocks of the current launch until none is left, in the order of run_grid.
    void work() {
        Worker& w = worker();
        for (long k; (k = next.fetch_add(1)) < blocks;)
            run_block_at(w, *launch, launch_number % 2 ? blocks - 1 - k : k, launch_number);
    }

    void serve() {
        long seen = 0;
        for (;;) {
            {
                std::unique_lock<std::mutex> lock(mutex);
                wake.wait(lock, [&] { return generation != seen; });
                seen = generation;
            }
            work();
            std::lock_guard<std::mutex> lock(mutex);
            if (--busy == 0) finished.notify_one();
        }
    }

    // Every helper takes part in every launch (those that find no block left just report back).
    void run(const Launch& l, long n, long number, int threads) {
        while ((int)helpers.size() < threads - 1) helpers.emplace_back([this] { serve(); }).detach();
        {
            std::lock_guard<std::mutex> lock(mutex);
            launch = &l;
            blocks = n;
            launch_number = number;
            next = 0;
            busy = (int)helpers.size();
            generation++;
        }
        wake.notify_all();
        work();
        std::unique_lock<std::mutex> lock(mutex);
        finished.wait(lock, [&] { return busy == 0; });
        launch = nullptr;
    }

    std::vector<std::thread> helpers;
};
}   // namespace

// Host threads driving different emulated devices (EMU_DEVICES) take turns: one launch, allocation or
// free at a time, as if each device's stream ran while the others waited.
std::recursive_mutex& device_lock() {
    static std::recursive_mutex m;
    return m;
}

void set_concurrency(int threads) { threads_per_launch = clamp_threads(threads); }

void set_smem_limit(const void* kernel, size_t bytes) {
    std::lock_guard<std::recursive_mutex> lock(device_lock());
    if (bytes > SMEM_OPTIN)
        fail("cudaFuncSetAttribute: dynamic shared memory of %zu bytes over sm_80's opt-in limit of 163 KiB", bytes);
    smem_limits()[kernel] = bytes;
}

size_t smem_limit(const void* kernel) {
    std::lock_guard<std::recursive_mutex> lock(device_lock());
    auto it = smem_limits().find(kernel);
    return it == smem_limits().end() ? SMEM_DEFAULT : it->second;
}

void fail_launch(const char* name, const char* file, int line, const char* why, size_t value) {
    fflush(stdout);
    fprintf(stderr, "EMU: launch of kernel %s at %s:%d refused: %s (%zu)\n", name, file, line, why, value);
    abort();
}

// Blocks in order on even launches, in reverse on odd ones: two blocks adding into one global address
// (a race on a GPU) then sum in another order, and the run-twice determinism checks fail; with
// EMU_CONCURRENCY=N > 1, N host threads take the blocks in that order, and such blocks race for real.
void run_grid(const Launch& launch) {
    std::lock_guard<std::recursive_mutex> lock(device_lock());
    const long blocks = (long)launch.grid.x * launch.grid.y * launch.grid.z;
    if (blocks == 0 || launch.block.x * launch.block.y * launch.block.z == 0)
        fail_launch(launch.name, launch.file, launch.line, "empty grid or block", 0);
    launches++;
    if (concurrency() == 1 || blocks == 1) {
        for (long k = 0; k < blocks; k++) run_block_at(worker(), launch, launches % 2 ? blocks - 1 - k : k, launches);
        return;
    }
    static Pool* pool = new Pool();   // never destroyed: its threads wait for launches until the process ends
    pool->run(launch, blocks, launches, concurrency());
}

}   // namespace emu

// ------------------------------------------------------------------------------------ device memory
namespace {
struct Mapping {
    int device;            // the emulated device it was allocated on
    unsigned char* data;   // the first data page (an unmapped page before it)
    size_t span;           // data pages (an unmapped page after them)
    size_t bytes;          // what was asked for
};
std::map<void*, Mapping>& allocations() {
    static std::map<void*, Mapping> m;
    return m;
}
std::map<void*, Mapping>& freed() {   // never reused
    static std::map<void*, Mapping> m;
    return m;
}
// EMU_DEVICES=N (1 to 8, default 1): the devices cudaGetDeviceCount reports, each with its own
// memory total; cudaSetDevice picks the calling host thread's device, as on a GPU.
constexpr int MAX_EMU_DEVICES = 8;
const int device_count = [] {
    const char* s = getenv("EMU_DEVICES");
    int n = s ? atoi(s) : 1;
    return n < 1 ? 1 : n > MAX_EMU_DEVICES ? MAX_EMU_DEVICES : n;
}();
thread_local int current_device = 0;
size_t allocated_bytes[MAX_EMU_DEVICES] = {0};
constexpr size_t DEVICE_BYTES = (size_t)16 << 30;   // what cudaMemGetInfo reports as total
thread_local cudaError_t last_error = cudaSuccess;

// The allocation [p, p + bytes) touches, or the nearest one, as "offset O of a B-byte allocation at P".
void describe_device(FILE* out, const void* p) {
    const unsigned char* c = (const unsigned char*)p;
    for (const auto* list : {&allocations(), &freed()}) {
        for (const auto& [ptr, m] : *list) {
            if (c >= m.data - emu::PAGE && c < m.data + m.span + emu::PAGE) {
                fprintf(out, "offset %td of a %s%zu-byte device allocation at %p", c - (const unsigned char*)ptr,
                        list == &freed() ? "freed " : "", m.bytes, ptr);
                return;
            }
        }
    }
    fprintf(out, "not device memory");
}
}   // namespace

// Each allocation ends 16-byte aligned right before an unmapped page, with an unmapped page before
// its first page too; the bytes around it on its pages are poisoned. It starts filled with 0xFF.
cudaError_t cudaMalloc(void** ptr, size_t bytes) {
    std::lock_guard<std::recursive_mutex> lock(emu::device_lock());
    const size_t used = (bytes + 15) / 16 * 16, span = (used + emu::PAGE - 1) / emu::PAGE * emu::PAGE + emu::PAGE;
    if (allocated_bytes[current_device] + used > DEVICE_BYTES) return last_error = cudaErrorMemoryAllocation;
    void* m = mmap(nullptr, span + 2 * emu::PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return last_error = cudaErrorMemoryAllocation;
    unsigned char* data = (unsigned char*)m + emu::PAGE;
    mprotect(m, emu::PAGE, PROT_NONE);
    mprotect(data + span, emu::PAGE, PROT_NONE);
    unsigned char* p = data + span - used;
    memset(data, 0xFF, span);   // the padding too, for code the sanitizer does not see
    emu::poison(data, p - data);
    emu::poison(p + bytes, used - bytes);
    *ptr = p;
    allocations()[p] = {current_device, data, span, bytes};
    allocated_bytes[current_device] += used;
    return cudaSuccess;
}

cudaError_t cudaMallocAsync(void** ptr, size_t bytes, cudaStream_t) { return cudaMalloc(ptr, bytes); }

// Freed memory stays reserved, poisoned and unmapped, so a use after free is reported.
cudaError_t cudaFree(void* ptr) {
    if (!ptr) return cudaSuccess;
    std::lock_guard<std::recursive_mutex> lock(emu::device_lock());
    auto it = allocations().find(ptr);
    if (it == allocations().end()) {
        fprintf(stderr, "EMU: cudaFree of %p, which cudaMalloc did not return\n", ptr);
        abort();
    }
    const Mapping& m = it->second;
    allocated_bytes[m.device] -= (m.data + m.span) - (unsigned char*)ptr;
    emu::poison(m.data, m.span);
    madvise(m.data, m.span, MADV_DONTNEED);
    mprotect(m.data, m.span, PROT_NONE);
    freed()[ptr] = m;
    allocations().erase(it);
    return cudaSuccess;
}

cudaError_t cudaFreeAsync(void* ptr, cudaStream_t) { return cudaFree(ptr); }
// (memmove, memset: AddressSanitizer checks their ranges)
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
cudaError_t cudaMallocHost(void** ptr, size_t bytes) {
    *ptr = malloc(bytes);
    return *ptr ? cudaSuccess : (last_error = cudaErrorMemoryAllocation);
}
cudaError_t cudaFreeHost(void* ptr) {
    free(ptr);
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int device) {
    if (device < 0 || device >= device_count) return last_error = cudaErrorInvalidValue;
    *pool = (cudaMemPool_t)&allocated_bytes[device];
    return cudaSuccess;
}
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value) {
    return pool && value && attr == cudaMemPoolAttrReleaseThreshold ? cudaSuccess : (last_error = cudaErrorInvalidValue);
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
// Streams: everything runs in order on the calling thread, so one stream serves for all.
cudaError_t cudaStreamCreate(cudaStream_t* stream) {
    *stream = cudaStreamPerThread;
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) { return cudaStreamCreate(stream); }
// An event is complete as soon as it is recorded; it keeps the host time of its recording, so that
// cudaEventElapsedTime gives the emulation's time (scripts/bench/bench_attention.cu runs here too).
struct emu_event {
    std::chrono::steady_clock::time_point recorded;
    bool timing, was_recorded;
};
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags) {
    *event = new emu_event{{}, !(flags & cudaEventDisableTiming), false};
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, 0); }
cudaError_t cudaEventDestroy(cudaEvent_t event) {
    delete event;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
    event->recorded = std::chrono::steady_clock::now();
    event->was_recorded = true;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
    if (!start->timing || !end->timing || !start->was_recorded || !end->was_recorded)
        return last_error = cudaErrorInvalidValue;
    *ms = std::chrono::duration<float, std::milli>(end->recorded - start->recorded).count();
    return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
    *free_bytes = DEVICE_BYTES - allocated_bytes[current_device];
    *total_bytes = DEVICE_BYTES;
    return cudaSuccess;
}

// ------------------------------------------------------------------------------------ device and errors
cudaError_t cudaGetDeviceCount(int* count) {
    *count = device_count;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
    *device = current_device;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
    if (device < 0 || device >= device_count) return last_error = cudaErrorInvalidValue;
    current_device = device;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int) {
    memset(prop, 0, sizeof(*prop));
    snprintf(prop->name, sizeof(prop->name), "CPU emulation");
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = 132;
    prop->totalGlobalMem = DEVICE_BYTES;
    prop->sharedMemPerBlockOptin = emu::SMEM_OPTIN;   // sm_80's, the lower of the two targets
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

// ------------------------------------------------------------------------------------ sanitizer reports
// AddressSanitizer calls __asan_on_error before it prints its report (a bad access, or a fault at a
// guard page): this adds a line saying which kernel, block and thread, and where the address lies.
extern "C" const char* __asan_default_options() {
    return "detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=0:"
           "allocator_may_return_null=1:print_summary=1";
}

extern "C" void __asan_on_error() {
    fflush(stdout);
    void* addr = __asan_get_report_address ? __asan_get_report_address() : nullptr;
    fprintf(stderr, "EMU: ");
    if (addr) {
        const bool store = __asan_get_report_access_type && __asan_get_report_access_type();
        const size_t size = __asan_get_report_access_size ? __asan_get_report_access_size() : 0;
        emu::Worker* w = emu::me;
        emu::SharedRegion r;
        const unsigned char* c = (const unsigned char*)addr;
        if (w && w->block && c >= w->arena - emu::PAGE && c < w->arena + emu::ARENA_BYTES + emu::PAGE) {
            emu::find_shared(*w->block, addr, size ? size : 1, &r);
            fprintf(stderr, "out-of-bounds shared-memory %s of %zu bytes at offset %td of %s (%zu bytes)",
                    store ? "store" : "load", size, c - r.at, r.name, r.bytes);
        } else {
            fprintf(stderr, "bad %s of %zu bytes at %p: ", store ? "store" : "load", size, addr);
            describe_device(stderr, addr);
        }
    } else {
        fprintf(stderr, "fault (see the sanitizer's report below)");
    }
    fprintf(stderr, " in ");
    emu::print_context(stderr);
    fprintf(stderr, "\n");
}

// The handler of -fsanitize=alignment (the UBSan ABI's type-mismatch check; libubsan is not linked):
// a load or store through a pointer less aligned than its type aborts, as it faults on the GPU.
namespace {
struct UbsanLocation {
    const char* file;
    uint32_t line, column;
};
struct UbsanType {
    uint16_t kind, info;
    char name[1];
};
struct UbsanTypeMismatch {
    UbsanLocation location;
    const UbsanType* type;
    unsigned char log_alignment, check_kind;
};
[[noreturn]] void misaligned(const UbsanTypeMismatch* d, uintptr_t p) {
    const char* kind = d->check_kind == 0 ? "load from" : d->check_kind == 1 ? "store to" : "access to";
    const size_t alignment = (size_t)1 << d->log_alignment;
    fflush(stdout);
    fprintf(stderr, "EMU: %s %s %p (type %s needs %zu-byte alignment; ", p % alignment ? "misaligned" : "bad", kind,
            (void*)p, d->type->name, alignment);
    emu::Worker* w = emu::me;
    emu::SharedRegion r;
    const unsigned char* c = (const unsigned char*)p;
    if (w && w->block && c >= w->arena && c < w->arena + emu::ARENA_BYTES) {
        emu::find_shared(*w->block, c, 1, &r);
        fprintf(stderr, "offset %td of %s", c - r.at, r.name);
    } else {
        describe_device(stderr, c);
    }
    fprintf(stderr, ") at %s:%u in ", d->location.file, d->location.line);
    emu::print_context(stderr);
    fprintf(stderr, "\n");
    abort();
}
}   // namespace
extern "C" void __ubsan_handle_type_mismatch_v1(UbsanTypeMismatch* d, uintptr_t p) { misaligned(d, p); }
extern "C" void __ubsan_handle_type_mismatch_v1_abort(UbsanTypeMismatch* d, uintptr_t p) { misaligned(d, p); }
