# attnlab build. CPU targets need gcc + OpenMP; CUDA targets need nvcc (they compile without a GPU).
CC ?= gcc
PYTHON ?= /usr/bin/python3
# The CPU instruction set of the programs and library; common/cpu_shapes.h picks the kernels' register
# shapes from what -march enables (docs/PERF.md): native (this machine's, the default), avx2
# (x86-64-v3: AVX2 + FMA), avx512 (x86-64-v4), aarch64 (NEON, cross-compiled with
# aarch64-linux-gnu-gcc; programs named train_gpt2-aarch64 etc., run with qemu-aarch64 off ARM).
# Each ISA has its own object directory ($(BUILD)); the programs at the top relink when ISA changes.
ISA ?= native
ISA_MARCH_native = -march=native
ISA_MARCH_avx2 = -march=x86-64-v3
ISA_MARCH_avx512 = -march=x86-64-v4
ISA_MARCH_aarch64 = -march=armv8-a
ifeq ($(ISA_MARCH_$(ISA)),)
$(error ISA=$(ISA) is not known: use native, avx2, avx512 or aarch64)
endif
ifeq ($(ISA),aarch64)
ifeq ($(origin CC),default)
CC = aarch64-linux-gnu-gcc
endif
EXE = -aarch64
endif
BUILD = $(if $(filter native,$(ISA)),build,build/isa-$(ISA))
# -fno-trapping-math: without it GCC will not turn the clamps and selects of the vectorizable exp
# (common/fastmath.h) into vector blends on AVX2 or NEON, and GELU, softmax, cross-entropy stay scalar
CFLAGS ?= -O3 -ffp-contract=fast -fno-math-errno -fno-trapping-math
CFLAGS += $(ISA_MARCH_$(ISA)) -std=c11 -D_GNU_SOURCE -fopenmp -fPIC -Wall -Wextra -I.
LDLIBS = -lm -fopenmp
# The compiler and flags of this build directory's objects: they recompile when these change
# (EXTRA_CFLAGS, e.g. -Werror, is left out).
FLAGS_STAMP = $(BUILD)/cflags
$(shell mkdir -p $(BUILD); echo '$(CC) $(CFLAGS)' | cmp -s - $(FLAGS_STAMP) || echo '$(CC) $(CFLAGS)' > $(FLAGS_STAMP))
CFLAGS += $(EXTRA_CFLAGS)
# The CPU programs keep their names across the x86 ISAs: this stamp changes with ISA, so they relink.
ifneq ($(ISA),aarch64)
ISA_STAMP = build/last_isa
$(shell mkdir -p build; [ "$$(cat $(ISA_STAMP) 2>/dev/null)" = "$(ISA)" ] || echo $(ISA) > $(ISA_STAMP))
endif
PROGRAMS = train_gpt2$(EXE) infer$(EXE) prepare$(EXE)

