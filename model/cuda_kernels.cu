// The CUDA kernel set: the twins of the CPU kernels (layers/*.cu, attention/*.cu) behind the same
// table, so model/gpt.c runs unchanged on a GPU. Memory is device memory; kernels run on the
// default stream (per-thread). Every entry is filled, so every model the CPU set runs runs here
// (an entry left NULL would make gpt_build refuse the models that need it).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "common/cuda_common.cuh"

extern "C" {
#include "common/check.h"
}
#include "model/kernels.h"   // and through it every kernel pair's header (layers/*.h, attention/*.h)

// The kernels' per-call scratch (cudaMallocAsync) comes from the device's default memory pool,
// which by default hands its memory back to the driver at every synchronization, to be mapped
// again on the next step. Keep it: set on every allocation (per device, cheap; allocations are few).
static void keep_pool_memory(void) {
    int device = 0;
    cuda_check(cudaGetDevice(&device));
    cudaMemPool_t pool;
    cuda_check(cudaDeviceGetDefaultMemPool(&pool, device));
    uint64_t threshold = UINT64_MAX;
    cuda_check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
}

static void* cuda_alloc(size_t bytes) {
    void* ptr = nullptr;
    cudaError_t err = cudaMalloc(&ptr, bytes);
    if (err == cudaErrorMemoryAllocation) {
        size_t free_bytes = 0, total = 0;
        cudaMemGetInfo(&free_bytes, &total);
        fail("out of GPU memory: %.1f MiB requested, %.1f MiB free of %.1f MiB; lower -b or -t", bytes / 1048576.0,
             free_bytes / 1048576.0, total / 1048576.0);
    }
    if (err != cudaSuccess) fail("CUDA: %s (is there an NVIDIA GPU with a working driver?)", cudaGetErrorString(err));
    keep_pool_memory();
    return ptr;
}

static void cuda_release(void* ptr) { cuda_check(cudaFree(ptr)); }
static void cuda_zero(void* ptr, size_t bytes) { cuda_check(cudaMemset(ptr, 0, bytes)); }

// Uploads go through pinned staging buffers: a copy from pageable memory may make the host wait for
// the work queued before it (each micro-batch's inputs and targets: a stall per micro-step), a copy
// from pinned memory is queued on the stream like a kernel. The source is copied into the next of
// UPLOAD_SLOTS slots and the copy queued behind the work before it, as cudaMemcpy orders it; a slot is
// reused once its copy of UPLOAD_SLOTS uploads ago is done. Uploads over UPLOAD_SLOT_BYTES (parameters,
// once) are plain cudaMemcpy. Per device (one host thread drives one device); kept for the process.
enum { UPLOAD_SLOTS = 4, UPLOAD_SLOT_BYTES = 1 << 20, UPLOAD_DEVICES = 64 };
struct UploadSlots {
    void* host[UPLOAD_SLOTS];
    cudaEvent_t copied[UPLOAD_SLOTS];
    int next;
};
static UploadSlots upload_slots[UPLOAD_DEVICES];

static void cuda_upload(void* dst, const void* src, size_t bytes) {
    int device = 0;
    cuda_check(cudaGetDevice(&device));
    if (bytes > UPLOAD_SLOT_BYTES || device >= UPLOAD_DEVICES) {
        cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
        return;
    }
    UploadSlots* s = &upload_slots[device];
    int i = s->next;
    s->next = (i + 1) % UPLOAD_SLOTS;
    if (!s->host[i]) {
        cuda_check(cudaMallocHost(&s->host[i], UPLOAD_SLOT_BYTES));
        cuda_check(cudaEventCreateWithFlags(&s->copied[i], cudaEventDisableTiming));
    } else {
        cuda_check(cudaEventSynchronize(s->copied[i]));
    }
    memcpy(s->host[i], src, bytes);
    cuda_check(cudaMemcpyAsync(dst, s->host[i], bytes, cudaMemcpyHostToDevice, cudaStreamPerThread));
    cuda_check(cudaEventRecord(s->copied[i], cudaStreamPerThread));
}

static void cuda_download(void* dst, const void* src, size_t bytes) {
    cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

// On the stream the kernels run on, so it comes after the work queued before it (without a host wait).
static void cuda_copy(void* dst, const void* src, size_t bytes) {
    cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cudaStreamPerThread));
}

static size_t cuda_memory_free(void) {
    size_t free_bytes = 0, total = 0;
    cuda_check(cudaMemGetInfo(&free_bytes, &total));
    return free_bytes;
}

static Kernels make_cuda_kernels() {
    Kernels k = {};
    k.name = "cuda";
    k.alloc = cuda_alloc;
    k.release = cuda_release;
    k.zero = cuda_zero;
    k.upload = cuda_upload;
    k.download = cuda_download;
    k.copy = cuda_copy;
    k.memory_free = cuda_memory_free;
    k.encoder_forward = encoder_forward_cuda;
    k.encoder_backward = encoder_backward_cuda;
    k.layernorm_forward = layernorm_forward_cuda;
    k.layernorm_backward = layernorm_backward_cuda;
    k.matmul_forward = matmul_forward_cuda;
    k.matmul_backward = matmul_backward_cuda;
    k.matmul_gelu_forward = matmul_gelu_forward_cuda;
    k.gelu_forward = gelu_forward_cuda;
    k.gelu_backward = gelu_backward_cuda;
    k.swiglu_forward = swiglu_forward_cuda;
    k.swiglu_backward = swiglu_backward_cuda;
    k.residual_forward = residual_forward_cuda;
    k.residual_layernorm_forward = residual_layernorm_forward_cuda;
    k.rmsnorm_forward = rmsnorm_forward_cuda;
    k.rmsnorm_backward = rmsnorm_backward_cuda;
    k.residual_rmsnorm_forward = residual_rmsnorm_forward_cuda;
    k.crossentropy_forward_backward = crossentropy_forward_backward_cuda;
    k.adamw_update = adamw_update_cuda;
    k.global_norm_squared = global_norm_squared_cuda;
    k.attention_forward = attention_forward_cuda;
    k.attention_backward = attention_backward_cuda;
    k.attention_weights = attention_weights_cuda;
    k.mlstm_score_matrix = mlstm_score_matrix_cuda;
    k.mlstm_chunkwise_forward = mlstm_chunkwise_forward_cuda;
    k.mlstm_chunkwise_backward = mlstm_chunkwise_backward_cuda;
    k.mlstm_recurrent_step = mlstm_recurrent_step_cuda;
    k.attention_sink_forward = attention_sink_forward_cuda;
    k.attention_sink_backward = attention_sink_backward_cuda;
    k.gate_forward = gate_forward_cuda;
    k.gate_backward = gate_backward_cuda;
    k.rope_forward = rope_forward_cuda;
    k.rope_backward = rope_backward_cuda;
    k.qknorm_forward = qknorm_forward_cuda;
    k.qknorm_backward = qknorm_backward_cuda;
    k.layerscale_forward = layerscale_forward_cuda;
    k.layerscale_backward = layerscale_backward_cuda;
    k.headnorm_forward = headnorm_forward_cuda;
    k.headnorm_backward = headnorm_backward_cuda;
    return k;
}

static const Kernels cuda_kernels = make_cuda_kernels();

extern "C" const Kernels* cuda_kernel_set(void) { return &cuda_kernels; }
