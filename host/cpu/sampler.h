// sampler.h: the CPU reference token sampler, the twin the CUDA sampler kernel is tested against.
// It turns one row of logits into one token the way vLLM does (temperature, then min-p, then top-k,
// then top-p), drawing its random number from a counter-based hash instead of a stateful RNG, so a
// token depends only on (seed, sequence id, step): the same seed reproduces the same rollouts
// whatever the batch composition or order, and a GPU thread can compute the identical number.
//
// Exact definitions (the CUDA twin must follow them; the CPU computes in double):
//  - temperature T > 0:  p_i = exp((l_i - max_j l_j) / T) / sum_k exp((l_k - max_j l_j) / T).
//    T == 0 means greedy: the argmax of the raw logits, lowest index on ties; no filter applies
//    (the argmax would survive every filter anyway).
//  - min-p:  keep token i iff p_i >= min_p * max_j p_j   (min_p == 0 keeps everything).
//  - top-k (0 < k < number kept): keep the k most probable kept tokens, ties broken by lower index.
//  - top-p (top_p < 1): order the kept tokens by p descending (ties: lower index first); with
//    total = sum of kept p (ascending token index) and c_r = sum of p over sorted positions < r,
//    keep the token at position r iff c_r < top_p * total. Position 0 has c_0 = 0: never empty.
//  - draw: u = counter_uniform(seed, seq, step); walk the kept tokens in ascending token index,
//    accumulating p, and return the first whose running sum exceeds u * total (where total is the
//    sum of the finally kept p in the same order); if rounding lets the walk finish, the last
//    kept token. A token whose p underflowed to 0 carries no mass and is never drawn.
//  - logprob: log softmax(l / T)[token] of the temperature-scaled but UNFILTERED distribution
//    (T == 0: of the raw logits, i.e. T = 1). This is the sampling policy's log-probability before
//    truncation, the quantity the trainer recomputes with a plain forward pass (which knows
//    nothing of min-p/top-k/top-p), so the two can be compared to catch engine/trainer mismatch.
#pragma once
#include <cstdint>

namespace rusca::cpu {

struct SamplingParams {
    float temperature = 1.0f;  // 0 = greedy
    float min_p = 0.0f;        // 0 = off
    int top_k = 0;             // 0 = off
    float top_p = 1.0f;        // 1 = off
    // Throws rusca::Error naming the field unless temperature >= 0, 0 <= min_p <= 1, top_k >= 0,
    // 0 < top_p <= 1.
    void validate() const;
};

// Uniform in [0, 1) with 53 random bits, a pure function of its three counters. With
// mix(z) = the splitmix64 finalizer and G = 0x9e3779b97f4a7c15:
//   h = mix(seed + G);  h = mix((h ^ seq) + G);  h = mix((h ^ step) + G);  u = (h >> 11) * 2^-53.
double counter_uniform(uint64_t seed, uint64_t seq, uint64_t step);

// probs[V] = the filtered distribution: renormalized probabilities of kept tokens, 0 elsewhere.
// (T == 0: one-hot at the greedy token.)
void sampling_filter(float* probs, const float* logits, int V, const SamplingParams& p);

// One token from logits[V]. logprob (may be nullptr) receives the log-probability defined above.
int sample_token(const float* logits, int V, const SamplingParams& p, uint64_t seed, uint64_t seq,
                 uint64_t step, float* logprob);

// A batch of rows, logits [B, V]; row b uses counter (seed, seq_ids[b], steps[b]).
// tokens[B] and logprobs[B] (may be nullptr) out. Rows are independent, one thread per row.
void sample_batch(int* tokens, float* logprobs, const float* logits, int B, int V,
                  const SamplingParams& p, uint64_t seed, const uint64_t* seq_ids, const int* steps);

}  // namespace rusca::cpu