# Everything but the two programs: kernels, model graph, data. test/capi.c is the test entry point.
LIB_SRC = $(filter-out data/prepare.c model/default_cuda.c,$(wildcard common/*.c layers/*.c attention/*.c model/*.c \
                                                                 data/*.c dist/*.c))
LIB_OBJ = $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC))

# CUDA: SASS for sm_80 (A100) and sm_90 (H100/H200), so no PTX JIT on these; plus compute_90 PTX,
# which the driver compiles at start on newer GPUs (sm_100, sm_120) instead of failing (CUDA_ARCHS;
# make gpu_bundle builds sm_90 alone). PRECISION=BF16 (default: bf16 parameters and activations, fp32
# master weights) or PRECISION=FP32 (for tight tests).
NVCC ?= nvcc
PRECISION ?= BF16
PRECISION_FLAG = $(if $(filter BF16,$(PRECISION)),-DATTNLAB_BF16,)
CUDA_ARCHS ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=[sm_90,compute_90]
# NCCL and cuBLASLt: the toolkit's or the system's where they are there; else the pip wheels' (NCCL from
# nvidia-nccl-cu13, as PyTorch installs it), found by scripts/build_tools/find_cuda_libs.sh; NCCL_DIR / CUBLAS_DIR
# (a folder with include/ and lib/) say where by hand. A wheel's folder goes into the include and
# library paths and the programs' rpath, and its library is linked by file name (a wheel has
# libnccl.so.2, not libnccl.so).
ifeq ($(origin NCCL_DIR),undefined)
NCCL_DIR := $(shell command -v $(NVCC) > /dev/null && bash scripts/build_tools/find_cuda_libs.sh dir nccl)
endif
ifeq ($(origin CUBLAS_DIR),undefined)
CUBLAS_DIR := $(shell command -v $(NVCC) > /dev/null && bash scripts/build_tools/find_cuda_libs.sh dir cublasLt)
endif
lib_include = $(if $(1),$(if $(wildcard $(1)/include),-I$(1)/include))
lib_link = $(if $(1),-L$(1)/lib -Xlinker -rpath=$(1)/lib -l:$(notdir $(firstword $(wildcard $(1)/lib/lib$(2).so*) \
                                                                                 lib$(2).so)),-l$(2))
NVCC_FLAGS = -O3 -std=c++17 -I. --default-stream per-thread $(PRECISION_FLAG) $(CUDA_ARCHS) \
             -Xcompiler -Wall,-Wextra,-fopenmp --Werror all-warnings $(call lib_include,$(NCCL_DIR)) \
             $(call lib_include,$(CUBLAS_DIR))
CUDA_LIBS = $(call lib_link,$(CUBLAS_DIR),cublasLt) $(call lib_link,$(NCCL_DIR),nccl) -lgomp -lm
CUDA_BUILD = build/cuda/$(PRECISION)
CU_SRC = $(wildcard common/*.cu layers/*.cu attention/*.cu model/*.cu dist/*.cu)
CU_OBJ = $(patsubst %.cu,$(CUDA_BUILD)/%.o,$(CU_SRC))
# C files whose memory layout depends on floatX: compiled again for each CUDA precision
FLOATX_SRC = model/gpt.c model/checkpoint.c model/tensors.c model/analysis.c
FLOATX_OBJ = $(patsubst %.c,$(CUDA_BUILD)/%.o,$(FLOATX_SRC))
# the rest of the library (data, common, the CPU kernels that test_cuda compares against)
SHARED_OBJ = $(patsubst %.c,$(BUILD)/%.o,$(filter-out model/cpu_kernels.c model/default_cpu.c dist/comm_threads.c \
                                                   $(FLOATX_SRC),$(LIB_SRC)))
# test_cuda's whole-model check runs the CPU and CUDA tables side by side: same floatX, FP32 only
TEST_CUDA_CPU_TABLE = $(if $(filter FP32,$(PRECISION)),$(CUDA_BUILD)/model/cpu_kernels.o,)
TEST_CUDA_SRC = $(wildcard test/cuda/test_*.cu)
# The CUDA programs keep their names across precisions: this stamp changes with PRECISION, so they relink.
CUDA_STAMP = build/cuda/last_precision
$(shell mkdir -p build/cuda; [ "$$(cat $(CUDA_STAMP) 2>/dev/null)" = "$(PRECISION)" ] || echo $(PRECISION) > $(CUDA_STAMP))

.PHONY: all lib test pytest test_emu bench bench_cuda clean cuda_check cuda test_cuda_emu kernel_resources
.PHONY: fuzz asan aarch64 check_aarch64 gpu_bundle gpu_check_emu
all: $(PROGRAMS) lib

$(BUILD)/%.o: %.c $(wildcard */*.h) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

train_gpt2$(EXE): $(BUILD)/train.o $(LIB_OBJ) $(ISA_STAMP)
	$(CC) $(CFLAGS) $(filter %.o,$^) -o $@ $(LDLIBS)

infer$(EXE): $(BUILD)/infer.o $(LIB_OBJ) $(ISA_STAMP)
	$(CC) $(CFLAGS) $(filter %.o,$^) -o $@ $(LDLIBS)

prepare$(EXE): $(BUILD)/data/prepare.o $(LIB_OBJ) $(ISA_STAMP)
	$(CC) $(CFLAGS) $(filter %.o,$^) -o $@ $(LDLIBS)

# The library for the Python tests, $(BUILD)/libattnlab.so (test/clib.py loads build/libattnlab.so, or
# ATTNLAB_LIB: e.g. ATTNLAB_LIB=build/isa-avx2/libattnlab.so for the ISA=avx2 build).
lib: $(BUILD)/libattnlab.so
$(BUILD)/libattnlab.so: $(LIB_OBJ) $(BUILD)/test/capi.o
	$(CC) $(CFLAGS) -shared $^ -o $@ $(LDLIBS)

# The CPU programs for aarch64 (NEON shapes), cross-compiled: train_gpt2-aarch64, infer-aarch64,
# prepare-aarch64 (needs gcc-aarch64-linux-gnu; scripts/install_deps.sh installs it). Off ARM they run
# under qemu-user: scripts/check/check_aarch64.sh trains every mixer a few steps and compares the losses
# with this machine's build.
aarch64:
	$(MAKE) ISA=aarch64 train_gpt2-aarch64 infer-aarch64 prepare-aarch64
check_aarch64: train_gpt2 aarch64
	bash scripts/check/check_aarch64.sh

# The tests: every kernel and the whole model against PyTorch float64, then test_cuda in the CPU
# emulation of CUDA in both precisions (docs/CUDA.md).
test: pytest test_emu

pytest: train_gpt2 infer prepare lib
	ATTNLAB_LIB=$(abspath $(BUILD)/libattnlab.so) $(PYTHON) -m pytest -q test

test_emu:
	$(MAKE) test_cuda_emu PRECISION=BF16
	$(MAKE) test_cuda_emu PRECISION=FP32
	@if command -v $(NVCC) > /dev/null; then $(MAKE) --no-print-directory kernel_resources; \
	 else echo "no $(NVCC): kernel resource check skipped (make cuda_check runs it)"; fi

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
# its cuda_runtime.h). Runs here and in CI; it does not replace test_cuda on a GPU. The kernels, the
# tests and the cuBLASLt emulation are compiled with AddressSanitizer (the emulation poisons what a
# kernel may not touch: shared memory outside the block's arrays, the bytes around each device
# allocation) and the alignment check (a misaligned float4 or 16-byte pack aborts, as it faults on a
# GPU); stack instrumentation is off (the threads of a block are coroutines on stacks of their own).
EMU_BUILD = build/emu/$(PRECISION)
EMU_DIR = test/cuda/emulate
EMU_SANITIZE = -fsanitize=address,alignment -fno-sanitize-recover=alignment --param=asan-stack=0 \
               -fno-sanitize-address-use-after-scope -fno-omit-frame-pointer
EMU_FLAGS = -std=c++17 -O2 -Wall -Wextra -Wno-unknown-pragmas -I$(EMU_DIR) -I$(EMU_BUILD)/include -I. $(PRECISION_FLAG) \
            $(EXTRA_CFLAGS) $(EMU_SANITIZE)
EMU_LINK = $(CXX) -fsanitize=address $^ -o $@ -fopenmp -lm
EMU_HEADERS = $(wildcard $(EMU_DIR)/*.h $(EMU_DIR)/common/*.cuh */*.h */*.cuh)
# emulate_nccl.cpp: NCCL for dist/comm_nccl.cu, between emulated devices driven by threads of one process
EMU_RUNTIME_OBJ = $(EMU_BUILD)/emulate.o $(EMU_BUILD)/emulate_math.o $(EMU_BUILD)/emulate_nccl.o
EMU_KERNEL_OBJ = $(patsubst %.cu,$(EMU_BUILD)/%.o,$(CU_SRC)) $(EMU_RUNTIME_OBJ) $(EMU_BUILD)/cublaslt.o
EMU_TEST_OBJ = $(patsubst %.cu,$(EMU_BUILD)/%.o,$(TEST_CUDA_SRC) test/cuda/main.cu)
# the scheduler itself is not instrumented (it poisons and reports through the sanitizer's interface)
$(EMU_RUNTIME_OBJ): EMU_SANITIZE =

# The project's .cuh headers go through launches.py too (their __shared__ declarations and launches),
# into $(EMU_BUILD)/include: found after the emulation's own headers, before the originals.
EMU_CUH = $(filter-out $(patsubst $(EMU_DIR)/%,%,$(wildcard $(EMU_DIR)/common/*.cuh)),$(wildcard */*.cuh test/cuda/*.cuh))
EMU_GEN_CUH = $(patsubst %,$(EMU_BUILD)/include/%,$(EMU_CUH))
$(EMU_GEN_CUH): $(EMU_BUILD)/include/%.cuh: %.cuh $(EMU_DIR)/launches.py
	@mkdir -p $(dir $@)
	$(PYTHON) $(EMU_DIR)/launches.py $< $@

# -include cuda_runtime.h: as nvcc does, so __CUDA_ARCH__ is defined before any header (common/fastmath.h
# picks the device math by it, whatever order a .cu file includes its headers in).
$(EMU_BUILD)/%.o: %.cu $(EMU_HEADERS) $(EMU_GEN_CUH) $(EMU_DIR)/launches.py
	@mkdir -p $(dir $@)
	$(PYTHON) $(EMU_DIR)/launches.py $< $(EMU_BUILD)/$*.cpp
	$(CXX) $(EMU_FLAGS) -include cuda_runtime.h -c $(EMU_BUILD)/$*.cpp -o $@

$(EMU_BUILD)/%.o: $(EMU_DIR)/%.cpp $(EMU_HEADERS) $(EMU_GEN_CUH)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_FLAGS) -c $< -o $@

$(EMU_BUILD)/test_cuda_emu: $(EMU_TEST_OBJ) $(EMU_KERNEL_OBJ) $(SHARED_OBJ) $(FLOATX_OBJ) $(TEST_CUDA_CPU_TABLE)
	$(EMU_LINK)

# The emulation's own checks, each against a kernel with the bug it must catch (test/cuda/emulate/selftest.cu).
$(EMU_BUILD)/selftest: $(EMU_BUILD)/test/cuda/emulate/selftest.o $(EMU_RUNTIME_OBJ) $(EMU_BUILD)/common/cuda_common.o \
                       $(BUILD)/common/check.o
	$(EMU_LINK)

# train_gpt2cu and infercu on the emulation: train.c, infer.c and the model graph as in the CUDA programs.
EMU_PROGRAM_OBJ = $(FLOATX_OBJ) $(SHARED_OBJ) $(EMU_KERNEL_OBJ) $(CUDA_BUILD)/model/default_cuda.o
$(EMU_BUILD)/train_gpt2cu: $(CUDA_BUILD)/train.o $(EMU_PROGRAM_OBJ)
	$(EMU_LINK)

$(EMU_BUILD)/infercu: $(CUDA_BUILD)/infer.o $(EMU_PROGRAM_OBJ)
	$(EMU_LINK)

# The emulation's self-test, test_cuda, then the CUDA programs against the CPU programs
# (scripts/check/compare_cuda_cpu.sh), all on the emulation. One line per check goes to the logs; the
# failures and the summaries are printed. The bounds are explained in scripts/check/compare_cuda_cpu.sh.
# The fp32 build also trains on 2 emulated GPUs through dist/comm_nccl.cu and the NCCL emulation
# (scripts/check/check_data_parallel_cuda.sh: 2 ranks and ZeRO-1 against 1 GPU with the whole batch, and a
# resumed run byte for byte; once, in fp32, where the bound is tight).
# The bf16 build runs the blocks of each launch on 2 host threads at once (EMU_CONCURRENCY; races
# between blocks happen for real and show in the run-twice determinism checks), the fp32 build one
# block at a time in alternating order; the fast-math deviations lean one way in one build and the
# other way in the other (EMU_MATH_SEED). Both can be set on the command line.
EMU_COMPARE = $(if $(filter BF16,$(PRECISION)),2e-2 report,1e-4 exact)
EMU_CONCURRENCY = $(if $(filter BF16,$(PRECISION)),2,1)
EMU_MATH_SEED = $(if $(filter BF16,$(PRECISION)),1,2)
EMU_ENV = EMU_CONCURRENCY=$(EMU_CONCURRENCY) EMU_MATH_SEED=$(EMU_MATH_SEED)
test_cuda_emu: $(EMU_BUILD)/selftest $(EMU_BUILD)/test_cuda_emu $(EMU_BUILD)/train_gpt2cu $(EMU_BUILD)/infercu \
               train_gpt2 infer prepare
	@echo "emulation self-test ($(PRECISION)): log in $(EMU_BUILD)/selftest.log"
	@$(EMU_BUILD)/selftest > $(EMU_BUILD)/selftest.log 2>&1; status=$$?; \
	 grep -E "^FAIL" $(EMU_BUILD)/selftest.log; tail -n 1 $(EMU_BUILD)/selftest.log; exit $$status
	@echo "test_cuda (CPU emulation, $(PRECISION), $(EMU_ENV)): log in $(EMU_BUILD)/test_cuda_emu.log"
	@$(EMU_ENV) $(EMU_BUILD)/test_cuda_emu > $(EMU_BUILD)/test_cuda_emu.log 2>&1; status=$$?; \
	 grep -E "^(FAIL|EMU|error)" $(EMU_BUILD)/test_cuda_emu.log; tail -n 1 $(EMU_BUILD)/test_cuda_emu.log; exit $$status
	@echo "train_gpt2cu, infercu vs train_gpt2, infer (CPU emulation, $(PRECISION)): logs in $(EMU_BUILD)/compare"
	@$(EMU_ENV) PYTHON=$(PYTHON) bash scripts/check/compare_cuda_cpu.sh $(EMU_BUILD) $(EMU_BUILD)/compare $(EMU_COMPARE)
	@$(if $(filter FP32,$(PRECISION)),echo "train_gpt2cu on 2 emulated GPUs (NCCL emulation, FP32): log in \
	 $(EMU_BUILD)/data_parallel.log"; EMU_DEVICES=2 PYTHON=$(PYTHON) bash scripts/check/check_data_parallel_cuda.sh \
	 $(EMU_BUILD) $(EMU_BUILD)/data_parallel 1e-4 2 > $(EMU_BUILD)/data_parallel.log 2>&1; status=$$?; \
	 grep -E "^(ok|FAIL)|resumed" $(EMU_BUILD)/data_parallel.log; exit $$status,true)

# The attention kernels alone on a GPU (TFLOP/s against the chip's peak); the emulated one runs small
# shapes in scripts/gpu_check.sh --emulate.
bench_attention_cuda: $(CUDA_BUILD)/scripts/bench/bench_attention.o $(SHARED_OBJ) $(CU_OBJ) $(CUDA_STAMP)
	$(NVCC) $(NVCC_FLAGS) $(filter %.o,$^) -o $@ $(CUDA_LIBS)

$(EMU_BUILD)/bench_attention_cuda: $(EMU_BUILD)/scripts/bench/bench_attention.o $(SHARED_OBJ) $(EMU_KERNEL_OBJ)
	$(EMU_LINK)

# The prebuilt programs a GPU check carries to the device machine (docs/GPU.md): both precisions, sm_90
# SASS, x86-64-v3 host code, in build/gpu_bundle.tar.gz (at most 16 MiB; scripts/build_tools/gpu_bundle.sh).
gpu_bundle:
	bash scripts/build_tools/gpu_bundle.sh build/gpu_bundle.tar.gz

# The GPU check's dry run (scripts/gpu_check.sh --emulate): every stage on the emulated programs at
# small shapes, verdicts and the 8-file rule checked, in a scratch folder.
gpu_check_emu: train_gpt2 infer prepare
	$(MAKE) --no-print-directory PRECISION=BF16 build/emu/BF16/test_cuda_emu build/emu/BF16/train_gpt2cu \
	 build/emu/BF16/infercu build/emu/BF16/bench_attention_cuda
	$(MAKE) --no-print-directory PRECISION=FP32 build/emu/FP32/test_cuda_emu build/emu/FP32/train_gpt2cu \
	 build/emu/FP32/infercu
	out=$$(mktemp -d) && OUT=$$out PYTHON=$(PYTHON) bash scripts/gpu_check.sh --emulate && rm -rf $$out

# Compile-and-link check of the CUDA toolkit, cuBLASLt and NCCL (runs nothing here), and every
# kernel's registers, shared memory and spills from ptxas for sm_80 and sm_90 against the launch
# configurations in the code (scripts/check/check_kernel_resources.sh, after its self-test of planted bugs).
# (a stamp: make test_emu runs it again only when a CUDA source changed)
cuda_check: build/cuda_link_check kernel_resources
kernel_resources: build/resources/passed
build/resources/passed: scripts/check/check_kernel_resources.sh $(CU_SRC) $(wildcard */*.h */*.cuh)
	@bash scripts/check/check_kernel_resources.sh --selftest
	@NVCC="$(NVCC)" NVCC_FLAGS="$(NVCC_FLAGS)" PYTHON=$(PYTHON) bash scripts/check/check_kernel_resources.sh
	@touch $@
build/cuda_link_check: test/cuda/link_check.cu
	@mkdir -p build
	$(NVCC) $(NVCC_FLAGS) $< -o $@ $(CUDA_LIBS)

# The benchmarks (docs/PERF.md): on the CPU, training throughput and the matmul against PyTorch 2.x,
# tokenizer encoding against tiktoken; on a machine with an NVIDIA GPU also bench_cuda.
# PyTorch here is 2.x from PyPI in build/bench_venv (scripts/bench/bench_env.sh installs it; the tests use Debian's).
bench: train_gpt2 prepare lib
	$$(bash scripts/bench/bench_env.sh) scripts/bench/bench_cpu.py --lib $(BUILD)/libattnlab.so
	$$(bash scripts/bench/bench_env.sh) scripts/bench/bench_matmul.py --lib $(BUILD)/libattnlab.so
	$(PYTHON) scripts/bench/bench_tokenizer.py
	@if nvidia-smi -L > /dev/null 2>&1; then $(MAKE) bench_cuda; else echo "no NVIDIA GPU: make bench_cuda skipped"; fi

# The GPU benchmarks (bf16 build): GPT-2 124M training tokens/s and MFU, the attention kernels' TFLOP/s.
bench_cuda:
	$(MAKE) cuda PRECISION=BF16
	bash scripts/bench/bench_cuda.sh build/bench_cuda

# The sanitizer build (docs/RELIABILITY.md): the CPU programs and library with ASan and UBSan in
# build/asan; scripts/check/sanitizer_run.sh runs the pytest suite against them, then a short train,
# resume, infer and prepare for every mixer. Any report fails.
ASAN_BUILD = build/asan
ASAN_CFLAGS = -std=c11 -D_GNU_SOURCE -fopenmp -fPIC -Wall -Wextra -I. -g -O1 -fno-omit-frame-pointer \
              -fsanitize=address,undefined -fno-sanitize-recover=all $(EXTRA_CFLAGS)
ASAN_LIB_OBJ = $(patsubst %.c,$(ASAN_BUILD)/%.o,$(LIB_SRC))

$(ASAN_BUILD)/%.o: %.c $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -c $< -o $@

.PRECIOUS: $(ASAN_BUILD)/%.o

$(ASAN_BUILD)/train_gpt2: $(ASAN_BUILD)/train.o $(ASAN_LIB_OBJ)
	$(CC) $(ASAN_CFLAGS) $^ -o $@ $(LDLIBS)

$(ASAN_BUILD)/infer: $(ASAN_BUILD)/infer.o $(ASAN_LIB_OBJ)
	$(CC) $(ASAN_CFLAGS) $^ -o $@ $(LDLIBS)

$(ASAN_BUILD)/prepare: $(ASAN_BUILD)/data/prepare.o $(ASAN_LIB_OBJ)
	$(CC) $(ASAN_CFLAGS) $^ -o $@ $(LDLIBS)

$(ASAN_BUILD)/libattnlab.so: $(ASAN_LIB_OBJ) $(ASAN_BUILD)/test/capi.o
	$(CC) $(ASAN_CFLAGS) -shared $^ -o $@ $(LDLIBS)

asan: $(addprefix $(ASAN_BUILD)/,train_gpt2 infer prepare libattnlab.so)
	PYTHON=$(PYTHON) bash scripts/check/sanitizer_run.sh $(ASAN_BUILD)

# Fuzzing (test/fuzz, docs/RELIABILITY.md): libFuzzer targets for the shard, tokenizer, checkpoint and
# state loaders and the BPE encoder, built with clang, ASan and UBSan in build/fuzz; each runs
# FUZZ_SECONDS from the seeds test/fuzz/seeds.py writes with this build's programs. The harness
# tracks the library's memory and files through the linker's --wrap (test/fuzz/harness.h).
FUZZ_CC ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_BUILD = build/fuzz
FUZZ_TARGETS = shard tokenizer bpe checkpoint state
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -fopenmp -I. -Wall -Wextra -Wno-pass-failed \
              -fsanitize=address,undefined -fno-sanitize-recover=all $(EXTRA_CFLAGS)
FUZZ_WRAP = -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free,--wrap=fopen,--wrap=fdopen,--wrap=fclose
FUZZ_LIB_OBJ = $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(LIB_SRC)) $(FUZZ_BUILD)/test/fuzz/harness.o

$(FUZZ_BUILD)/%.o: %.c $(wildcard */*.h test/fuzz/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

# layers/matmul.c needs GCC's vector builtins: gcc compiles it, without sanitizers (no loader runs it)
$(FUZZ_BUILD)/layers/matmul.o: layers/matmul.c $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -fopenmp -I. -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/test/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $^ -o $@ $(FUZZ_WRAP) -lm

.PRECIOUS: $(FUZZ_BUILD)/%.o   # pattern-built objects would be deleted as intermediates: rebuilt every time

fuzz: $(addprefix $(FUZZ_BUILD)/fuzz_,$(FUZZ_TARGETS)) train_gpt2 prepare
	$(PYTHON) test/fuzz/seeds.py $(FUZZ_BUILD)/seeds
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash test/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TARGETS)

clean:
	rm -rf build train_gpt2 infer prepare train_gpt2cu infercu test_cuda bench_attention_cuda \
	       train_gpt2-aarch64 infer-aarch64 prepare-aarch64
