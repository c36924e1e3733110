// The communication seam of data parallelism (docs/DISTRIBUTED.md): the ranks of a run, and the
// collective operations train.c calls between the backward and the update. One implementation is
// linked with each program, like the kernel set: threads of one process with an in-memory reduction
// (dist/comm_threads.c, the CPU build), NCCL (dist/comm_nccl.cu, the CUDA build). The model graph
// knows nothing of ranks. Every operation is called by every rank of the communicator, in the same
// order, and is deterministic for a given world size: the threads sum in rank order; NCCL's sums have
// a fixed order for a fixed topology and algorithm (its documented behaviour; NCCL_ALGO pins one).
#pragma once
#include <stddef.h>

#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct Comm Comm;

// Where this process's ranks sit in the run: `local` ranks here (threads; in the CUDA build local rank
// r drives GPU r), `nodes` processes in all (one per node, each with the same `local`), this one being
// number `node`; global rank = node * local + r. With nodes > 1 the processes meet through `id_file`, a
// path on a file system all nodes share, fresh for each run: node 0 writes NCCL's unique id there, the
// others wait for it (only the NCCL build trains on several nodes).
typedef struct {
    int local, nodes, node;
    const char* id_file;
} CommLayout;

// The communicators of this process's ranks: comms[r] for local rank r.
Comm** comm_init(const CommLayout* layout);
void comm_free(Comm** comms, int local);
// How many ranks one process runs when the user does not say: the visible GPUs (NCCL), 1 (threads).
int comm_default_local_ranks(void);
// How many of this process's `local` ranks share one memory (for the memory plan): all (threads), 1 (GPUs).
int comm_ranks_per_memory(int local);
// Called first in each rank's thread: binds the thread to its rank's device (NCCL: cudaSetDevice;
// threads: the thread's OpenMP team, cores / local ranks).
void comm_bind(const Comm* c);

int comm_rank(const Comm* c);
int comm_size(const Comm* c);
void comm_barrier(Comm* c);

// The part [lo, hi) of n elements that rank r of R owns under ZeRO-1: equal contiguous shares.
static inline void comm_shard(size_t n, int rank, int size, size_t* lo, size_t* hi) {
    *lo = n * (size_t)rank / (size_t)size;
    *hi = n * (size_t)(rank + 1) / (size_t)size;
}

// The n slices [offsets[i], offsets[i] + counts[i]) of data (kernel memory) = the sum over the ranks
// of theirs, on every rank, started now: on a GPU behind
// the work queued so far, on a stream of its own, so that it overlaps the work queued next (the rest
// of the backward); the threads sum at once. comm_wait_reductions orders what the caller queues after
// it behind every reduction started.
void comm_all_reduce_slices(Comm* c, floatX* data, const size_t* offsets, const size_t* counts, int n);
void comm_wait_reductions(Comm* c);
// The sum over the ranks, but only this rank's shard of data (comm_shard) is written.
void comm_reduce_scatter_sum(Comm* c, floatX* data, size_t n);
// Every rank's shard of data (n) copied into the other ranks' data.
void comm_all_gather(Comm* c, floatX* data, size_t n);
// The same for fp32 data (the master weights and AdamW moments, gathered for a checkpoint).
void comm_all_gather_float(Comm* c, float* data, size_t n);
// values (n host doubles) = their sum over the ranks, on every rank (losses, norms).
void comm_sum_host(Comm* c, double* values, int n);
// bytes of host memory from the root rank to every rank.
void comm_broadcast_host(Comm* c, void* data, size_t bytes, int root);

#ifdef __cplusplus
}
#endif
