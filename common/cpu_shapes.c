// Which instruction set and register shapes the CPU kernels were built with (common/cpu_shapes.h).
#include "common/cpu_shapes.h"

const char* cpu_kernel_shapes(void) { return CPU_KERNEL_SHAPES; }
