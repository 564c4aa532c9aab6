// test_cuda_sampler.cpp: the CUDA sampler (cuda/sampler.cuh) against its CPU twin (host/cpu/sampler.h).
// Tokens must match the CPU twin EXACTLY. Both compute the probabilities and every sum in double
// with the same expression, so they can only disagree when a boundary (min-p threshold, top-k/top-p
// cut, or u * total in the draw) falls within ~1e-15 of a token's mass, or two probabilities differ
// by less than ~2^-34 of themselves at a top-k/top-p cut: the crafted logits below have clear
// margins, and for random float logits at these sizes such a coincidence has a probability far
// below 1e-6 per test. Logprobs are compared with the bf16 tolerance rule of gpu_test_util.h (the
// naive computation being log-softmax in float). Outputs are poisoned before every launch.
#include <gtest/gtest.h>

#include "gpu_test_util.h"

#ifdef RUSCA_CUDA
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "cuda/sampler.cuh"
#include "host/cpu/sampler.h"
#include "host/error.h"

using namespace rusca;
using cpu::SamplingParams;
using cuda::DeviceBuffer;

namespace {

SamplingParams params(float temperature, float min_p, int top_k, float top_p) {
    SamplingParams p;
    p.temperature = temperature, p.min_p = min_p, p.top_k = top_k, p.top_p = top_p;
    return p;
}

std::vector<float> logits_of(const std::vector<double>& probs) {
    std::vector<float> l;
    for (double p : probs) l.push_back(float(std::log(p)));
    return l;
}

// log softmax(row / T)[token] in double (the reference) and in float (the naive computation).
template <typename Real>
Real log_softmax_at(const float* row, int V, Real T, int token) {
    Real maxv = row[0];
    for (int i = 1; i < V; i++) maxv = std::max(maxv, Real(row[i]));
    Real sum = 0;
    for (int i = 0; i < V; i++) sum += std::exp((Real(row[i]) - maxv) / T);
    return (Real(row[token]) - maxv) / T - std::log(sum);
}

struct Draws {
    std::vector<int> tokens;
    std::vector<float> logprobs;
};

// B rows of logits [B, V] on the GPU (fp32, or rounded to bf16 and passed as bf16), counters
// (seed, seqs[b], steps[b]); tokens and logprobs poisoned first.
Draws gpu_draws(const std::vector<float>& logits, int B, int V, const SamplingParams& p, uint64_t seed,
                const std::vector<uint64_t>& seqs, const std::vector<int>& steps, bool bf16) {
    DeviceBuffer<uint64_t> d_seqs(seqs);
    DeviceBuffer<int> d_steps(steps), d_tokens(B);
    DeviceBuffer<float> d_logprobs(B);
    d_tokens.poison(), d_logprobs.poison();
    if (bf16) {
        DeviceBuffer<__nv_bfloat16> d_logits(gputest::to_device_bf16(logits));
        cuda::sample_batch(d_tokens.data(), d_logprobs.data(), d_logits.data(), B, V, p, seed, d_seqs.data(),
                           d_steps.data());
        return {d_tokens.download(), d_logprobs.download()};
    }
    DeviceBuffer<float> d_logits(logits);
    cuda::sample_batch(d_tokens.data(), d_logprobs.data(), d_logits.data(), B, V, p, seed, d_seqs.data(),
                       d_steps.data());
    return {d_tokens.download(), d_logprobs.download()};
}

// The GPU against the CPU twin on B rows: identical tokens, logprobs within tolerance, no poison
// left. With bf16 the CPU twin sees the bf16-rounded logits as floats (the values the GPU reads).
// Returns the GPU's tokens.
std::vector<int> expect_matches_cpu(std::vector<float> logits, int B, int V, const SamplingParams& p,
                                    uint64_t seed, bool bf16 = false) {
    if (bf16) logits = gputest::round_bf16(logits);
    std::mt19937_64 rng(seed * 1000003 + V);
    std::vector<uint64_t> seqs(B);
    std::vector<int> steps(B);
    for (int b = 0; b < B; b++) seqs[b] = rng() % 1000000, steps[b] = int(rng() % 4096);
    std::vector<int> cpu_tokens(B);
    std::vector<float> cpu_logprobs(B);
    cpu::sample_batch(cpu_tokens.data(), cpu_logprobs.data(), logits.data(), B, V, p, seed, seqs.data(), steps.data());
    const Draws gpu = gpu_draws(logits, B, V, p, seed, seqs, steps, bf16);

    const double T = p.temperature == 0.0f ? 1.0 : p.temperature;
    std::vector<double> ref(B);
    std::vector<float> naive(B);
    int mismatches = 0, first = -1;
    for (int b = 0; b < B; b++) {
        const int t = gpu.tokens[b];
        EXPECT_TRUE(t >= 0 && t < V) << "row " << b << ": token " << t << " (poison left?)";
        EXPECT_FALSE(std::isnan(gpu.logprobs[b])) << "row " << b;
        if (t != cpu_tokens[b] && mismatches++ == 0) first = b;
        const int tt = t >= 0 && t < V ? t : 0;
        ref[b] = log_softmax_at<double>(&logits[size_t(b) * V], V, T, tt);
        naive[b] = log_softmax_at<float>(&logits[size_t(b) * V], V, float(T), tt);
    }
    EXPECT_EQ(mismatches, 0) << "of " << B << " rows; first: row " << first << " GPU "
                             << (first >= 0 ? gpu.tokens[first] : -1) << " CPU " << (first >= 0 ? cpu_tokens[first] : -1)
                             << "; V = " << V << ", T = " << p.temperature << ", min_p = " << p.min_p
                             << ", top_k = " << p.top_k << ", top_p = " << p.top_p << (bf16 ? ", bf16" : "");
    const double tol = 2 * gputest::max_abs_diff(naive, ref) + 1e-5 * (1 + std::fabs(ref[0]));
    EXPECT_LE(gputest::max_abs_diff(gpu.logprobs, ref), tol) << "logprobs, V = " << V;
    return gpu.tokens;
}

// A crafted row (its kept set worked out by hand in tests/test_sampler.cpp) drawn 400 times: the
// tokens equal the CPU twin's, and the set of tokens drawn is exactly the kept set (each kept token
// has >= 5% of the kept mass, so 400 draws miss one with probability < 1e-8). Run twice: as is
// (V <= 4096: the in-block sort) and scattered over a 6000-token row of -inf logits (the
// segmented sort; -inf must never be drawn).
void expect_kept_set(const std::vector<float>& row, const SamplingParams& p, const std::vector<int>& kept) {
    for (bool scattered : {false, true}) {
        const int n = int(row.size()), V = scattered ? 6000 : n;
        std::vector<int> where(n);
        std::vector<float> full(V, -INFINITY);
        const int stride = std::min(1187, (V - 8) / n);  // every scattered index inside the row
        for (int i = 0; i < n; i++) where[i] = scattered ? 7 + i * stride : i, full.at(where[i]) = row[i];
        const int B = 400;
        std::vector<float> rows;
        for (int b = 0; b < B; b++) rows.insert(rows.end(), full.begin(), full.end());
        std::vector<int> drawn = expect_matches_cpu(rows, B, V, p, 1234);
        std::sort(drawn.begin(), drawn.end());
        drawn.erase(std::unique(drawn.begin(), drawn.end()), drawn.end());
        std::vector<int> expected;
        for (int i : kept) expected.push_back(where[i]);
        EXPECT_EQ(drawn, expected) << "V = " << V << ", T = " << p.temperature << ", min_p = " << p.min_p
                                   << ", top_k = " << p.top_k << ", top_p = " << p.top_p;
    }
}

std::vector<float> normal_logits(size_t n, uint32_t seed, float sigma) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, sigma);
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    return v;
}

