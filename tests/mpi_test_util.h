// mpi_test_util.h: running `mpirun -np N build/rusca ...` from a test and comparing its runs: the
// data-parallel tests of the CPU backend (test_data_parallel.cpp) and of CUDA (test_cuda_data_parallel.cpp).
#pragma once
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "host/checkpoint.h"
#include "host/fileio.h"
#include "rl_test_util.h"

namespace rusca::testutil {

inline bool have_mpirun() { return std::system("command -v mpirun >/dev/null 2>&1") == 0; }

// Runs a shell command with a time limit; returns its exit status and its output (stdout + stderr).
inline int run(const std::string& cmd, std::string* output = nullptr, int timeout_s = 90) {
    const std::string full = "timeout " + std::to_string(timeout_s) + " " + cmd + " 2>&1";
    FILE* p = popen(full.c_str(), "r");
    if (!p) return -1;
    std::string out;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    const int st = pclose(p);
    if (output) *output = out;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// mpirun as CI runs it: more ranks than cores is fine, root is fine (containers), one OpenMP thread
// per rank, and no shared-memory single-copy (needs ptrace rights containers often lack).
inline std::string mpirun(int np) {
    return "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none "
           "OMPI_MCA_rmaps_base_oversubscribe=1 mpirun --oversubscribe -np " +
           std::to_string(np) + " ";
}

#define SKIP_WITHOUT_MPIRUN()                                                           \
    do {                                                                                \
        if (!have_mpirun()) GTEST_SKIP() << "mpirun not found: multi-rank tests skipped"; \
        ASSERT_TRUE(file_exists("build/lib/librusca_mpi.so"))                           \
            << "mpirun is here but the MPI plugin was not built (install libopenmpi-dev)"; \
    } while (0)

inline void run_ok(const std::string& cmd) {
    std::string out;
    const int rc = run(cmd, &out);
    ASSERT_EQ(rc, 0) << cmd << "\n" << out;
}

struct RunResult {
    std::vector<nlohmann::json> metrics;
    std::vector<float> params, m, v;
};

inline RunResult read_run(const std::string& out, int step) {
    RunResult r;
    r.metrics = read_metrics(out + "/metrics.jsonl");
    char name[32];
    std::snprintf(name, sizeof name, "/checkpoint-%06d", step);
    const std::string ckpt = out + name;
    const ParamLayout layout(load_config(ckpt + "/config.json"));
    r.params.resize(layout.total);
    load_params(ckpt, layout, r.params.data());
    TrainState st = load_train_state(ckpt, layout);
    r.m = st.m, r.v = st.v;
    return r;
}

// Equal to float reduction-order rounding: |a - b| <= tol * (|a| + |b|) + floor * rms(a). The floor
// covers elements summed from terms that nearly cancel (their relative error is unbounded), and
// AdamW's m / sqrt(v), which turns such an element's rounding into a visible fraction of a step.
inline void expect_close(const std::vector<float>& a, const std::vector<float>& b, double tol, double floor, const char* what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    double ss = 0;
    for (float x : a) ss += double(x) * x;
    const double rms = std::sqrt(ss / double(std::max<size_t>(a.size(), 1)));
    ASSERT_GT(rms, 0) << what << " are all zero: nothing to compare";
    size_t bad = 0, first = 0;
    double worst = 0;
    for (size_t i = 0; i < a.size(); i++) {
        const double d = std::abs(double(a[i]) - b[i]), lim = tol * (std::abs(a[i]) + std::abs(b[i])) + floor * rms;
        worst = std::max(worst, d);
        if (d <= lim) continue;
        if (bad++ == 0) first = i;
    }
    EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << a.size() << " differ, first at " << first << " ("
                       << a[first] << " vs " << b[first] << "), largest difference " << worst << ", rms " << rms;
}

inline void expect_close(double a, double b, double tol, const std::string& what) {
    EXPECT_LE(std::abs(a - b), tol * (std::abs(a) + std::abs(b)) + 1e-9) << what << ": " << a << " vs " << b;
}

// The same run on 1 and on 2 ranks: same losses, gradient norms (the norm of the reduced gradient),
// token counts, weights and moments, to rounding (`scale` widens every tolerance, for bf16 backends).
inline void expect_same_run(const RunResult& one, const RunResult& two, const std::vector<std::string>& keys,
                            double scale = 1) {
    ASSERT_EQ(one.metrics.size(), two.metrics.size());
    for (size_t i = 0; i < one.metrics.size(); i++)
        for (const std::string& k : keys) {
            ASSERT_TRUE(one.metrics[i].contains(k) && two.metrics[i].contains(k)) << k;
            expect_close(one.metrics[i][k].get<double>(), two.metrics[i][k].get<double>(), 1e-4 * scale,
                         "step " + std::to_string(i + 1) + " " + k);
        }
    expect_close(one.params, two.params, 1e-4 * scale, 1e-4 * scale, "weights");
    expect_close(one.m, two.m, 1e-3 * scale, 1e-2 * scale, "AdamW m");
    expect_close(one.v, two.v, 1e-3 * scale, 1e-2 * scale, "AdamW v");
}

}  // namespace rusca::testutil
