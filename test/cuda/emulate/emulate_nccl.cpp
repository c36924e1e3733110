// The emulated NCCL (nccl.h): communicators whose ranks are threads of this process. A collective
// publishes each rank's buffers, waits for every rank (a barrier), lets each rank combine its own
// share of the elements across all ranks in rank order, and waits again: the result does not depend
// on thread timing. Calls between ncclGroupStart and ncclGroupEnd are queued and run in order at
// ncclGroupEnd, as NCCL runs a group's operations together. Misuse that NCCL reports (a rank out of
// range, a root out of range, two inits of one rank, an unknown type) aborts with an EMU line.
// ncclCommDestroy prints how many collectives of each kind the rank ran and over how many elements
// ("EMU NCCL rank R of N: ..."), so that a check can tell that the gradients went through NCCL
// (scripts/check/check_data_parallel_cuda.sh).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <pthread.h>
#include <vector>

#include "nccl.h"

namespace {

struct Slot {
    const void* send;
    void* recv;
};

struct World {   // the ranks that share one unique id
    int size, joined;
    pthread_barrier_t barrier;
    std::vector<Slot> slots;
};

std::mutex worlds_mutex;
std::map<uint64_t, World*> worlds;
uint64_t next_id = 1;

enum Kind { ALL_REDUCE, REDUCE, BROADCAST };
struct Op {
    Kind kind;
    const void* send;
    void* recv;
    size_t count;
    ncclDataType_t type;
    int root;
    ncclComm_t comm;
};
thread_local int group_depth = 0;
thread_local std::vector<Op> queued;

[[noreturn]] void misuse(const char* what) {
    fprintf(stderr, "EMU: NCCL: %s\n", what);
    abort();
}

size_t type_bytes(ncclDataType_t t) {
    switch (t) {
    case ncclInt8: case ncclUint8: return 1;
    case ncclFloat16: case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
    }
    misuse("unknown data type");
}

// The sum of element i over the ranks' send buffers, in rank order, stored as the type at dst.
void sum_element(void* dst, const std::vector<Slot>& slots, size_t i, ncclDataType_t t) {
    if (t == ncclFloat64) {
        double s = 0.0;
        for (const Slot& r : slots) s += ((const double*)r.send)[i];
        memcpy(dst, &s, 8);
    } else if (t == ncclFloat32) {
        float s = 0.0f;
        for (const Slot& r : slots) s += ((const float*)r.send)[i];
        memcpy(dst, &s, 4);
    } else if (t == ncclBfloat16) {   // summed in fp32, rounded to bf16 once (nearest even)
        float s = 0.0f;
        for (const Slot& r : slots) {
            uint32_t bits = (uint32_t)((const uint16_t*)r.send)[i] << 16;
            float x;
            memcpy(&x, &bits, 4);
            s += x;
        }
        uint32_t bits;
        memcpy(&bits, &s, 4);
        bits += 0x7fffu + ((bits >> 16) & 1u);
        uint16_t half = (uint16_t)(bits >> 16);
        memcpy(dst, &half, 2);
    } else {
        misuse("only float64, float32 and bfloat16 sums are emulated");
    }
}

}   // namespace

struct ncclComm {
    World* world;
    int rank;
    long runs[3];       // collectives run, by Kind
    size_t elements[3];   // and their elements
};

namespace {

void run(const Op& op) {
    World* w = op.comm->world;
    int rank = op.comm->rank;
    op.comm->runs[op.kind]++;
    op.comm->elements[op.kind] += op.count;
    if (op.kind != ALL_REDUCE && (op.root < 0 || op.root >= w->size)) misuse("root out of range");
    w->slots[rank] = Slot{op.send, op.recv};
    pthread_barrier_wait(&w->barrier);
    // this rank's share of the elements, in every rank's buffers: no element is touched by two threads,
    // and each element is read from every rank before it is written (in place, send == recv)
    size_t lo = op.count * rank / w->size, hi = op.count * (rank + 1) / w->size, elem = type_bytes(op.type);
    for (size_t i = lo; i < hi; i++) {
        char value[8];
        if (op.kind == BROADCAST) memcpy(value, (const char*)w->slots[op.root].send + i * elem, elem);
        else sum_element(value, w->slots, i, op.type);
        for (int r = 0; r < w->size; r++)
            if (op.kind != REDUCE || r == op.root) memcpy((char*)w->slots[r].recv + i * elem, value, elem);
    }
    pthread_barrier_wait(&w->barrier);
}

ncclResult_t submit(const Op& op) {
    if (!op.comm) misuse("a collective on a NULL communicator");
    if (group_depth > 0) queued.push_back(op);
    else run(op);
    return ncclSuccess;
}

}   // namespace

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
    std::lock_guard<std::mutex> lock(worlds_mutex);
    memset(id, 0, sizeof(*id));
    uint64_t n = next_id++;
    memcpy(id->internal, &n, sizeof(n));
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
    if (nranks < 1 || rank < 0 || rank >= nranks) misuse("ncclCommInitRank: rank out of range");
    uint64_t key;
    memcpy(&key, id.internal, sizeof(key));
    std::lock_guard<std::mutex> lock(worlds_mutex);
    World*& w = worlds[key];
    if (!w) {
        w = new World{nranks, 0, {}, std::vector<Slot>(nranks)};
        pthread_barrier_init(&w->barrier, nullptr, (unsigned)nranks);
    }
    if (w->size != nranks) misuse("ncclCommInitRank: ranks of one id disagree on the size");
    if (++w->joined > nranks) misuse("ncclCommInitRank: more ranks joined than the size");
    *comm = new ncclComm{w, rank, {0, 0, 0}, {0, 0, 0}};
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    fprintf(stderr, "EMU NCCL rank %d of %d: all-reduce %ld (%zu elements), reduce %ld (%zu), broadcast %ld (%zu)\n",
            comm->rank, comm->world->size, comm->runs[ALL_REDUCE], comm->elements[ALL_REDUCE], comm->runs[REDUCE],
            comm->elements[REDUCE], comm->runs[BROADCAST], comm->elements[BROADCAST]);
    delete comm;   // the world stays: other ranks may still be destroying theirs
    return ncclSuccess;
}

ncclResult_t ncclGetVersion(int* version) {
    *version = 0;   // not a real NCCL
    return ncclSuccess;
}

const char* ncclGetErrorString(ncclResult_t result) {
    return result == ncclSuccess ? "no error" : result == ncclInvalidArgument ? "invalid argument" : "invalid usage";
}

ncclResult_t ncclGroupStart(void) {
    group_depth++;
    return ncclSuccess;
}

ncclResult_t ncclGroupEnd(void) {
    if (group_depth == 0) misuse("ncclGroupEnd without ncclGroupStart");
    if (--group_depth == 0) {
        std::vector<Op> ops;
        ops.swap(queued);
        for (const Op& op : ops) run(op);
    }
    return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t type, ncclRedOp_t,
                           ncclComm_t comm, cudaStream_t) {
    return submit(Op{ALL_REDUCE, send, recv, count, type, 0, comm});
}

ncclResult_t ncclReduce(const void* send, void* recv, size_t count, ncclDataType_t type, ncclRedOp_t, int root,
                        ncclComm_t comm, cudaStream_t) {
    return submit(Op{REDUCE, send, recv, count, type, root, comm});
}

ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t type, int root,
                           ncclComm_t comm, cudaStream_t) {
    return submit(Op{BROADCAST, send, recv, count, type, root, comm});
}