// The parameter combinations the random-logit tests run: each filter alone, all together, greedy.
const std::vector<SamplingParams> kMixes = {
    params(1.0f, 0, 0, 1),          params(0.7f, 0.05f, 0, 1),     params(1.0f, 0, 50, 1),
    params(1.3f, 0, 0, 0.9f),       params(0.8f, 0.02f, 40, 0.95f), params(0, 0, 0, 1),
    params(1.0f, 0, 3, 0.5f),
};

}  // namespace

TEST(CudaSampler, CounterUniformIsBitIdentical) {
    SKIP_WITHOUT_GPU();
    std::vector<uint64_t> seqs, steps;
    for (uint64_t seq : {0ull, 3ull, 1000ull, ~0ull})
        for (uint64_t step : {0ull, 1ull, 255ull, 1ull << 40, ~0ull}) seqs.push_back(seq), steps.push_back(step);
    const int n = int(seqs.size());
    DeviceBuffer<uint64_t> d_seqs(seqs), d_steps(steps);
    DeviceBuffer<double> d_u(n);
    for (uint64_t seed : {0ull, 1ull, 42ull, ~0ull}) {
        d_u.poison();
        cuda::counter_uniform_batch(d_u.data(), seed, d_seqs.data(), d_steps.data(), n);
        const std::vector<double> u = d_u.download();
        for (int i = 0; i < n; i++) EXPECT_EQ(u[i], cpu::counter_uniform(seed, seqs[i], steps[i])) << i;
    }
}

