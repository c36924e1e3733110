// The kernel table: the one model graph (gpt.c) calls its kernels and memory functions through
// it, so the CPU set (layers/*.c, attention/*.c) and the CUDA set (*.cu) plug in without a second
// copy of the model. Tensors are floatX (common/floatx.h: float on the CPU, bf16 in the CUDA bf16
// build); statistics, losses and optimizer state are float. Each kernel entry has the function type
// its header declares with the pair (layers/x.h, attention/x.h: the shapes and the contract), the type
// of the CUDA twin; in the CPU build floatX is float and the CPU kernel has that type too. A kernel
// set may leave a mixer's entries NULL: gpt_build then refuses models that need them.
#pragma once
#include <stddef.h>

#include "attention/gate.h"
#include "attention/mlstm.h"
#include "attention/qknorm.h"
#include "attention/rope.h"
#include "attention/sink_slot.h"
#include "attention/softmax_sigmoid.h"
#include "common/floatx.h"
#include "layers/adamw.h"
#include "layers/crossentropy.h"
#include "layers/encoder.h"
#include "layers/gelu.h"
#include "layers/grad_norm.h"
#include "layers/headnorm.h"
#include "layers/layernorm.h"
#include "layers/layerscale.h"
#include "layers/matmul.h"
#include "layers/residual.h"
#include "layers/rmsnorm.h"
#include "layers/swiglu.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char* name;
    // memory the kernels can read ("device" memory; host memory on the CPU)
    void* (*alloc)(size_t bytes);
    void (*release)(void* ptr);
    void (*zero)(void* ptr, size_t bytes);
    void (*upload)(void* dst, const void* host_src, size_t bytes);
    void (*download)(void* host_dst, const void* src, size_t bytes);
    // kernel memory to kernel memory, in order with the kernels; the two ranges may not overlap
    void (*copy)(void* dst, const void* src, size_t bytes);
    size_t (*memory_free)(void);   // bytes the kernels' memory has free now

    // the block's layers: layers/encoder.h, layernorm.h, matmul.h, gelu.h, swiglu.h, residual.h, rmsnorm.h,
    // crossentropy.h, adamw.h, grad_norm.h, layerscale.h
    EncoderForwardFn* encoder_forward;
    EncoderBackwardFn* encoder_backward;
    LayernormForwardFn* layernorm_forward;
    LayernormBackwardFn* layernorm_backward;
    MatmulForwardFn* matmul_forward;
    MatmulGeluForwardFn* matmul_gelu_forward;
    MatmulBackwardFn* matmul_backward;
    GeluForwardFn* gelu_forward;
    GeluBackwardFn* gelu_backward;
    SwigluForwardFn* swiglu_forward;
    SwigluBackwardFn* swiglu_backward;
    ResidualForwardFn* residual_forward;
    ResidualLayernormForwardFn* residual_layernorm_forward;
    RmsnormForwardFn* rmsnorm_forward;
    RmsnormBackwardFn* rmsnorm_backward;
    ResidualRmsnormForwardFn* residual_rmsnorm_forward;
    CrossentropyForwardBackwardFn* crossentropy_forward_backward;
    AdamwUpdateFn* adamw_update;   // master: fp32 master weights when floatX is not float, else NULL
    GlobalNormSquaredFn* global_norm_squared;
    LayerscaleForwardFn* layerscale_forward;
    LayerscaleBackwardFn* layerscale_backward;
    // the token mixers and their options: attention/softmax_sigmoid.h, mlstm.h, sink_slot.h, gate.h, rope.h,
    // qknorm.h; and the mLSTM's head norm, layers/headnorm.h
    AttentionForwardFn* attention_forward;
    AttentionBackwardFn* attention_backward;
    AttentionWeightsFn* attention_weights;   // analysis: the weights each query gave each key
    MlstmScoreMatrixFn* mlstm_score_matrix;  // analysis: the mLSTM's gated score magnitudes
    AttentionSinkForwardFn* attention_sink_forward;
    AttentionSinkBackwardFn* attention_sink_backward;
    GateForwardFn* gate_forward;
    GateBackwardFn* gate_backward;
    RopeForwardFn* rope_forward;
    RopeBackwardFn* rope_backward;
    QknormForwardFn* qknorm_forward;
    QknormBackwardFn* qknorm_backward;
    MlstmChunkwiseForwardFn* mlstm_chunkwise_forward;
    MlstmChunkwiseBackwardFn* mlstm_chunkwise_backward;
    MlstmRecurrentStepFn* mlstm_recurrent_step;
    HeadnormForwardFn* headnorm_forward;
    HeadnormBackwardFn* headnorm_backward;
} Kernels;

// The kernel sets: the CPU one (model/cpu_kernels.c) and the CUDA one (model/cuda_kernels.cu).
const Kernels* cpu_kernel_set(void);
const Kernels* cuda_kernel_set(void);
// The set this program was linked with: the CPU set in train_gpt2 and infer (model/default_cpu.c),
// the CUDA set in train_gpt2cu and infercu (model/default_cuda.c).
const Kernels* default_kernels(void);

#ifdef __cplusplus
}
#endif
