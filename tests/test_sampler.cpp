// test_sampler.cpp: the CPU reference sampler (host/cpu/sampler.h).
// Kept sets are checked exactly on logits built from known probabilities (each filter alone, in
// combination where vLLM's order changes the answer, ties, temperature); sampled frequencies are
// checked against the filtered distribution with a chi-square test at p = 0.001 (fixed seed, so
// the outcome is stable); then reproducibility, batch-order independence, logprobs and validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "host/cpu/sampler.h"
#include "host/error.h"

using namespace rusca::cpu;

namespace {

using Ints = std::vector<int>;

// Logits whose softmax at T = 1 is `probs` (up to float rounding).
std::vector<float> logits_of(const std::vector<double>& probs) {
    std::vector<float> l;
    for (double p : probs) l.push_back(float(std::log(p)));
    return l;
}

// The five-token distribution most cases below are worked out on by hand.
const std::vector<float> kFive = logits_of({0.5, 0.2, 0.15, 0.1, 0.05});

SamplingParams params(float temperature, float min_p, int top_k, float top_p) {
    SamplingParams p;
    p.temperature = temperature, p.min_p = min_p, p.top_k = top_k, p.top_p = top_p;
    return p;
}

std::vector<float> filtered(const std::vector<float>& logits, const SamplingParams& p) {
    std::vector<float> probs(logits.size());
    sampling_filter(probs.data(), logits.data(), (int)logits.size(), p);
    return probs;
}

Ints kept(const std::vector<float>& logits, const SamplingParams& p) {
    const std::vector<float> probs = filtered(logits, p);
    Ints out;
    for (int i = 0; i < (int)probs.size(); i++)
        if (probs[i] > 0.0f) out.push_back(i);
    return out;
}

double log_softmax_by_hand(const std::vector<float>& logits, double T, int token) {
    double sum = 0.0;
    for (float l : logits) sum += std::exp(double(l) / T);
    return double(logits[token]) / T - std::log(sum);
}

std::string error_of(const SamplingParams& p) {
    try {
        p.validate();
    } catch (const rusca::Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(Sampler, MinPAlone) {
    EXPECT_EQ(kept(kFive, params(1, 0.25f, 0, 1)), (Ints{0, 1, 2}));  // threshold 0.125
    EXPECT_EQ(kept(kFive, params(1, 0.35f, 0, 1)), (Ints{0, 1}));     // threshold 0.175
    EXPECT_EQ(kept(kFive, params(1, 1.0f, 0, 1)), (Ints{0}));
    EXPECT_EQ(kept(kFive, params(1, 0.0f, 0, 1)), (Ints{0, 1, 2, 3, 4}));
}

TEST(Sampler, TopKAlone) {
    EXPECT_EQ(kept(kFive, params(1, 0, 2, 1)), (Ints{0, 1}));
    EXPECT_EQ(kept(kFive, params(1, 0, 1, 1)), (Ints{0}));
    EXPECT_EQ(kept(kFive, params(1, 0, 5, 1)), (Ints{0, 1, 2, 3, 4}));
    EXPECT_EQ(kept(kFive, params(1, 0, 1000, 1)), (Ints{0, 1, 2, 3, 4}));  // k > V is a no-op
}

TEST(Sampler, TopPAlone) {
    // Sorted cumulative mass before each position: 0, 0.5, 0.7, 0.85, 0.95. A token stays while
    // that is < top_p, so the token crossing top_p is kept. (0.7 itself is a rounding coin-flip.)
    EXPECT_EQ(kept(kFive, params(1, 0, 0, 0.4f)), (Ints{0}));
    EXPECT_EQ(kept(kFive, params(1, 0, 0, 0.5f)), (Ints{0}));
    EXPECT_EQ(kept(kFive, params(1, 0, 0, 0.65f)), (Ints{0, 1}));
    EXPECT_EQ(kept(kFive, params(1, 0, 0, 0.71f)), (Ints{0, 1, 2}));
    EXPECT_EQ(kept(kFive, params(1, 0, 0, 0.9f)), (Ints{0, 1, 2, 3}));
    EXPECT_EQ(kept(kFive, params(1, 0, 0, 1.0f)), (Ints{0, 1, 2, 3, 4}));
}

TEST(Sampler, FilteredProbsAreRenormalized) {
    const std::vector<float> probs = filtered(kFive, params(1, 0, 2, 1));
    EXPECT_NEAR(probs[0], 0.5 / 0.7, 1e-6);
    EXPECT_NEAR(probs[1], 0.2 / 0.7, 1e-6);
    EXPECT_EQ(probs[2] + probs[3] + probs[4], 0.0f);
    const std::vector<float> all = filtered(kFive, params(1, 0, 0, 1));
    for (int i = 0; i < 5; i++) EXPECT_NEAR(all[i], std::exp(double(kFive[i])), 1e-6);
}

TEST(Sampler, CombinedFollowVllmOrder) {
    // top-k then top-p: top-k=2 leaves [5/7, 2/7]; 5/7 = 0.714 >= 0.69 drops token 1.
    // (top-p first would keep {0, 1}: 0.5 < 0.69 on the full distribution.)
    EXPECT_EQ(kept(kFive, params(1, 0, 2, 0.69f)), (Ints{0}));
    // min-p then top-p: min-p=0.25 leaves {0,1,2} with mass 0.85 -> [0.588, 0.235, 0.176];
    // 0.824 >= 0.8 drops token 2. (top-p first would keep {0,1,2}: 0.7 < 0.8.)
    EXPECT_EQ(kept(kFive, params(1, 0.25f, 0, 0.8f)), (Ints{0, 1}));
    // All three: min-p=0.15 -> {0,1,2,3}; top-k=3 -> {0,1,2}; top-p=0.9: 0.824 < 0.9 keeps 2.
    EXPECT_EQ(kept(kFive, params(1, 0.15f, 3, 0.9f)), (Ints{0, 1, 2}));
    // Same with top-p=0.8 -> {0, 1}; and min-p tighter than top-k wins: min-p=0.35 -> {0, 1}.
    EXPECT_EQ(kept(kFive, params(1, 0.15f, 3, 0.8f)), (Ints{0, 1}));
    EXPECT_EQ(kept(kFive, params(1, 0.35f, 3, 1)), (Ints{0, 1}));
    const std::vector<float> probs = filtered(kFive, params(1, 0.25f, 0, 0.8f));
    EXPECT_NEAR(probs[0], 0.5 / 0.7, 1e-6);
}

TEST(Sampler, TiesBreakByLowerIndex) {
    const std::vector<float> ties = {1.0f, 2.0f, 1.0f, 2.0f, 0.0f};  // 1 and 3 tie, then 0 and 2
    EXPECT_EQ(kept(ties, params(1, 0, 1, 1)), (Ints{1}));
    EXPECT_EQ(kept(ties, params(1, 0, 3, 1)), (Ints{0, 1, 3}));
    EXPECT_EQ(kept(ties, params(1, 0, 0, 0.01f)), (Ints{1}));  // nucleus of one: the lower index
    EXPECT_EQ(kept(ties, params(1, 1.0f, 0, 1)), (Ints{1, 3}));  // min-p=1 keeps every maximum
}

TEST(Sampler, GreedyTakesLowestArgmax) {
    const std::vector<float> ties = {1.0f, 3.0f, 3.0f, 0.0f};
    for (uint64_t seed = 0; seed < 5; seed++)
        EXPECT_EQ(sample_token(ties.data(), 4, params(0, 0, 0, 1), seed, seed, 7, nullptr), 1);
    EXPECT_EQ(filtered(ties, params(0, 0, 0, 1)), (std::vector<float>{0, 1, 0, 0}));
}

TEST(Sampler, TemperatureChangesKeptSet) {
    // T = 2 flattens (ratios to the max become sqrt: all >= 0.316); T = 0.5 sharpens (squares).
    EXPECT_EQ(kept(kFive, params(2.0f, 0.25f, 0, 1)), (Ints{0, 1, 2, 3, 4}));
    EXPECT_EQ(kept(kFive, params(0.5f, 0.25f, 0, 1)), (Ints{0}));
    // At T = 0.5 the top probability is 0.25 / 0.325 = 0.769 > 0.71, so top-p keeps one token.
    EXPECT_EQ(kept(kFive, params(0.5f, 0, 0, 0.71f)), (Ints{0}));
    // top-p=0.75: at T = 1 the mass before token 3 is 0.85; at T = 2 it is 0.740, so 3 stays.
    EXPECT_EQ(kept(kFive, params(1.0f, 0, 0, 0.75f)), (Ints{0, 1, 2}));
    EXPECT_EQ(kept(kFive, params(2.0f, 0, 0, 0.75f)), (Ints{0, 1, 2, 3}));
}

// Chi-square goodness of fit of 20000 draws against the filtered distribution, df = kept - 1.
void expect_frequencies_match(const std::vector<float>& logits, const SamplingParams& p, double critical) {
    const int V = (int)logits.size(), B = 20000;
    const std::vector<float> probs = filtered(logits, p);
    std::vector<float> rows;
    std::vector<uint64_t> seqs(B);
    std::vector<int> steps(B), tokens(B);
    for (int b = 0; b < B; b++) {
        rows.insert(rows.end(), logits.begin(), logits.end());
        seqs[b] = b % 97, steps[b] = b / 97;  // every (seq, step) pair distinct
    }
    sample_batch(tokens.data(), nullptr, rows.data(), B, V, p, 1234, seqs.data(), steps.data());
    std::vector<int> counts(V, 0);
    for (int t : tokens) counts[t]++;
    double chi2 = 0.0;
    for (int i = 0; i < V; i++) {
        if (probs[i] == 0.0f) {
            EXPECT_EQ(counts[i], 0) << "filtered-out token " << i << " was sampled";
            continue;
        }
        const double expected = double(probs[i]) * B;
        chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
    }
    EXPECT_LT(chi2, critical);
}

TEST(Sampler, FrequenciesMatchDistribution) {
    const std::vector<float> eight = logits_of({0.3, 0.2, 0.15, 0.12, 0.1, 0.07, 0.04, 0.02});
    expect_frequencies_match(eight, params(1, 0, 0, 1), 24.322);  // all 8 kept, df = 7
    // T = 0.8: min-p drops token 7 (ratio 0.034), top-k keeps 6, top-p 0.9 then keeps 5 (the mass
    // before token 5 is 0.941 of the six), df = 4.
    const SamplingParams p = params(0.8f, 0.05f, 6, 0.9f);
    ASSERT_EQ(kept(eight, p), (Ints{0, 1, 2, 3, 4}));
    expect_frequencies_match(eight, p, 18.467);
}

TEST(Sampler, CounterUniformFollowsHeaderDefinition) {
    // The formula in sampler.h, written out again: the CUDA twin implements exactly this.
    auto mix = [](uint64_t z) {
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    };
    const uint64_t G = 0x9e3779b97f4a7c15ull;
    for (uint64_t seed : {0ull, 1ull, 42ull, ~0ull})
        for (uint64_t seq : {0ull, 3ull, 1000ull})
            for (uint64_t step : {0ull, 1ull, 255ull}) {
                const uint64_t h = mix((mix((mix(seed + G) ^ seq) + G) ^ step) + G);
                const double u = counter_uniform(seed, seq, step);
                EXPECT_EQ(u, double(h >> 11) * 0x1.0p-53);
                EXPECT_GE(u, 0.0);
                EXPECT_LT(u, 1.0);
            }
    EXPECT_NE(counter_uniform(1, 2, 3), counter_uniform(1, 3, 2));  // counters are not symmetric
    EXPECT_NE(counter_uniform(0, 0, 1), counter_uniform(0, 1, 0));
}

TEST(Sampler, ReproducibleAndIndependentOfBatchOrder) {
    const int B = 64, V = 50;
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> logits(B * V);
    for (float& x : logits) x = normal(rng);
    std::vector<uint64_t> seqs(B);
    std::vector<int> steps(B);
    for (int b = 0; b < B; b++) seqs[b] = rng() % 1000, steps[b] = rng() % 300;
    const SamplingParams p = params(1.0f, 0.01f, 40, 0.98f);

    std::vector<int> tokens(B), again(B), other_seed(B);
    std::vector<float> logprobs(B);
    sample_batch(tokens.data(), logprobs.data(), logits.data(), B, V, p, 99, seqs.data(), steps.data());
    sample_batch(again.data(), nullptr, logits.data(), B, V, p, 99, seqs.data(), steps.data());
    EXPECT_EQ(tokens, again);
    for (int b = 0; b < B; b++)  // a row alone gives the token it gets in the batch
        EXPECT_EQ(sample_token(&logits[b * V], V, p, 99, seqs[b], steps[b], nullptr), tokens[b]);

    std::vector<int> perm(B);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    std::vector<float> plogits(B * V);
    std::vector<uint64_t> pseqs(B);
    std::vector<int> psteps(B), ptokens(B);
    std::vector<float> plogprobs(B);
    for (int b = 0; b < B; b++) {
        std::copy_n(&logits[perm[b] * V], V, &plogits[b * V]);
        pseqs[b] = seqs[perm[b]], psteps[b] = steps[perm[b]];
    }
    sample_batch(ptokens.data(), plogprobs.data(), plogits.data(), B, V, p, 99, pseqs.data(), psteps.data());
    for (int b = 0; b < B; b++) {
        EXPECT_EQ(ptokens[b], tokens[perm[b]]);
        EXPECT_EQ(plogprobs[b], logprobs[perm[b]]);
    }

    sample_batch(other_seed.data(), nullptr, logits.data(), B, V, p, 100, seqs.data(), steps.data());
    EXPECT_NE(tokens, other_seed);
}

TEST(Sampler, LogprobIsUnfilteredTemperatureScaled) {
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 2.0f);
    std::vector<float> logits(20);
    for (float& x : logits) x = normal(rng);
    for (float T : {0.7f, 1.0f, 1.5f}) {
        for (uint64_t step = 0; step < 10; step++) {
            float lp = 0.0f;
            const int t = sample_token(logits.data(), 20, params(T, 0.1f, 5, 0.9f), 5, 0, step, &lp);
            EXPECT_NEAR(lp, log_softmax_by_hand(logits, T, t), 1e-5);
        }
    }
    float lp = 0.0f;  // greedy: log-probability under the raw logits (T = 1)
    const int t = sample_token(logits.data(), 20, params(0, 0, 0, 1), 5, 0, 0, &lp);
    EXPECT_EQ(t, int(std::max_element(logits.begin(), logits.end()) - logits.begin()));
    EXPECT_NEAR(lp, log_softmax_by_hand(logits, 1.0, t), 1e-5);
}

TEST(Sampler, ValidateNamesTheBadField) {
    EXPECT_EQ(error_of(SamplingParams{}), "");
    EXPECT_EQ(error_of(params(0, 1, 0, 1)), "");  // edges are allowed
    const float nan = std::nanf("");
    EXPECT_NE(error_of(params(-0.1f, 0, 0, 1)).find("temperature"), std::string::npos);
    EXPECT_NE(error_of(params(nan, 0, 0, 1)).find("temperature"), std::string::npos);
    EXPECT_NE(error_of(params(1, -0.1f, 0, 1)).find("min_p"), std::string::npos);
    EXPECT_NE(error_of(params(1, 1.5f, 0, 1)).find("min_p"), std::string::npos);
    EXPECT_NE(error_of(params(1, 0, -1, 1)).find("top_k"), std::string::npos);
    EXPECT_NE(error_of(params(1, 0, 0, 0)).find("top_p"), std::string::npos);
    EXPECT_NE(error_of(params(1, 0, 0, 1.01f)).find("top_p"), std::string::npos);
    const std::vector<float> l = {0.0f, 1.0f};
    EXPECT_THROW(sample_token(l.data(), 2, params(1, 0, 0, 0), 0, 0, 0, nullptr), rusca::Error);
}