TEST(CudaSampler, CraftedKeptSetsMatchCpu) {
    SKIP_WITHOUT_GPU();
    const std::vector<float> five = logits_of({0.5, 0.2, 0.15, 0.1, 0.05});
    // min-p alone (thresholds 0.125, 0.175, 0.5)
    expect_kept_set(five, params(1, 0.25f, 0, 1), {0, 1, 2});
    expect_kept_set(five, params(1, 0.35f, 0, 1), {0, 1});
    expect_kept_set(five, params(1, 1.0f, 0, 1), {0});
    // top-k alone; k >= V is off
    expect_kept_set(five, params(1, 0, 2, 1), {0, 1});
    expect_kept_set(five, params(1, 0, 1, 1), {0});
    expect_kept_set(five, params(1, 0, 5, 1), {0, 1, 2, 3, 4});
    expect_kept_set(five, params(1, 0, 1000, 1), {0, 1, 2, 3, 4});
    // top-p alone: sorted mass before each position 0, 0.5, 0.7, 0.85, 0.95
    expect_kept_set(five, params(1, 0, 0, 0.4f), {0});
    expect_kept_set(five, params(1, 0, 0, 0.5f), {0});
    expect_kept_set(five, params(1, 0, 0, 0.65f), {0, 1});
    expect_kept_set(five, params(1, 0, 0, 0.71f), {0, 1, 2});
    expect_kept_set(five, params(1, 0, 0, 0.9f), {0, 1, 2, 3});
    expect_kept_set(five, params(1, 0, 0, 1.0f), {0, 1, 2, 3, 4});
    // vLLM order: min-p, then top-k, then top-p on what is left
    expect_kept_set(five, params(1, 0, 2, 0.69f), {0});
    expect_kept_set(five, params(1, 0.25f, 0, 0.8f), {0, 1});
    expect_kept_set(five, params(1, 0.15f, 3, 0.9f), {0, 1, 2});
    expect_kept_set(five, params(1, 0.15f, 3, 0.8f), {0, 1});
    expect_kept_set(five, params(1, 0.35f, 3, 1), {0, 1});
    // ties go to the lower index
    const std::vector<float> ties = {1.0f, 2.0f, 1.0f, 2.0f, 0.0f};
    expect_kept_set(ties, params(1, 0, 1, 1), {1});
    expect_kept_set(ties, params(1, 0, 3, 1), {0, 1, 3});
    expect_kept_set(ties, params(1, 0, 0, 0.01f), {1});
    expect_kept_set(ties, params(1, 1.0f, 0, 1), {1, 3});
    // temperature before the filters
    expect_kept_set(five, params(2.0f, 0.25f, 0, 1), {0, 1, 2, 3, 4});
    expect_kept_set(five, params(0.5f, 0.25f, 0, 1), {0});
    expect_kept_set(five, params(0.5f, 0, 0, 0.71f), {0});
    expect_kept_set(five, params(1.0f, 0, 0, 0.75f), {0, 1, 2});
    expect_kept_set(five, params(2.0f, 0, 0, 0.75f), {0, 1, 2, 3});
    const std::vector<float> eight = logits_of({0.3, 0.2, 0.15, 0.12, 0.1, 0.07, 0.04, 0.02});
    expect_kept_set(eight, params(0.8f, 0.05f, 6, 0.9f), {0, 1, 2, 3, 4});
}

