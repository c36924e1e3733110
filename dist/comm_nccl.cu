// The communication seam (dist/comm.h) over NCCL, for the CUDA build: one process drives every GPU of
// its node (local rank r is a host thread bound to GPU r), and several nodes run one process each.
// Every collective runs on the calling thread's default stream (the build's per-thread stream), so it
// is ordered after the backward kernels that wrote the gradients and before the update that reads
// them, with no host synchronization; only the host-value operations (losses, norms, the stop flag)
// and the barrier wait for their result. The exception is comm_all_reduce_slices, the reduction of one
// layer's gradients during the backward: it runs on the rank's side stream, after an event recorded
// behind the layer's kernels, while the default stream goes on with the layers below; the reductions
// are queued in the order they are started, so the sums are the same on every run.
//
// ZeRO-1 shards (comm_shard) may differ in length by one element, which NCCL's reduce-scatter and
// all-gather (equal counts) do not allow: they are a group of one reduce and one broadcast per shard
// instead, the same bytes on the wire for a ring.
//
// One rank in all: no NCCL communicator is made and every collective is a no-op, unless
// ATTNLAB_FORCE_NCCL=1: then the one rank gets a communicator of its own and every collective, the side
// stream and its events run through NCCL as with several ranks (the data-parallel path checked on a
// machine with one GPU; scripts/check/check_data_parallel_cuda.sh). comm_init says on stderr when it makes
// communicators, so that a check can tell that NCCL ran.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <nccl.h>

#include "common/cuda_common.cuh"

extern "C" {
#include "common/check.h"
#include "dist/comm.h"
}

struct Comm {
    ncclComm_t nccl;   // NULL with one rank in all
    int rank, size, device;
    void* staging;     // STAGING_BYTES of device memory for the host-value operations
    cudaStream_t side;                  // the layer reductions during the backward
    cudaEvent_t layer_done, side_done;  // default stream -> side stream, and back
};

static const size_t STAGING_BYTES = 4096;
static const int RENDEZVOUS_SECONDS = 600;

#define nccl_check(call) nccl_check_at((call), __FILE__, __LINE__)
static void nccl_check_at(ncclResult_t result, const char* file, int line) {
    if (result != ncclSuccess)
        fail("NCCL: %s (%s:%d); NCCL_DEBUG=INFO shows why", ncclGetErrorString(result), file, line);
}

#ifdef ATTNLAB_BF16
static const ncclDataType_t NCCL_FLOATX = ncclBfloat16;
#else
static const ncclDataType_t NCCL_FLOATX = ncclFloat32;
#endif

// Node 0 makes the run's id and publishes it in id_file (written to a temporary, then renamed, so a
// reader never sees half of it); the other nodes wait for the file.
static ncclUniqueId rendezvous(const CommLayout* l) {
    ncclUniqueId id;
    if (!l->id_file) fail("-pn %d: several nodes meet through a shared file: give -pf PATH", l->nodes);
    if (l->node == 0) {
        nccl_check(ncclGetUniqueId(&id));
        FILE* f = atomic_open(l->id_file);
        fwrite_check(&id, sizeof(id), 1, f, l->id_file);
        atomic_commit(f, l->id_file);
        return id;
    }
    for (int waited = 0;; waited++) {
        FILE* f = fopen(l->id_file, "rb");
        if (f) {
            size_t got = fread(&id, 1, sizeof(id), f);
            fclose(f);
            if (got != sizeof(id)) fail("%s: %zu bytes, not an NCCL id of %zu", l->id_file, got, sizeof(id));
            return id;
        }
        if (errno != ENOENT) fail("%s: %s", l->id_file, strerror(errno));
        if (waited == RENDEZVOUS_SECONDS * 10)
            fail("-pf %s: node 0 did not write the NCCL id within %d s", l->id_file, RENDEZVOUS_SECONDS);
        struct timespec tenth = {0, 100000000};
        nanosleep(&tenth, NULL);
    }
}

Comm** comm_init(const CommLayout* l) {
    int devices = 0;
    cuda_check(cudaGetDeviceCount(&devices));
    if (l->local > devices) fail("-ng %d: this node has %d visible GPU(s)", l->local, devices);
    int world = l->local * l->nodes;
    Comm** comms = (Comm**)calloc_check(l->local, sizeof(Comm*));
    for (int r = 0; r < l->local; r++) {
        comms[r] = (Comm*)calloc_check(1, sizeof(Comm));
        Comm* c = comms[r];
        *c = Comm{NULL, l->node * l->local + r, world, r, NULL, NULL, NULL, NULL};
        cuda_check(cudaSetDevice(r));
        cuda_check(cudaMalloc(&c->staging, STAGING_BYTES));
        cuda_check(cudaStreamCreateWithFlags(&c->side, cudaStreamNonBlocking));
        cuda_check(cudaEventCreateWithFlags(&c->layer_done, cudaEventDisableTiming));
        cuda_check(cudaEventCreateWithFlags(&c->side_done, cudaEventDisableTiming));
    }
    const char* force = getenv("ATTNLAB_FORCE_NCCL");
    if (world > 1 || (force && strcmp(force, "1") == 0)) {
        ncclUniqueId id;
        if (l->nodes > 1) id = rendezvous(l);
        else nccl_check(ncclGetUniqueId(&id));
        nccl_check(ncclGroupStart());   // one thread initializes the ranks of all its GPUs
        for (int r = 0; r < l->local; r++) {
            cuda_check(cudaSetDevice(r));
            nccl_check(ncclCommInitRank(&comms[r]->nccl, world, id, comms[r]->rank));
        }
        nccl_check(ncclGroupEnd());
        if (l->nodes > 1 && l->node == 0) remove(l->id_file);   // every node has joined: the id is spent
        int version = 0;
        nccl_check(ncclGetVersion(&version));
        fprintf(stderr, "NCCL (version code %d): %d rank(s) here, %d in all\n", version, l->local, world);
    }
    cuda_check(cudaSetDevice(0));
    return comms;
}

