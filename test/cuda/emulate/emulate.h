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
// Aborts unless [p, p + bytes) lies in the block's dynamic shared memory and p is `align`-aligned.
void check_shared(const void* p, size_t bytes, size_t align);
void cp_async(void* smem, const void* gmem, int bytes, bool valid);
void cp_async_commit();
void cp_async_wait(int groups_in_flight);
long launch_count();
}   // namespace emu
