# rusca Makefile: one binary (build/rusca) and one test binary (build/rusca_tests).
# CUDA sources (cuda/*.cu) are compiled for sm_90a (+ compute_90 PTX) whenever nvcc exists,
# even on machines without a GPU; without nvcc we build the CPU backend only and say so.
# The emulator build compiles the same CUDA sources with g++ against cuda/emu/ (the SIMT emulator)
# whenever CUDA's headers exist: build/rusca-emu and build/rusca_emu_tests (the GPU tests).
#   make            build build/rusca            make test    build and run every test (both binaries)
#   make demo       RuscaRL on the shipped world make bench   CPU training benchmark
#   make -j2        builds in parallel; translation units are kept small on purpose.

CXX      ?= g++
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
BUILD    := build
# x86-64-v3 = AVX2 + FMA: fast here, and still runs on the GPU machine's host CPU.
BASE_CXXFLAGS := -std=c++17 -O3 -march=x86-64-v3 -fopenmp -Wall -Wextra -Wno-unused-parameter -MMD -MP -I.
CXXFLAGS := $(BASE_CXXFLAGS)
LDFLAGS  := -fopenmp -Wl,-rpath,'$$ORIGIN/lib'
# No -lcurl: libcurl is loaded at run time, only for --judge-url (host/curl_api.h).
LDLIBS   := -lsentencepiece -lsentencepiece_train -lfmt -lpcre2-8 -lutf8proc -lpthread -ldl