void comm_free(Comm** comms, int local) {
    for (int r = 0; r < local; r++) {
        cuda_check(cudaSetDevice(comms[r]->device));
        if (comms[r]->nccl) nccl_check(ncclCommDestroy(comms[r]->nccl));
        cuda_check(cudaFree(comms[r]->staging));
        cuda_check(cudaEventDestroy(comms[r]->layer_done));
        cuda_check(cudaEventDestroy(comms[r]->side_done));
        cuda_check(cudaStreamDestroy(comms[r]->side));
        free(comms[r]);
    }
    free(comms);
}

int comm_default_local_ranks(void) {
    int devices = 0;
    cudaError_t err = cudaGetDeviceCount(&devices);
    if (err != cudaSuccess || devices == 0)
        fail("CUDA: %s (is there an NVIDIA GPU with a working driver?)",
             err != cudaSuccess ? cudaGetErrorString(err) : "no device");
    return devices;
}

int comm_ranks_per_memory(int) { return 1; }

void comm_bind(const Comm* c) { cuda_check(cudaSetDevice(c->device)); }

int comm_rank(const Comm* c) { return c->rank; }
int comm_size(const Comm* c) { return c->size; }

void comm_barrier(Comm* c) {
    if (!c->nccl) return;
    nccl_check(ncclAllReduce(c->staging, c->staging, 1, ncclFloat32, ncclSum, c->nccl, cudaStreamPerThread));
    cuda_check(cudaStreamSynchronize(cudaStreamPerThread));
}

void comm_all_reduce_slices(Comm* c, floatX* data, const size_t* offsets, const size_t* counts, int n) {
    if (!c->nccl) return;
    cuda_check(cudaEventRecord(c->layer_done, cudaStreamPerThread));
    cuda_check(cudaStreamWaitEvent(c->side, c->layer_done, 0));
    nccl_check(ncclGroupStart());
    for (int k = 0; k < n; k++)
        nccl_check(ncclAllReduce(data + offsets[k], data + offsets[k], counts[k], NCCL_FLOATX, ncclSum, c->nccl,
                                 c->side));
    nccl_check(ncclGroupEnd());
}

void comm_wait_reductions(Comm* c) {
    if (!c->nccl) return;
    cuda_check(cudaEventRecord(c->side_done, c->side));
    cuda_check(cudaStreamWaitEvent(cudaStreamPerThread, c->side_done, 0));
}

// For each shard: rooted at its owner, a reduce (reduce_scatter) or a broadcast (all-gather), all in one group.
static void per_shard(Comm* c, void* data, size_t n, size_t elem, ncclDataType_t type, bool reduce) {
    if (!c->nccl) return;
    nccl_check(ncclGroupStart());
    for (int root = 0; root < c->size; root++) {
        size_t lo, hi;
        comm_shard(n, root, c->size, &lo, &hi);
        char* shard = (char*)data + lo * elem;
        if (reduce) nccl_check(ncclReduce(shard, shard, hi - lo, type, ncclSum, root, c->nccl, cudaStreamPerThread));
        else nccl_check(ncclBroadcast(shard, shard, hi - lo, type, root, c->nccl, cudaStreamPerThread));
    }
    nccl_check(ncclGroupEnd());
}

void comm_reduce_scatter_sum(Comm* c, floatX* data, size_t n) { per_shard(c, data, n, sizeof(floatX), NCCL_FLOATX, true); }
void comm_all_gather(Comm* c, floatX* data, size_t n) { per_shard(c, data, n, sizeof(floatX), NCCL_FLOATX, false); }
void comm_all_gather_float(Comm* c, float* data, size_t n) { per_shard(c, data, n, sizeof(float), ncclFloat32, false); }

// Host values through the staging buffer, STAGING_BYTES at a time; waits for the result.
static void host_collective(Comm* c, void* data, size_t bytes, int root) {
    for (size_t at = 0; at < bytes; at += STAGING_BYTES) {
        size_t part = bytes - at < STAGING_BYTES ? bytes - at : STAGING_BYTES;
        char* host = (char*)data + at;
        cuda_check(cudaMemcpyAsync(c->staging, host, part, cudaMemcpyHostToDevice, cudaStreamPerThread));
        if (root < 0)
            nccl_check(ncclAllReduce(c->staging, c->staging, part / sizeof(double), ncclFloat64, ncclSum, c->nccl,
                                     cudaStreamPerThread));
        else
            nccl_check(ncclBroadcast(c->staging, c->staging, part, ncclUint8, root, c->nccl, cudaStreamPerThread));
        cuda_check(cudaMemcpyAsync(host, c->staging, part, cudaMemcpyDeviceToHost, cudaStreamPerThread));
        cuda_check(cudaStreamSynchronize(cudaStreamPerThread));
    }
}

void comm_sum_host(Comm* c, double* values, int n) {
    if (c->nccl) host_collective(c, values, (size_t)n * sizeof(double), -1);
}

void comm_broadcast_host(Comm* c, void* data, size_t bytes, int root) {
    if (c->nccl) host_collective(c, data, bytes, root);
}
