// train_gpt2 and infer run on the CPU kernel set.
#include "model/kernels.h"

const Kernels* default_kernels(void) { return cpu_kernel_set(); }