TEST(CudaSampler, GreedyTakesLowestArgmax) {
    SKIP_WITHOUT_GPU();
    // Filters are ignored at T = 0; the logprob is of the raw logits.
    expect_kept_set({1.0f, 3.0f, 3.0f, 0.0f}, params(0, 0, 0, 1), {1});
    expect_kept_set({1.0f, 3.0f, 3.0f, 0.0f}, params(0, 0.5f, 1, 0.5f), {1});
    // Random rows with the max repeated at a later index.
    const int B = 37, V = 1001;
    std::vector<float> logits = normal_logits(size_t(B) * V, 11, 2.0f);
    for (int b = 0; b < B; b++) {
        float* row = &logits[size_t(b) * V];
        const int top = int(std::max_element(row, row + V) - row);
        row[(top + 1 + b * 13) % V] = row[top];
    }
    expect_matches_cpu(logits, B, V, params(0, 0, 0, 1), 5);
    expect_matches_cpu(logits, B, V, params(0, 0, 0, 1), 5, /*bf16=*/true);
}

// Rows with NaN or infinite logits (a diverged model): the GPU returns the CPU twin's token, always a
// valid id, for every parameter mix, on both sides of the in-block sort's tile.
TEST(CudaSampler, NonFiniteRowsGiveTheCpuToken) {
    SKIP_WITHOUT_GPU();
    for (int V : {37, 5000}) {
        const std::vector<float> base = normal_logits(size_t(V), 7, 2.0f);
        std::vector<std::vector<float>> rows = {std::vector<float>(V, NAN), base, base, base, base,
                                                std::vector<float>(V, -INFINITY)};
        rows[1][0] = NAN;                                  // NaN first: the CPU argmax keeps index 0
        rows[2][V / 2] = NAN;                              // NaN inside
        rows[3][V / 3] = INFINITY;                         // one +inf
        rows[4][1] = rows[4][V - 2] = INFINITY;            // two +inf
        std::vector<float> logits;
        for (const auto& r : rows) logits.insert(logits.end(), r.begin(), r.end());
        const int B = int(rows.size());
        const std::vector<uint64_t> seqs(B, 3);
        const std::vector<int> steps(B, 9);
        for (const SamplingParams& p : kMixes) {
            std::vector<int> cpu_tokens(B);
            cpu::sample_batch(cpu_tokens.data(), nullptr, logits.data(), B, V, p, 11, seqs.data(), steps.data());
            const Draws gpu = gpu_draws(logits, B, V, p, 11, seqs, steps, false);
            for (int b = 0; b < B; b++) {
                EXPECT_TRUE(gpu.tokens[b] >= 0 && gpu.tokens[b] < V) << "row " << b << ": token " << gpu.tokens[b];
                EXPECT_EQ(gpu.tokens[b], cpu_tokens[b]) << "row " << b << ", V = " << V << ", T = " << p.temperature
                                                        << ", top_k = " << p.top_k << ", top_p = " << p.top_p;
            }
        }
    }
}

TEST(CudaSampler, RandomLogitsMatchCpuExactly) {
    SKIP_WITHOUT_GPU();
    // Ragged sizes on both sides of the in-block sort's 4096-token tile.
    for (int V : {1, 2, 37, 512, 4095, 4096, 4097, 10007}) {
        const int B = 67;
        const std::vector<float> logits = normal_logits(size_t(B) * V, 100 + V, 2.0f);
        for (const SamplingParams& p : kMixes)
            for (uint64_t seed : {1ull, 2ull}) expect_matches_cpu(logits, B, V, p, seed);
    }
}

TEST(CudaSampler, Bf16LogitsMatchCpuExactly) {
    SKIP_WITHOUT_GPU();
    // bf16 logits have many exact ties: the lower-index rule is exercised everywhere.
    for (int V : {3, 512, 5000}) {
        const int B = 41;
        const std::vector<float> logits = normal_logits(size_t(B) * V, 200 + V, 2.0f);
        for (const SamplingParams& p : kMixes) expect_matches_cpu(logits, B, V, p, 3, /*bf16=*/true);
    }
}

