// generate.h: rollouts. For each prompt, G completions, each after its own token prefix (the
// scaffold system turn, possibly empty) placed before the chat-templated prompt tokens. Rollouts
// whose full prefix (prefix + prompt) is identical share one prefill: its KV cache is computed once
// and read by each of them, never copied. Sampling is seeded per rollout and per step (counter-based
// RNG), so a seed reproduces the same tokens whatever the batch composition.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/infer.h"
#include "cpu/sampler.h"
#include "tokenizer/tokenizer.h"

namespace rusca {

struct PromptGroup {
    std::vector<int> prompt;                 // chat-templated prompt, ends where the answer starts
    std::vector<std::vector<int>> prefixes;  // one per rollout (G = prefixes.size()); may be empty
};

struct GenerateOptions {
    cpu::SamplingParams sampling;
    int max_new_tokens = 256;
    std::vector<int> stop_tokens;  // generation of a rollout ends after emitting one of these
    uint64_t seed = 0;
    // Per group, the RNG id of its first rollout, so that a data-parallel rank's share of a step
    // samples what the whole step would on one rank; empty: ids 0, 1, 2, ... in call order.
    std::vector<uint64_t> rollout_base;
};

// The RNG id of rollout `index` of group `group`, the `r`-th of the call (see rollout_base).
inline uint64_t rollout_rng_id(const GenerateOptions& opt, size_t r, size_t group, size_t index) {
    return opt.rollout_base.empty() ? uint64_t(r) : opt.rollout_base[group] + index;
}

struct Completion {
    std::vector<int> tokens;      // generated tokens, the stop token included when one was hit
    std::vector<float> logprobs;  // log-prob of each under the temperature-scaled model
    bool stopped = false;         // true: ended on a stop token; false: hit max_new_tokens
};

// The completion as text, without its stop token.
std::string completion_text(const Tokenizer& tok, const Completion& c);

// Completions [group][rollout]. Rollout r of the whole call (groups flattened in order) draws its
// random numbers from counter (seed, rollout_rng_id(r), step).
// Rollout i of group g's full context (its prefix, then the group's prompt), checked before any
// generation starts (nothing may throw inside the engines' parallel regions): not empty (Llama 2
// keeps a one-turn prompt wholly in the prefix), ids inside the vocabulary, and room for
// max_new_tokens within max_position_embeddings. Errors name the prompt. Both engines use it.
std::vector<int> rollout_context(const std::vector<PromptGroup>& groups, size_t g, size_t i, const ModelConfig& c,
                                 int max_new_tokens);

std::vector<std::vector<Completion>> generate(const CpuInference& model, const std::vector<PromptGroup>& groups,
                                              const GenerateOptions& opt);

}  // namespace rusca
