// The communication seam of data parallelism (docs/DISTRIBUTED.md): the ranks of a run, and the
// collective operations train.c calls between the backward and the update. One implementation is
// linked with each program, like the kernel set: threads of one process with an in-memory reduction
// (dist/comm_threads.c, the CPU build), NCCL (the CUDA build). The model graph knows nothing of ranks.
// Every operation is called by every rank of the communicator and is deterministic: sums are taken
// in rank order, so N ranks give the same bits on every run.
#pragma once
#include <stddef.h>

#include "common/floatx.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct Comm Comm;

// The communicators of the `num_ranks` ranks of this process, one per rank (comms[r] has rank r).
Comm** comm_init_local(int num_ranks);
void comm_free_local(Comm** comms, int num_ranks);

int comm_rank(const Comm* c);
int comm_size(const Comm* c);
void comm_barrier(Comm* c);

// The part [lo, hi) of n elements that rank r of R owns under ZeRO-1: equal contiguous shares.
void comm_shard(size_t n, int rank, int size, size_t* lo, size_t* hi);

// data (n, kernel memory) = the sum over the ranks of their data, on every rank.
void comm_all_reduce_sum(Comm* c, floatX* data, size_t n);
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
