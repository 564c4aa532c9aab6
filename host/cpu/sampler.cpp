// sampler.cpp: the CPU reference sampler (definitions in sampler.h).
// Written to be checked by eye, like llama2.c's sampler: a softmax, one short function per filter,
// and a draw from the CDF. The filtered distribution is kept as unnormalized probabilities in
// double with dropped tokens set to 0, so each filter only has to zero entries and renormalizing
// happens once, at the end. Sorting is only paid for when top-k or top-p is on.
#include "host/cpu/sampler.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "host/error.h"

namespace rusca::cpu {
namespace {

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ull;

// splitmix64's finalizer: a bijection on 64 bits in which every input bit flips about half the
// output bits, so neighbouring counters give unrelated numbers.
uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// Lowest index on ties, so greedy decoding is deterministic and agrees with the sort order below.
int argmax(const float* x, int V) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

// log sum_i exp((x_i - max) / T), the normalizer of softmax(x / T) after the max shift.
double log_sum_exp_scaled(const float* x, int V, double maxv, double T) {
    double s = 0.0;
    for (int i = 0; i < V; i++) s += std::exp((double(x[i]) - maxv) / T);
    return std::log(s);
}

// p = softmax(logits / T), T > 0, max-shifted so the largest term is exp(0) = 1.
void softmax_scaled(std::vector<double>& p, const float* logits, int V, double T) {
    const double maxv = logits[argmax(logits, V)];
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += p[i] = std::exp((double(logits[i]) - maxv) / T);
    for (int i = 0; i < V; i++) p[i] /= sum;
}

void apply_min_p(std::vector<double>& p, double min_p) {
    const double threshold = min_p * *std::max_element(p.begin(), p.end());
    for (double& x : p)
        if (x < threshold) x = 0.0;
}

// Sum in ascending token index: the order the draw walks, so both see the same total.
double kept_total(const std::vector<double>& p) {
    double total = 0.0;
    for (double x : p) total += x;
    return total;
}

// The kept tokens, most probable first, cut to the k most probable (top-k). Ties go to the lower
// index, which makes the order, and so the kept set, independent of the sort algorithm.
std::vector<int> sorted_kept(std::vector<double>& p, size_t k) {
    std::vector<int> order;
    for (int i = 0; i < (int)p.size(); i++)
        if (p[i] > 0.0) order.push_back(i);
    k = std::min(k, order.size());
    auto more_probable = [&p](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); };
    std::partial_sort(order.begin(), order.begin() + k, order.end(), more_probable);
    for (size_t r = k; r < order.size(); r++) p[order[r]] = 0.0;
    order.resize(k);
    return order;
}

// Keep the smallest most-probable prefix whose mass reaches top_p: a token stays iff the mass
// strictly before it is still short of top_p, so the token that crosses the line is kept.
void apply_top_p(std::vector<double>& p, const std::vector<int>& order, double top_p) {
    const double limit = top_p * kept_total(p);
    double before = 0.0;
    for (int i : order) {
        const double pi = p[i];
        if (before >= limit) p[i] = 0.0;
        before += pi;
    }
}

// The filtered distribution (T > 0) as unnormalized p, 0 for dropped tokens; returns its total.
double filtered_probs(std::vector<double>& p, const float* logits, int V, const SamplingParams& sp) {
    p.resize(V);
    softmax_scaled(p, logits, V, sp.temperature);
    if (sp.min_p > 0.0f) apply_min_p(p, sp.min_p);
    const bool top_k_on = sp.top_k > 0 && sp.top_k < V;
    if (top_k_on || sp.top_p < 1.0f) {
        const std::vector<int> order = sorted_kept(p, top_k_on ? (size_t)sp.top_k : (size_t)V);
        if (sp.top_p < 1.0f) apply_top_p(p, order, sp.top_p);
    }
    return kept_total(p);
}

// Inverse CDF in token-index order; the last kept token catches u * total rounding past the end.
int draw(const std::vector<double>& p, double total, double u) {
    const double target = u * total;
    double cum = 0.0;
    int last = 0;
    for (int i = 0; i < (int)p.size(); i++) {
        if (p[i] <= 0.0) continue;
        cum += p[i];
        if (cum > target) return i;
        last = i;
    }
    return last;
}

// sample_token without validation, so sample_batch can call it inside the parallel region
// (an exception must not escape an OpenMP loop). p is the caller's scratch row.
int sample_row(std::vector<double>& p, const float* logits, int V, const SamplingParams& sp,
               uint64_t seed, uint64_t seq, uint64_t step, float* logprob) {
    const bool greedy = sp.temperature == 0.0f;
    int token;
    if (greedy) {
        token = argmax(logits, V);
    } else {
        const double total = filtered_probs(p, logits, V, sp);
        token = draw(p, total, counter_uniform(seed, seq, step));
    }
    if (logprob) {
        const double T = greedy ? 1.0 : sp.temperature;
        const double maxv = logits[argmax(logits, V)];
        *logprob = float((double(logits[token]) - maxv) / T - log_sum_exp_scaled(logits, V, maxv, T));
    }
    return token;
}

void check_vocab(int V) {
    check(V > 0, "sampler: vocabulary size must be > 0 (got " + std::to_string(V) + ")");
}

template <typename T>
void check_field(bool ok, const char* field, const char* rule, T value) {
    if (ok) return;
    std::ostringstream msg;
    msg << "sampling parameter " << field << " must be " << rule << " (got " << value << ")";
    throw Error(msg.str());
}

}  // namespace

