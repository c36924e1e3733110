// train_gpt2cu and infercu run on the CUDA kernel set.
#include "model/kernels.h"

const Kernels* default_kernels(void) { return cuda_kernel_set(); }
