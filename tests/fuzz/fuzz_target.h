// fuzz_target.h: one fuzz target per input surface, each a function of the input bytes, built two ways:
//  - `make fuzz` compiles each tests/fuzz/fuzz_<name>.cpp alone with clang -fsanitize=fuzzer,address,
//    undefined and RUSCA_LIBFUZZER defined: the target becomes LLVMFuzzerTestOneInput;
//  - `make test` links every target into build/rusca_tests (g++), registered by name, and
//    tests/test_fuzz_replay.cpp feeds it each committed corpus and regression file.
// A target passes an input when it returns, or throws a rusca::Error whose message names the input
// (the clear one-line error users get). Anything else escaping (a library's exception, a message
// that does not say which file) is a finding: FuzzFinding, or a crash the sanitizers report.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace rusca::fuzz {

using TargetFn = void (*)(const uint8_t* data, size_t size);

struct FuzzFinding : std::logic_error {
    explicit FuzzFinding(const std::string& what) : std::logic_error(what) {}
};

// Runs fn; a rusca::Error is expected for bad input but must name `name` (the file).
void expect_clean(const std::string& name, const std::function<void()>& fn);

// A file in this process's scratch folder (made once, removed at exit) holding `bytes`; returns its path.
std::string scratch_file(const std::string& name, const uint8_t* data, size_t size);
std::string scratch_dir();

// The source tree, for fixtures such as data/world/tokenizer.model.
std::string source_path(const std::string& rel);

int register_target(const char* name, TargetFn fn);  // replay build: adds to the list below
struct Target {
    const char* name;
    TargetFn fn;
};
const std::vector<Target>& targets();

}  // namespace rusca::fuzz

#ifdef RUSCA_LIBFUZZER
#define RUSCA_FUZZ_TARGET(name)                                                         \
    static void rusca_fuzz_##name(const uint8_t* data, size_t size);                   \
    extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {          \
        rusca_fuzz_##name(data, size);                                                  \
        return 0;                                                                       \
    }                                                                                   \
    static void rusca_fuzz_##name(const uint8_t* data, size_t size)
#else
#define RUSCA_FUZZ_TARGET(name)                                                                       \
    static void rusca_fuzz_##name(const uint8_t* data, size_t size);                                  \
    [[maybe_unused]] static const int rusca_fuzz_registered_##name =                                   \
        ::rusca::fuzz::register_target(#name, rusca_fuzz_##name);                                     \
    static void rusca_fuzz_##name(const uint8_t* data, size_t size)
#endif
