# attnlab build. CPU targets need gcc + OpenMP; CUDA targets need nvcc (they compile without a GPU).
CC ?= gcc
PYTHON ?= /usr/bin/python3
CFLAGS ?= -O3 -march=native -ffp-contract=fast -fno-math-errno
CFLAGS += -std=c11 -D_GNU_SOURCE -fopenmp -fPIC -Wall -Wextra -I. $(EXTRA_CFLAGS)
LDLIBS = -lm -fopenmp

# Everything but the two programs: kernels, model graph, data. test/capi.c is the test entry point.
LIB_SRC = $(filter-out data/prepare.c,$(wildcard common/*.c layers/*.c attention/*.c model/*.c data/*.c dist/*.c))
LIB_OBJ = $(patsubst %.c,build/%.o,$(LIB_SRC))

# CUDA: SASS for sm_80 (A100) and sm_90 (H100/H200), so no PTX JIT on the target.
NVCC ?= nvcc
NVCC_FLAGS = -O3 -std=c++17 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
             -Xcompiler -Wall,-Wextra --Werror all-warnings
CUDA_LIBS = -lcublasLt -lcublas -lnccl

.PHONY: all lib test bench clean cuda_check
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

# The tests: every kernel and the whole model against PyTorch float64 (see README).
test: train_gpt2 infer prepare lib
	$(PYTHON) -m pytest -q test

# Compile-and-link check of the CUDA toolkit, cuBLASLt and NCCL (runs nothing here).
cuda_check: build/cuda_link_check
build/cuda_link_check: test/cuda/link_check.cu
	@mkdir -p build
	$(NVCC) $(NVCC_FLAGS) $< -o $@ $(CUDA_LIBS)

# The CPU benchmarks (docs/PERF.md): training throughput and the matmul against PyTorch, tokenizer
# encoding against tiktoken.
bench: train_gpt2 prepare lib
	$(PYTHON) scripts/bench_cpu.py
	$(PYTHON) scripts/bench_matmul.py
	$(PYTHON) scripts/bench_tokenizer.py

clean:
	rm -rf build train_gpt2 infer prepare
