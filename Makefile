# attnlab build. CPU targets need gcc + OpenMP; CUDA targets need nvcc (they compile without a GPU).
CC ?= gcc
PYTHON ?= /usr/bin/python3
CFLAGS ?= -O3 -march=native -ffp-contract=fast -fno-math-errno
CFLAGS += -std=c11 -D_GNU_SOURCE -fopenmp -fPIC -Wall -Wextra -I. $(EXTRA_CFLAGS)
LDLIBS = -lm -fopenmp

# Everything but the two programs: kernels, model graph, data. test/capi.c is the test entry point.
LIB_SRC = $(filter-out data/prepare.c model/default_cuda.c,$(wildcard common/*.c layers/*.c attention/*.c model/*.c \
                                                                 data/*.c dist/*.c))
LIB_OBJ = $(patsubst %.c,build/%.o,$(LIB_SRC))

# CUDA: SASS for sm_80 (A100) and sm_90 (H100/H200), so no PTX JIT on these; plus compute_90 PTX,
# which the driver compiles at start on newer GPUs (sm_100, sm_120) instead of failing. PRECISION=BF16
# (default: bf16 parameters and activations, fp32 master weights) or PRECISION=FP32 (for tight tests).
NVCC ?= nvcc
PRECISION ?= BF16
PRECISION_FLAG = $(if $(filter BF16,$(PRECISION)),-DATTNLAB_BF16,)
NVCC_FLAGS = -O3 -std=c++17 -I. --default-stream per-thread $(PRECISION_FLAG) \
             -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=[sm_90,compute_90] \
             -Xcompiler -Wall,-Wextra,-fopenmp --Werror all-warnings
CUDA_LIBS = -lcublasLt -lcublas -lnccl -lgomp -lm
CUDA_BUILD = build/cuda/$(PRECISION)
CU_SRC = $(wildcard common/*.cu layers/*.cu attention/*.cu model/*.cu dist/*.cu)
CU_OBJ = $(patsubst %.cu,$(CUDA_BUILD)/%.o,$(CU_SRC))
# C files whose memory layout depends on floatX: compiled again for each CUDA precision
FLOATX_SRC = model/gpt.c model/checkpoint.c model/tensors.c model/analysis.c
FLOATX_OBJ = $(patsubst %.c,$(CUDA_BUILD)/%.o,$(FLOATX_SRC))
# the rest of the library (data, common, the CPU kernels that test_cuda compares against)
SHARED_OBJ = $(patsubst %.c,build/%.o,$(filter-out model/cpu_kernels.c model/default_cpu.c dist/comm_threads.c \
                                                   $(FLOATX_SRC),$(LIB_SRC)))
# test_cuda's whole-model check runs the CPU and CUDA tables side by side: same floatX, FP32 only
TEST_CUDA_CPU_TABLE = $(if $(filter FP32,$(PRECISION)),$(CUDA_BUILD)/model/cpu_kernels.o,)
TEST_CUDA_SRC = $(wildcard test/cuda/test_*.cu)
# The CUDA programs keep their names across precisions: this stamp changes with PRECISION, so they relink.
CUDA_STAMP = build/cuda/last_precision
$(shell mkdir -p build/cuda; [ "$$(cat $(CUDA_STAMP) 2>/dev/null)" = "$(PRECISION)" ] || echo $(PRECISION) > $(CUDA_STAMP))

.PHONY: all lib test pytest test_emu bench bench_cuda clean cuda_check cuda test_cuda_emu
all: train_gpt2 infer prepare lib

build/%.o: %.c $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

train_gpt2: build/train.o $(LIB_OBJ)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

infer: build/infer.o $(LIB_OBJ)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

prepare: build/data/prepare.o $(LIB_OBJ)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

lib: build/libattnlab.so
build/libattnlab.so: $(LIB_OBJ) build/test/capi.o
	$(CC) $(CFLAGS) -shared $^ -o $@ $(LDLIBS)

# The tests: every kernel and the whole model against PyTorch float64, then test_cuda in the CPU
# emulation of CUDA in both precisions (see README).
test: pytest test_emu

pytest: train_gpt2 infer prepare lib
	$(PYTHON) -m pytest -q test

test_emu:
	$(MAKE) test_cuda_emu PRECISION=BF16
	$(MAKE) test_cuda_emu PRECISION=FP32

$(CUDA_BUILD)/%.o: %.cu $(wildcard */*.h */*.cuh)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@

$(CUDA_BUILD)/%.o: %.c $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PRECISION_FLAG) -c $< -o $@

# The CUDA programs: the same train.c / infer.c and model graph, linked with the CUDA kernel set.
cuda: train_gpt2cu infercu test_cuda bench_attention_cuda

train_gpt2cu: $(CUDA_BUILD)/train.o $(FLOATX_OBJ) $(SHARED_OBJ) $(CU_OBJ) $(CUDA_BUILD)/model/default_cuda.o $(CUDA_STAMP)
	$(NVCC) $(NVCC_FLAGS) $(filter %.o,$^) -o $@ $(CUDA_LIBS)

infercu: $(CUDA_BUILD)/infer.o $(FLOATX_OBJ) $(SHARED_OBJ) $(CU_OBJ) $(CUDA_BUILD)/model/default_cuda.o $(CUDA_STAMP)
	$(NVCC) $(NVCC_FLAGS) $(filter %.o,$^) -o $@ $(CUDA_LIBS)

# Every CUDA kernel against its CPU twin (needs a GPU to run).
test_cuda: $(patsubst %.cu,$(CUDA_BUILD)/%.o,$(TEST_CUDA_SRC)) $(CUDA_BUILD)/test/cuda/main.o $(SHARED_OBJ) \
           $(CU_OBJ) $(FLOATX_OBJ) $(TEST_CUDA_CPU_TABLE) $(CUDA_STAMP)
	$(NVCC) $(NVCC_FLAGS) $(filter %.o,$^) -o $@ $(CUDA_LIBS)

# test_cuda on the CPU: the same CUDA sources and tests built with g++ against an emulation of the
# CUDA runtime, cuBLASLt and the PTX primitives (test/cuda/emulate; what it can and cannot show is in
# its cuda_runtime.h). Runs here and in CI; it does not replace test_cuda on a GPU.
EMU_BUILD = build/emu/$(PRECISION)
EMU_DIR = test/cuda/emulate
EMU_FLAGS = -std=c++17 -O2 -Wall -Wextra -Wno-unknown-pragmas -I$(EMU_DIR) -I. $(PRECISION_FLAG) $(EXTRA_CFLAGS)
EMU_HEADERS = $(wildcard $(EMU_DIR)/*.h $(EMU_DIR)/common/*.cuh */*.h */*.cuh)
# the emulation has no NCCL: its ranks are threads sharing host memory, as in the CPU build
EMU_KERNEL_OBJ = $(patsubst %.cu,$(EMU_BUILD)/%.o,$(filter-out dist/comm_nccl.cu,$(CU_SRC))) $(EMU_BUILD)/emulate.o \
                 $(EMU_BUILD)/cublaslt.o $(CUDA_BUILD)/dist/comm_threads.o
EMU_TEST_OBJ = $(patsubst %.cu,$(EMU_BUILD)/%.o,$(TEST_CUDA_SRC) test/cuda/main.cu)

$(EMU_BUILD)/%.o: %.cu $(EMU_HEADERS) $(EMU_DIR)/launches.py
	@mkdir -p $(dir $@)
	$(PYTHON) $(EMU_DIR)/launches.py $< $(EMU_BUILD)/$*.cpp
	$(CXX) $(EMU_FLAGS) -c $(EMU_BUILD)/$*.cpp -o $@

$(EMU_BUILD)/%.o: $(EMU_DIR)/%.cpp $(EMU_HEADERS)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_FLAGS) -c $< -o $@

$(EMU_BUILD)/test_cuda_emu: $(EMU_TEST_OBJ) $(EMU_KERNEL_OBJ) $(SHARED_OBJ) $(FLOATX_OBJ) $(TEST_CUDA_CPU_TABLE)
	$(CXX) $^ -o $@ -fopenmp -lm

# train_gpt2cu and infercu on the emulation: train.c, infer.c and the model graph as in the CUDA programs.
EMU_PROGRAM_OBJ = $(FLOATX_OBJ) $(SHARED_OBJ) $(EMU_KERNEL_OBJ) $(CUDA_BUILD)/model/default_cuda.o
$(EMU_BUILD)/train_gpt2cu: $(CUDA_BUILD)/train.o $(EMU_PROGRAM_OBJ)
	$(CXX) $^ -o $@ -fopenmp -lm

$(EMU_BUILD)/infercu: $(CUDA_BUILD)/infer.o $(EMU_PROGRAM_OBJ)
	$(CXX) $^ -o $@ -fopenmp -lm

# test_cuda, then the CUDA programs against the CPU programs (scripts/compare_cuda_cpu.sh), both
# on the emulation. One line per check goes to the logs; the failures and the summaries are printed.
# The bounds are explained in scripts/compare_cuda_cpu.sh.
EMU_COMPARE = $(if $(filter BF16,$(PRECISION)),2e-2 report,1e-4 exact)
test_cuda_emu: $(EMU_BUILD)/test_cuda_emu $(EMU_BUILD)/train_gpt2cu $(EMU_BUILD)/infercu train_gpt2 infer prepare
	@echo "test_cuda (CPU emulation, $(PRECISION)): log in $(EMU_BUILD)/test_cuda_emu.log"
	@$(EMU_BUILD)/test_cuda_emu > $(EMU_BUILD)/test_cuda_emu.log 2>&1; status=$$?; \
	 grep -E "^(FAIL|EMU|error)" $(EMU_BUILD)/test_cuda_emu.log; tail -n 1 $(EMU_BUILD)/test_cuda_emu.log; exit $$status
	@echo "train_gpt2cu, infercu vs train_gpt2, infer (CPU emulation, $(PRECISION)): logs in $(EMU_BUILD)/compare"
	@PYTHON=$(PYTHON) bash scripts/compare_cuda_cpu.sh $(EMU_BUILD) $(EMU_BUILD)/compare $(EMU_COMPARE)

# The attention kernels alone on a GPU (TFLOP/s against the chip's peak).
bench_attention_cuda: $(CUDA_BUILD)/scripts/bench_attention.o $(SHARED_OBJ) $(CU_OBJ) $(CUDA_STAMP)
	$(NVCC) $(NVCC_FLAGS) $(filter %.o,$^) -o $@ $(CUDA_LIBS)

# Compile-and-link check of the CUDA toolkit, cuBLASLt and NCCL (runs nothing here).
cuda_check: build/cuda_link_check
build/cuda_link_check: test/cuda/link_check.cu
	@mkdir -p build
	$(NVCC) $(NVCC_FLAGS) $< -o $@ $(CUDA_LIBS)

# The benchmarks (docs/PERF.md): on the CPU, training throughput and the matmul against PyTorch 2.x,
# tokenizer encoding against tiktoken; on a machine with an NVIDIA GPU also bench_cuda.
# PyTorch here is 2.x from PyPI in build/bench_venv (scripts/bench_env.sh installs it; the tests use Debian's).
bench: train_gpt2 prepare lib
	$$(bash scripts/bench_env.sh) scripts/bench_cpu.py
	$$(bash scripts/bench_env.sh) scripts/bench_matmul.py
	$(PYTHON) scripts/bench_tokenizer.py
	@if nvidia-smi -L > /dev/null 2>&1; then $(MAKE) bench_cuda; else echo "no NVIDIA GPU: make bench_cuda skipped"; fi

# The GPU benchmarks (bf16 build): GPT-2 124M training tokens/s and MFU, the attention kernels' TFLOP/s.
bench_cuda:
	$(MAKE) cuda PRECISION=BF16
	bash scripts/bench_cuda.sh build/bench_cuda

clean:
	rm -rf build train_gpt2 infer prepare train_gpt2cu infercu test_cuda bench_attention_cuda
