// gpu_test_util.h: what every GPU test shares. A GPU test compares a CUDA kernel with its CPU twin
// on random (never zero) inputs, outputs poisoned before the launch, with a tolerance fit for bf16:
// the kernel's error against a double-precision reference may be at most ~2x the error of a naive
// bf16 computation (inputs and stored outputs rounded to bf16, math in fp32) plus a small floor.
// Without a GPU (or in a CPU-only build) these tests skip.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "host/gpu.h"
#include "host/safetensors.h"

#ifdef RUSCA_CUDA
#include <cuda_bf16.h>

#include "cuda/device_buffer.h"
#endif
#ifdef RUSCA_EMU
#include "cuda/emu/emu.h"
#endif

#define SKIP_WITHOUT_GPU()                                                                  \
    do {                                                                                    \
        std::string why_;                                                                   \
        if (rusca::list_gpus(&why_).empty()) GTEST_SKIP() << "no GPU: " << why_;            \
    } while (0)

namespace rusca::gputest {

// True in the emulator build, where "the GPU" is the SIMT emulator (cuda/emu/): tests keep their
// shapes small there and leave the large ones to a real GPU.
inline bool emulated() {
#ifdef RUSCA_EMU
    return true;
#else
    return false;
#endif
}

// Runs `run` (launches kernels, returns their output) under each thread schedule of the emulator:
// forward, reverse and two seeded random orders, and expects the same bytes every time. A result
// that depends on the order in which threads run between barriers is a race. One run on a GPU.
template <class Run>
void expect_schedule_independent(Run run, const std::string& what) {
#ifdef RUSCA_EMU
    using emu::Schedule;
    const emu::Schedule before = emu::schedule();
    const auto first = run();
    const std::pair<Schedule, uint64_t> others[] = {
        {Schedule::Reverse, 1}, {Schedule::Random, 7}, {Schedule::Random, 8}};
    for (auto [s, seed] : others) {
        emu::set_schedule(s, seed);
        const auto again = run();
        ASSERT_EQ(again.size(), first.size()) << what;
        EXPECT_TRUE(std::memcmp(again.data(), first.data(), first.size() * sizeof(first[0])) == 0)
            << what << ": the result depends on the thread schedule ("
            << (s == Schedule::Reverse ? "reverse" : "random") << " differs from the first run): a race";
    }
    emu::set_schedule(before);
#else
    run();
#endif
}

// Uniform in [-scale, scale], never exactly zero.
inline std::vector<float> random_vector(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> u(-scale, scale);
    std::vector<float> v(n);
    for (float& x : v) {
        do x = u(gen);
        while (x == 0.0f);
    }
    return v;
}

inline float round_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }
inline std::vector<float> round_bf16(std::vector<float> v) {
    for (float& x : v) x = round_bf16(x);
    return v;
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<double>& ref) {
    double m = 0;
    for (size_t i = 0; i < a.size(); i++) m = std::max(m, std::fabs(double(a[i]) - ref[i]));
    return m;
}

inline std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

inline double max_abs(const std::vector<double>& v) {
    double m = 0;
    for (double x : v) m = std::max(m, std::fabs(x));
    return m;
}

// The tolerance rule above, and no NaN/inf (an unwritten poisoned output): the kernel's error
// against the double reference is at most 2x the naive bf16 computation's, plus `floor`.
inline void expect_bf16_rule(const std::vector<float>& got, const std::vector<double>& ref,
                             const std::vector<float>& naive, double floor, const std::string& what) {
    ASSERT_EQ(got.size(), ref.size()) << what;
    for (size_t i = 0; i < got.size(); i++) ASSERT_TRUE(std::isfinite(got[i])) << what << "[" << i << "] = " << got[i];
    const double err = max_abs_diff(got, ref), naive_err = max_abs_diff(naive, ref);
    EXPECT_LE(err, 2 * naive_err + floor) << what << ": kernel error " << err << ", naive bf16 error " << naive_err
                                          << ", floor " << floor;
}

#ifdef RUSCA_CUDA
inline std::vector<__nv_bfloat16> to_device_bf16(const std::vector<float>& v) {
    std::vector<__nv_bfloat16> out(v.size());
    for (size_t i = 0; i < v.size(); i++) out[i] = __float2bfloat16(v[i]);
    return out;
}
inline std::vector<float> from_bf16(const std::vector<__nv_bfloat16>& v) {
    std::vector<float> out(v.size());
    for (size_t i = 0; i < v.size(); i++) out[i] = __bfloat162float(v[i]);
    return out;
}
#endif

}  // namespace rusca::gputest