HOST_SRCS := $(filter-out host/main.cpp,$(wildcard host/*.cpp host/cpu/*.cpp host/cuda/*.cpp tokenizer/*.cpp))
# tests/test_emu_*.cpp hold kernels compiled by g++: emulator build only. tests/test_cuda_*.cu hold
# kernels that run in both builds (nvcc on the GPU, g++ on the emulator).
TEST_SRCS := $(filter-out tests/test_emu_%.cpp,$(wildcard tests/*.cpp)) $(wildcard tests/fuzz/*.cpp)
TEST_CU_SRCS := $(wildcard tests/test_cuda_*.cu)
CU_SRCS   := $(wildcard cuda/*.cu)

ifneq ($(NVCC),)
  CUDA_HOME  := $(patsubst %/bin/nvcc,%,$(NVCC))
  NVCCFLAGS  := -std=c++17 -O3 -I. -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_90,code=compute_90 \
                -Xcompiler -fopenmp,-march=x86-64-v3 -MMD -MP
  CXXFLAGS   += -DRUSCA_CUDA=1 -I$(CUDA_HOME)/include
  LDLIBS     += -L$(CUDA_HOME)/lib64 -lcublasLt -lcudart_static -ldl -lrt
  CU_OBJS    := $(CU_SRCS:%.cu=$(BUILD)/obj/%.o)
  # NCCL (multi-GPU data parallel, host/cuda/comm_nccl.cpp) when its header is there.
  ifneq ($(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h),)
    CXXFLAGS += -DRUSCA_NCCL=1
    LDLIBS   += -lnccl
  endif
  TEST_CU_OBJS := $(TEST_CU_SRCS:%.cu=$(BUILD)/obj/%.o)
  BACKENDS   := CPU + CUDA (sm_90a)
else
  CU_OBJS    :=
  TEST_CU_OBJS :=
  BACKENDS   := CPU only (nvcc not found: CUDA backend not built)
endif

# ---- the emulator build: every file that includes CUDA headers, compiled again by g++ ----
CUDA_INC  := $(firstword $(wildcard $(CUDA_HOME)/include /usr/local/cuda/include))
EMU       := $(BUILD)/emu
EMU_OPT   ?= -O2
EMU_CXXFLAGS := $(BASE_CXXFLAGS) $(EMU_OPT) -fno-strict-aliasing -Wno-unknown-pragmas -DRUSCA_CUDA=1 -DRUSCA_EMU=1 -Icuda/emu/include -I$(CUDA_INC) -I$(CUDA_INC)/cccl
EMU_HOST_SRCS := $(wildcard host/cuda/*.cpp) $(shell grep -l RUSCA_CUDA host/*.cpp)
EMU_TEST_SRCS := $(wildcard tests/test_cuda_*.cpp tests/test_emu_*.cpp)
EMU_TEST_OBJS := $(EMU_TEST_SRCS:%.cpp=$(EMU)/obj/%.o) $(TEST_CU_SRCS:%.cu=$(EMU)/obj/%.o)
EMU_OBJS  := $(EMU_HOST_SRCS:%.cpp=$(EMU)/obj/%.o) $(CU_SRCS:%.cu=$(EMU)/obj/%.o) \
             $(patsubst %.cpp,$(EMU)/obj/%.o,$(wildcard cuda/emu/*.cpp))
SHARED_OBJS := $(filter-out $(EMU_HOST_SRCS:%.cpp=$(BUILD)/obj/%.o),$(HOST_SRCS:%.cpp=$(BUILD)/obj/%.o))
EMU_LDLIBS := -lsentencepiece -lsentencepiece_train -lfmt -lpcre2-8 -lutf8proc -lpthread -lboost_context -ldl

# Data parallel on CPU ranks: the MPI communicator is a plugin, build/lib/librusca_mpi.so, that rusca
# dlopens only when mpirun / srun started several ranks, so the binary starts where libmpi is absent.
# Built when pkg-config knows an MPI (Debian: libopenmpi-dev, which install_deps.sh installs), else
# skipped with a note: the MPI is looked up when the rule runs, after install_deps.sh.
MPI_PLUGIN := $(BUILD)/lib/librusca_mpi.so

HOST_OBJS := $(HOST_SRCS:%.cpp=$(BUILD)/obj/%.o)
TEST_OBJS := $(TEST_SRCS:%.cpp=$(BUILD)/obj/%.o)
DEPS_OK   := $(BUILD)/.deps-ok
# Shared libraries the GPU machine may lack are copied next to the binary (found via rpath).
BUNDLED   := $(BUILD)/lib/libfmt.so.9 $(BUILD)/lib/libsentencepiece_train.so.0 $(BUILD)/lib/libutf8proc.so.2

.PHONY: all emu emu-debug emu-tsan emu-asan test test-bins check-sources demo bench clean fuzz fuzz-bins
all: $(BUILD)/rusca
	@echo "rusca built: $(BACKENDS)"
emu: $(BUILD)/rusca-emu $(BUILD)/rusca_emu_tests

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

$(MPI_PLUGIN): host/mpi/comm_mpi.cpp | $(DEPS_OK)
	@pc=$$(for p in ompi-c mpich mpi; do pkg-config --exists $$p 2>/dev/null && { echo $$p; break; }; done); \
	if [ -z "$$pc" ]; then echo "no MPI (pkg-config ompi-c/mpich/mpi): $@ not built, one rank only"; exit 0; fi; \
	mkdir -p $(BUILD)/lib $(BUILD)/obj/host/mpi; \
	cmd="$(CXX) -std=c++17 -O2 -Wall -Wextra -fPIC -shared -I. -MMD -MP -MF $(BUILD)/obj/host/mpi/comm_mpi.d \
	    $$(pkg-config --cflags $$pc) $< -o $@ $$(pkg-config --libs $$pc)"; echo $$cmd; $$cmd

$(BUILD)/rusca: $(BUILD)/obj/host/main.o $(HOST_OBJS) $(CU_OBJS) | $(BUNDLED) $(MPI_PLUGIN)
	$(CXX) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/obj/tests/%.o: tests/%.cu | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -DRUSCA_CUDA=1 -c $< -o $@

$(BUILD)/rusca_tests: $(TEST_OBJS) $(TEST_CU_OBJS) $(HOST_OBJS) $(CU_OBJS) | $(BUNDLED) $(MPI_PLUGIN)
	$(CXX) $(LDFLAGS) $^ -o $@ $(LDLIBS) -lgtest

$(EMU)/obj/%.o: %.cpp | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -c $< -o $@

$(EMU)/obj/tests/%.o: tests/%.cpp | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -DRUSCA_SOURCE_DIR='"$(CURDIR)"' -c $< -o $@

$(EMU)/obj/cuda/%.o: cuda/%.cu | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -x c++ -c $< -o $@

$(EMU)/obj/tests/%.o: tests/%.cu | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -x c++ -c $< -o $@

$(BUILD)/rusca-emu: $(BUILD)/obj/host/main.o $(SHARED_OBJS) $(EMU_OBJS) | $(BUNDLED) $(MPI_PLUGIN)
	$(CXX) $(LDFLAGS) $^ -o $@ $(EMU_LDLIBS)

EMU_TESTS_BIN ?= $(BUILD)/rusca_emu_tests
$(EMU_TESTS_BIN): $(BUILD)/obj/tests/main.o $(EMU_TEST_OBJS) $(SHARED_OBJS) \
                          $(EMU_OBJS) | $(BUNDLED)
	$(CXX) $(LDFLAGS) $(EMU_OPT) $^ -o $@ $(EMU_LDLIBS) -lgtest

# Sanitizer builds of the emulator tests: our racecheck (ThreadSanitizer, with the fiber engine's
# annotations, cuda/emu/sanitizer.h) and memcheck (AddressSanitizer + UBSan). They run a subset:
# the emulator self-tests and the kernels with shared memory and warp collectives (the deliberately
# racy schedule test is left out of TSan: its race is a TSan report, EmuSanitizer checks that).
# Leak checking is off: cuBLASLt's workspace and plan caches (cuda/matmul.cu) live with the process.
SAN_TESTS := Emu*:CudaPtx.*:CudaAttention.ScheduleIndependent:CudaKvAttention.MatchesCpuTwin:CudaCrossEntropy.OneGradientAtATime:CudaEmbedding*:CudaRmsnorm.ForwardInPlaceAndMisaligned:CudaSampler.GreedyTakesLowestArgmax
emu-tsan:
	@$(MAKE) --no-print-directory EMU=$(BUILD)/emu-tsan EMU_TESTS_BIN=$(BUILD)/emu-tsan/rusca_emu_tests \
	    EMU_OPT='-O1 -g -fsanitize=thread' $(BUILD)/emu-tsan/rusca_emu_tests
	OMP_NUM_THREADS=1 TSAN_OPTIONS=halt_on_error=1 $(BUILD)/emu-tsan/rusca_emu_tests \
	    --gtest_filter='$(SAN_TESTS):-EmuEngine.MissingBarrierIsCaughtBySchedules'
# The emulator tests without optimization, for stepping through a kernel in gdb (README).
emu-debug:
	@$(MAKE) --no-print-directory EMU=$(BUILD)/emu-debug EMU_TESTS_BIN=$(BUILD)/emu-debug/rusca_emu_tests \
	    EMU_OPT='-O0 -g' $(BUILD)/emu-debug/rusca_emu_tests
emu-asan:
	@$(MAKE) --no-print-directory EMU=$(BUILD)/emu-asan EMU_TESTS_BIN=$(BUILD)/emu-asan/rusca_emu_tests \
	    EMU_OPT='-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined' \
	    $(BUILD)/emu-asan/rusca_emu_tests
	OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=0 $(BUILD)/emu-asan/rusca_emu_tests --gtest_filter='$(SAN_TESTS)'

# libFuzzer targets (tests/fuzz/README.md): clang, AddressSanitizer + UBSan, CPU sources only.
# make fuzz FUZZ_SECONDS=60 runs each target that long on its corpus (new inputs go to build/fuzz/);
# FUZZ_RUNS=10000000 stops a target at that many executions if that comes first (issue 13's bar).
include tests/fuzz/fuzz.mk

ifneq ($(CUDA_INC),)
  TEST_BINS := $(BUILD)/rusca_tests $(BUILD)/rusca_emu_tests
  EMU_CLI   := $(BUILD)/rusca-emu
else
  TEST_BINS := $(BUILD)/rusca_tests
  EMU_CLI   :=
endif

# Everything `make test` needs, for building in parallel first (make -j2 test-bins; .ci/run).
test-bins: $(BUILD)/rusca $(TEST_BINS) $(EMU_CLI) $(if $(HAVE_FUZZ_CXX),fuzz-bins)

# Both test binaries; the last line adds up their "N passed, N failed, N skipped" lines.
# With clang present, a fuzz smoke (FUZZ_SMOKE_SECONDS per target) runs first; a finding fails the run.
test: check-sources test-bins
	@fz=0; $(if $(HAVE_FUZZ_CXX),tools/run_fuzz.sh $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS) || fz=1;) \
	    tools/run_tests.sh $(TEST_BINS); rc=$$?; [ $$fz -eq 0 ] || rc=1; exit $$rc

# The rules that keep every kernel emulatable (SPEC.md, "Three ways to run a kernel").
check-sources:
	@tools/check_sources.sh

# The demo builds with every core (a clean clone should reach training in minutes), then runs.
demo:
	@$(MAKE) --no-print-directory -j$$(nproc) $(BUILD)/rusca
	tools/demo.sh

bench: $(BUILD)/rusca
	$(BUILD)/rusca bench cpu-train

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj $(EMU)/obj -name '*.d' 2>/dev/null)