void SamplingParams::validate() const {
    // Each condition is stated positively, so a NaN fails it.
    check_field(temperature >= 0.0f && std::isfinite(temperature), "temperature", "finite and >= 0",
                temperature);
    check_field(min_p >= 0.0f && min_p <= 1.0f, "min_p", "in [0, 1]", min_p);
    check_field(top_k >= 0, "top_k", ">= 0 (0 = off)", top_k);
    check_field(top_p > 0.0f && top_p <= 1.0f, "top_p", "in (0, 1]", top_p);
}

double counter_uniform(uint64_t seed, uint64_t seq, uint64_t step) {
    // Adding G after each xor keeps all-zero counters away from mix64's fixed point at 0.
    uint64_t h = mix64(seed + kGolden);
    h = mix64((h ^ seq) + kGolden);
    h = mix64((h ^ step) + kGolden);
    return double(h >> 11) * 0x1.0p-53;
}

void sampling_filter(float* probs, const float* logits, int V, const SamplingParams& sp) {
    sp.validate();
    check_vocab(V);
    if (sp.temperature == 0.0f) {
        std::fill(probs, probs + V, 0.0f);
        probs[argmax(logits, V)] = 1.0f;
        return;
    }
    std::vector<double> p;
    const double total = filtered_probs(p, logits, V, sp);
    for (int i = 0; i < V; i++) probs[i] = float(p[i] / total);
}

int sample_token(const float* logits, int V, const SamplingParams& sp, uint64_t seed, uint64_t seq,
                 uint64_t step, float* logprob) {
    sp.validate();
    check_vocab(V);
    std::vector<double> p;
    return sample_row(p, logits, V, sp, seed, seq, step, logprob);
}

void sample_batch(int* tokens, float* logprobs, const float* logits, int B, int V,
                  const SamplingParams& sp, uint64_t seed, const uint64_t* seq_ids, const int* steps) {
    sp.validate();
    check_vocab(V);
#pragma omp parallel
    {
        std::vector<double> p;  // one scratch row per thread, reused across its rows
#pragma omp for schedule(dynamic)
        for (int b = 0; b < B; b++) {
            tokens[b] = sample_row(p, logits + (size_t)b * V, V, sp, seed, seq_ids[b], (uint64_t)steps[b],
                                   logprobs ? logprobs + b : nullptr);
        }
    }
}

}  // namespace rusca::cpu
