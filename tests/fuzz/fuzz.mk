# fuzz.mk (included by the Makefile): the libFuzzer build. The host sources the targets use are compiled by
# clang with coverage and sanitizers into one archive; each tests/fuzz/fuzz_<target>.cpp links
# against it as build/fuzz/fuzz_<target>. `make fuzz` runs each for FUZZ_SECONDS on a copy of its
# committed corpus plus the regression inputs; a crash leaves its input in build/fuzz/crashes/<target>/
# (commit it under tests/fuzz/regressions/<target>/ once fixed).
FUZZ_CXX     ?= clang++
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 5
HAVE_FUZZ_CXX := $(shell command -v $(FUZZ_CXX) 2>/dev/null)
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_FLAGS   := -std=c++17 -O1 -g -fopenmp -I. -fno-omit-frame-pointer -fsanitize=address,undefined \
                -fno-sanitize-recover=undefined -DRUSCA_SOURCE_DIR='"$(CURDIR)"'
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.cpp,%,$(filter-out tests/fuzz/fuzz_util.cpp,$(wildcard tests/fuzz/fuzz_*.cpp)))
# The sources the targets reach (a link error names a missing one); not all of host/, to keep the
# sanitizer build short on small machines.
FUZZ_LIB_SRCS := host/checker.cpp host/checkpoint.cpp host/config.cpp host/cpu/infer.cpp host/fileio.cpp \
                 host/cpu/adamw.cpp host/cpu/embedding.cpp host/cpu/kv_attention.cpp host/cpu/linear.cpp \
                 host/cpu/rmsnorm.cpp host/cpu/rope.cpp host/cpu/swiglu.cpp \
                 host/grader.cpp host/json_util.cpp host/judge.cpp host/optimizer.cpp host/params.cpp host/rubric.cpp \
                 host/run_log.cpp host/safetensors.cpp host/scaffold.cpp host/sft_data.cpp \
                 host/template_file.cpp tokenizer/bpe.cpp tokenizer/tokenizer.cpp tests/fuzz/fuzz_util.cpp
FUZZ_LIB_OBJS := $(patsubst %.cpp,$(FUZZ_DIR)/obj/%.o,$(FUZZ_LIB_SRCS))
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

$(FUZZ_DIR)/obj/%.o: %.cpp | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_DIR)/librusca_fuzz.a: $(FUZZ_LIB_OBJS)
	@rm -f $@ && ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.cpp $(FUZZ_DIR)/librusca_fuzz.a
	$(FUZZ_CXX) $(FUZZ_FLAGS) -fsanitize=fuzzer -DRUSCA_LIBFUZZER $< $(FUZZ_DIR)/librusca_fuzz.a -o $@ \
	    -lsentencepiece -lsentencepiece_train -lfmt -lpcre2-8 -lutf8proc -lpthread

fuzz-bins: $(if $(HAVE_FUZZ_CXX),$(FUZZ_BINS),fuzz-no-clang)

.PHONY: fuzz-no-clang
fuzz-no-clang:
	@echo "make fuzz: $(FUZZ_CXX) not found (libFuzzer needs clang: sudo apt-get install clang)" >&2; exit 1

fuzz: fuzz-bins
	@FUZZ_RUNS=$(FUZZ_RUNS) tools/run_fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

-include $(shell find $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
