# rusca Makefile: one binary (build/rusca) and one test binary (build/rusca_tests).
# CUDA sources (cuda/*.cu) are compiled for sm_90a (+ compute_90 PTX) whenever nvcc exists,
# even on machines without a GPU; without nvcc we build the CPU backend only and say so.
#   make            build build/rusca            make test    build and run every test
#   make demo       RuscaRL on the shipped world make bench   CPU training benchmark
#   make -j2        builds in parallel; translation units are kept small on purpose.

CXX      ?= g++
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
BUILD    := build
# x86-64-v3 = AVX2 + FMA: fast here, and still runs on the GPU machine's host CPU.
CXXFLAGS := -std=c++17 -O3 -march=x86-64-v3 -fopenmp -Wall -Wextra -Wno-unused-parameter -MMD -MP -I.
LDFLAGS  := -fopenmp -Wl,-rpath,'$$ORIGIN/lib'
LDLIBS   := -lsentencepiece -lsentencepiece_train -lfmt -lpthread

HOST_SRCS := $(filter-out host/main.cpp,$(wildcard host/*.cpp host/cpu/*.cpp host/cuda/*.cpp tokenizer/*.cpp))
TEST_SRCS := $(wildcard tests/*.cpp)
CU_SRCS   := $(wildcard cuda/*.cu)

ifneq ($(NVCC),)
  CUDA_HOME  := $(patsubst %/bin/nvcc,%,$(NVCC))
  NVCCFLAGS  := -std=c++17 -O3 -I. -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_90,code=compute_90 \
                -Xcompiler -fopenmp,-march=x86-64-v3 -MMD -MP
  CXXFLAGS   += -DRUSCA_CUDA=1 -I$(CUDA_HOME)/include
  LDLIBS     += -L$(CUDA_HOME)/lib64 -lcublasLt -lcudart_static -ldl -lrt
  CU_OBJS    := $(CU_SRCS:%.cu=$(BUILD)/obj/%.o)
  BACKENDS   := CPU + CUDA (sm_90a)
else
  CU_OBJS    :=
  BACKENDS   := CPU only (nvcc not found: CUDA backend not built)
endif

HOST_OBJS := $(HOST_SRCS:%.cpp=$(BUILD)/obj/%.o)
TEST_OBJS := $(TEST_SRCS:%.cpp=$(BUILD)/obj/%.o)
DEPS_OK   := $(BUILD)/.deps-ok
# Shared libraries the GPU machine may lack are copied next to the binary (found via rpath).
BUNDLED   := $(BUILD)/lib/libfmt.so.9 $(BUILD)/lib/libsentencepiece_train.so.0

.PHONY: all test demo bench clean
all: $(BUILD)/rusca
	@echo "rusca built: $(BACKENDS)"

$(DEPS_OK): tools/install_deps.sh
	@mkdir -p $(BUILD) && tools/install_deps.sh && touch $@

$(BUILD)/lib/%: | $(DEPS_OK)
	@mkdir -p $(BUILD)/lib && cp -L /usr/lib/x86_64-linux-gnu/$* $@

$(BUILD)/obj/%.o: %.cpp | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/obj/tests/%.o: tests/%.cpp | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -DRUSCA_SOURCE_DIR='"$(CURDIR)"' -c $< -o $@

$(BUILD)/obj/%.o: %.cu | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(BUILD)/rusca: $(BUILD)/obj/host/main.o $(HOST_OBJS) $(CU_OBJS) | $(BUNDLED)
	$(CXX) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/rusca_tests: $(TEST_OBJS) $(HOST_OBJS) $(CU_OBJS) | $(BUNDLED)
	$(CXX) $(LDFLAGS) $^ -o $@ $(LDLIBS) -lgtest

test: $(BUILD)/rusca $(BUILD)/rusca_tests
	@$(BUILD)/rusca_tests

# The demo builds with every core (a clean clone should reach training in minutes), then runs.
demo:
	@$(MAKE) --no-print-directory -j$$(nproc) $(BUILD)/rusca
	tools/demo.sh

bench: $(BUILD)/rusca
	$(BUILD)/rusca bench cpu-train

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
