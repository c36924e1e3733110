// The communication seam (dist/comm.h) for ranks that are threads of one process, sharing memory:
// each collective publishes every rank's buffer, then each rank combines its own share of the
// elements across all buffers, in rank order, between two barriers. No copy of the whole buffer, no
// locks beyond the barrier, and the result does not depend on thread timing. With one rank every
// collective is a no-op that touches no memory. The CUDA build links dist/comm_nccl.cu instead.
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "dist/comm.h"

typedef struct {
    int size;
    pthread_barrier_t barrier;
    void** buffers;    // each rank's buffer in the collective under way
} Shared;

struct Comm {
    Shared* shared;
    int rank;
};

Comm** comm_init(const CommLayout* layout) {
    if (layout->nodes > 1)
        fail("-pn %d: training on several nodes needs the CUDA build (NCCL); this build's ranks are threads of "
             "one process", layout->nodes);
    int num_ranks = layout->local;
    Shared* s = calloc_check(1, sizeof(Shared));
    s->size = num_ranks;
    s->buffers = calloc_check(num_ranks, sizeof(void*));
    if (pthread_barrier_init(&s->barrier, NULL, (unsigned)num_ranks) != 0) fail("comm: cannot create a barrier");
    Comm** comms = calloc_check(num_ranks, sizeof(Comm*));
    for (int r = 0; r < num_ranks; r++) {
        comms[r] = malloc_check(sizeof(Comm));
        *comms[r] = (Comm){s, r};
    }
    return comms;
}

void comm_free(Comm** comms, int num_ranks) {
    Shared* s = comms[0]->shared;
    pthread_barrier_destroy(&s->barrier);
    free(s->buffers);
    free(s);
    for (int r = 0; r < num_ranks; r++) free(comms[r]);
    free(comms);
}

int comm_default_local_ranks(void) { return 1; }
int comm_ranks_per_memory(int local) { return local; }

// Ranks split the cores: 2 ranks on 2 cores are not oversubscribed.
void comm_bind(const Comm* c) {
    int cores = omp_get_num_procs(), size = c->shared->size;
    if (size > 1) omp_set_num_threads(cores / size > 1 ? cores / size : 1);
}

int comm_rank(const Comm* c) { return c->rank; }
int comm_size(const Comm* c) { return c->shared->size; }
void comm_barrier(Comm* c) {
    if (c->shared->size > 1) pthread_barrier_wait(&c->shared->barrier);
}

static int alone(const Comm* c) { return c->shared->size == 1; }

// Publishes this rank's buffer and waits until every rank has.
static void publish(Comm* c, void* data) {
    c->shared->buffers[c->rank] = data;
    comm_barrier(c);
}

// Elements [lo, hi) summed over the ranks' published buffers in rank order, written to every rank's
// buffer (all) or to this rank's only (!all).
static void sum_elements(Comm* c, size_t lo, size_t hi, int all) {
    Shared* s = c->shared;
    for (size_t i = lo; i < hi; i++) {
        float sum = 0.0f;
        for (int r = 0; r < s->size; r++) sum += float_from_floatx(((floatX*)s->buffers[r])[i]);
        for (int r = 0; r < s->size; r++)
            if (all || r == c->rank) ((floatX*)s->buffers[r])[i] = floatx_from_float(sum);
    }
}

// One publish for all the slices; each rank sums its share of every slice.
void comm_all_reduce_slices(Comm* c, floatX* data, const size_t* offsets, const size_t* counts, int n) {
    if (alone(c)) return;
    publish(c, data);
    for (int k = 0; k < n; k++) {
        size_t lo, hi;
        comm_shard(counts[k], c->rank, c->shared->size, &lo, &hi);
        sum_elements(c, offsets[k] + lo, offsets[k] + hi, 1);
    }
    comm_barrier(c);
}

void comm_wait_reductions(Comm* c) { (void)c; }
// Each rank sums its own share of the elements, into its own buffer only.
void comm_reduce_scatter_sum(Comm* c, floatX* data, size_t n) {
    if (alone(c)) return;
    publish(c, data);
    size_t lo, hi;
    comm_shard(n, c->rank, c->shared->size, &lo, &hi);
    sum_elements(c, lo, hi, 0);
    comm_barrier(c);
}

// This rank's shard of elements of `size` bytes copied into the other ranks' buffers.
static void gather(Comm* c, void* data, size_t n, size_t size) {
    if (alone(c)) return;
    Shared* s = c->shared;
    publish(c, data);
    size_t lo, hi;
    comm_shard(n, c->rank, s->size, &lo, &hi);
    for (int r = 0; r < s->size; r++)
        if (r != c->rank) memcpy((char*)s->buffers[r] + lo * size, (char*)data + lo * size, (hi - lo) * size);
    comm_barrier(c);
}

void comm_all_gather(Comm* c, floatX* data, size_t n) { gather(c, data, n, sizeof(floatX)); }
void comm_all_gather_float(Comm* c, float* data, size_t n) { gather(c, data, n, sizeof(float)); }

void comm_sum_host(Comm* c, double* values, int n) {
    if (alone(c)) return;
    Shared* s = c->shared;
    double* mine = malloc_check((size_t)n * sizeof(double));
    publish(c, values);
    for (int i = 0; i < n; i++) {
        mine[i] = 0.0;
        for (int r = 0; r < s->size; r++) mine[i] += ((double*)s->buffers[r])[i];
    }
    comm_barrier(c);   // everyone has read before anyone writes
    memcpy(values, mine, (size_t)n * sizeof(double));
    free(mine);
}

void comm_broadcast_host(Comm* c, void* data, size_t bytes, int root) {
    if (alone(c)) return;
    Shared* s = c->shared;
    publish(c, data);
    if (c->rank != root) memcpy(data, s->buffers[root], bytes);
    comm_barrier(c);
}
