// test_util.h: small helpers shared by the CPU test suites.
#pragma once
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "host/checkpoint.h"
#include "host/error.h"
#include "host/model.h"

namespace rusca::testutil {

// A fresh directory under /tmp, removed with everything in it when the test ends.
struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/rusca_test_XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    std::string file(const std::string& name) const { return path + "/" + name; }
};

// The message of the rusca::Error that fn throws, or "(no error)".
inline std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

// Expects fn to throw a rusca::Error whose message contains every one of `parts`.
inline void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
    const std::string msg = error_of(fn);
    for (const std::string& p : parts)
        EXPECT_NE(msg.find(p), std::string::npos) << "message \"" << msg << "\" lacks \"" << p << "\"";
}

// A model of config `c` with random weights (seeded, std `std`) saved as a checkpoint folder `dir`;
// returns `dir`. The tests' tiny policies and judges.
inline std::string write_random_model(const std::string& dir, const ModelConfig& c, uint64_t seed, float std) {
    ParamLayout layout(c);
    std::vector<float> params(layout.total);
    init_params(layout, params.data(), seed, std);
    save_model(dir, c, layout, params.data());
    return dir;
}

}  // namespace rusca::testutil

