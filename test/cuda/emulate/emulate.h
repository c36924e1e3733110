// What the emulated PTX primitives (common/ptx.cuh here) need from the scheduler (emulate.cpp).
#pragma once
#include <cstddef>
#include <cstdint>

namespace emu {
struct CopyOp {
    void* dst;
    const void* src;
    int bytes;
    bool valid;
};
// A warp collective: every lane puts in `bytes` (<= 32) of its own and gets the 32 lanes' slots,
// valid until all call warp_done.
const unsigned char (*warp_put(const void* mine, size_t bytes))[32];
void warp_done();
unsigned char* dynamic_smem();
// Aborts, naming `what`, unless [p, p + bytes) lies in the block's shared memory (its dynamic shared
// memory or one static __shared__ array) and p is `align`-aligned.
void check_shared(const void* p, size_t bytes, size_t align, const char* what);
void cp_async(void* smem, const void* gmem, int bytes, bool valid);
void cp_async_commit();
void cp_async_wait(int groups_in_flight);
// For the self-test: the host threads that run the blocks of later launches (EMU_CONCURRENCY's).
void set_concurrency(int threads);
}   // namespace emu