TEST(CudaSampler, LargeVocabularyMatchesCpu) {
    SKIP_WITHOUT_GPU();
    const int V = 151936;
    {
        const int B = 8;
        const std::vector<float> logits = normal_logits(size_t(B) * V, 7, 3.0f);
        for (const SamplingParams& p : {params(1, 0, 0, 1), params(0.8f, 0, 0, 0.9f), params(1, 0, 50, 1),
                                        params(1, 0.05f, 0, 0.95f), params(1, 0, 0, 0.999f), params(0, 0, 0, 1)})
            expect_matches_cpu(logits, B, V, p, 17);
        expect_matches_cpu(logits, B, V, params(0.9f, 0, 100, 0.8f), 17, /*bf16=*/true);
    }
    {
        // 2^24 / V = 110 rows are sorted per call: 112 rows take two calls.
        const int B = 112;
        const std::vector<float> logits = normal_logits(size_t(B) * V, 8, 2.0f);
        expect_matches_cpu(logits, B, V, params(1.0f, 0, 0, 0.95f), 23);
    }
}

TEST(CudaSampler, CallerWorkspaceAgrees) {
    SKIP_WITHOUT_GPU();
    const int B = 5, V = 20000;
    const SamplingParams p = params(1.0f, 0, 64, 0.9f);
    const std::vector<float> logits = normal_logits(size_t(B) * V, 9, 2.0f);
    const std::vector<uint64_t> seqs = {1, 2, 3, 4, 5};
    const std::vector<int> steps = {9, 8, 7, 6, 5};
    const Draws ref = gpu_draws(logits, B, V, p, 4, seqs, steps, false);

    EXPECT_EQ(cuda::sample_batch_workspace_bytes(B, V, params(1.0f, 0.1f, 0, 1)), 0u);  // no sort
    EXPECT_EQ(cuda::sample_batch_workspace_bytes(B, 4096, p), 0u);                    // in-block sort
    const size_t bytes = cuda::sample_batch_workspace_bytes(B, V, p);
    EXPECT_GE(bytes, size_t(2) * B * V * sizeof(uint64_t));
    DeviceBuffer<char> ws(bytes);
    DeviceBuffer<float> d_logits(logits), d_logprobs(B);
    DeviceBuffer<uint64_t> d_seqs(seqs);
    DeviceBuffer<int> d_steps(steps), d_tokens(B);
    d_tokens.poison(), d_logprobs.poison();
    cuda::sample_batch_with_workspace(d_tokens.data(), d_logprobs.data(), d_logits.data(), B, V, p, 4,
                                      d_seqs.data(), d_steps.data(), ws.data(), bytes);
    EXPECT_EQ(d_tokens.download(), ref.tokens);
    EXPECT_EQ(d_logprobs.download(), ref.logprobs);
    EXPECT_THROW(cuda::sample_batch_with_workspace(d_tokens.data(), nullptr, d_logits.data(), B, V, p, 4,
                                                   d_seqs.data(), d_steps.data(), ws.data(), bytes - 1),
                 Error);
}

TEST(CudaSampler, RejectsBadArguments) {
    SKIP_WITHOUT_GPU();
    DeviceBuffer<float> logits(std::vector<float>{0.0f, 1.0f});
    DeviceBuffer<uint64_t> seqs(std::vector<uint64_t>{0});
    DeviceBuffer<int> steps(std::vector<int>{0}), tokens(1);
    EXPECT_THROW(cuda::sample_batch(tokens.data(), nullptr, logits.data(), 1, 2, params(1, 0, 0, 0), 0, seqs.data(),
                                    steps.data()),
                 Error);  // top_p = 0
    EXPECT_THROW(cuda::sample_batch(tokens.data(), nullptr, logits.data(), 1, 2, params(-1, 0, 0, 1), 0, seqs.data(),
                                    steps.data()),
                 Error);
    EXPECT_THROW(cuda::sample_batch(tokens.data(), nullptr, logits.data(), 1, 0, params(1, 0, 0, 1), 0, seqs.data(),
                                    steps.data()),
                 Error);  // V = 0
    EXPECT_THROW(cuda::sample_batch(tokens.data(), nullptr, logits.data(), 1, 2, params(1, 0, 0, 1), 0, nullptr,
                                    steps.data()),
                 Error);
    // B = 0 is a no-op
    cuda::sample_batch(nullptr, nullptr, (const float*)nullptr, 0, 2, params(1, 0, 0, 1), 0, nullptr, nullptr);
}
#endif
