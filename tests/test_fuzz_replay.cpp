// test_fuzz_replay.cpp: every committed fuzz input (tests/fuzz/corpus/<target>/ seeds and
// tests/fuzz/regressions/<target>/, the inputs that once crashed) fed to its target's entry point,
// the same function libFuzzer runs (tests/fuzz/fuzz_target.h). No clang needed. An input passes when
// the target returns or throws a rusca::Error naming the file; any other exception fails the test.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "tests/fuzz/fuzz_target.h"

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> inputs(const std::string& kind, const std::string& target) {
    std::vector<fs::path> files;
    const fs::path dir = fs::path(RUSCA_SOURCE_DIR) / "tests/fuzz" / kind / target;
    if (fs::is_directory(dir))
        for (const auto& e : fs::directory_iterator(dir))
            if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    return files;
}

std::string bytes_of(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

void replay(const rusca::fuzz::Target& t, const std::vector<fs::path>& files) {
    for (const fs::path& p : files) {
        const std::string b = bytes_of(p);
        try {
            t.fn(reinterpret_cast<const uint8_t*>(b.data()), b.size());
        } catch (const std::exception& e) {
            ADD_FAILURE() << t.name << ": " << p.string() << ": " << e.what();
        }
    }
}

}  // namespace

TEST(FuzzReplay, EveryInputSurfaceHasATargetAndSeeds) {
    std::set<std::string> names;
    for (const auto& t : rusca::fuzz::targets()) {
        names.insert(t.name);
        EXPECT_GE(inputs("corpus", t.name).size(), 2u) << "tests/fuzz/corpus/" << t.name << " needs seeds";
    }
    const std::set<std::string> want = {"config", "grader",   "rubric",         "safetensors", "sentencepiece",
                                        "sft",    "template", "tokenizer_json", "train_state"};
    EXPECT_EQ(names, want);
}

TEST(FuzzReplay, CorporaPass) {
    for (const auto& t : rusca::fuzz::targets()) replay(t, inputs("corpus", t.name));
}

TEST(FuzzReplay, RegressionsPass) {
    for (const auto& t : rusca::fuzz::targets()) replay(t, inputs("regressions", t.name));
}
