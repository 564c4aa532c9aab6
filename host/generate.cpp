// generate.cpp: prefill each distinct prefix once, then decode every rollout over it.
#include "generate.h"

#include <algorithm>
#include <map>

#include "error.h"
#include "parallel.h"

namespace rusca {

namespace {

struct Rollout {
    int group, index;
    const KvCache* prefix;          // shared prefill of prefix + prompt
    const std::vector<float>* first_logits;  // logits after the shared prefill
};

// Decodes one rollout to completion over its shared prefix.
Completion decode(const CpuInference& model, const Rollout& r, uint64_t seq_id, const GenerateOptions& opt) {
    const int V = model.config.vocab_size;
    Completion out;
    KvCache own;
    std::vector<float> logits = *r.first_logits, hidden(model.config.hidden_size);
    for (int step = 0; step < opt.max_new_tokens; step++) {
        float logprob = 0;
        int tok = cpu::sample_token(logits.data(), V, opt.sampling, opt.seed, seq_id, uint64_t(step), &logprob);
        out.tokens.push_back(tok);
        out.logprobs.push_back(logprob);
        if (std::find(opt.stop_tokens.begin(), opt.stop_tokens.end(), tok) != opt.stop_tokens.end()) {
            out.stopped = true;
            break;
        }
        if (step + 1 < opt.max_new_tokens) model.extend(r.prefix, own, &tok, 1, hidden.data(), logits.data());
    }
    return out;
}

}  // namespace

std::string completion_text(const Tokenizer& tok, const Completion& c) {
    return tok.decode(std::vector<int>(c.tokens.begin(), c.tokens.end() - (c.stopped ? 1 : 0)));
}

std::vector<int> rollout_context(const std::vector<PromptGroup>& groups, size_t g, size_t i, const ModelConfig& c,
                                 int max_new_tokens) {
    std::vector<int> full = groups[g].prefixes[i];
    full.insert(full.end(), groups[g].prompt.begin(), groups[g].prompt.end());
    const std::string where = "prompt " + std::to_string(g);
    check(!full.empty(), where + " has no tokens");
    for (int t : full)
        check(t >= 0 && t < c.vocab_size, where + ": token id " + std::to_string(t) + " is outside the vocabulary");
    check(full.size() + size_t(max_new_tokens) <= size_t(c.max_position_embeddings),
          where + ": " + std::to_string(full.size()) + " prompt tokens + " + std::to_string(max_new_tokens) +
              " new tokens exceed max_position_embeddings " + std::to_string(c.max_position_embeddings));
    return full;
}

std::vector<std::vector<Completion>> generate(const CpuInference& model, const std::vector<PromptGroup>& groups,
                                              const GenerateOptions& opt) {
    opt.sampling.validate();
    check(opt.max_new_tokens > 0, "max_new_tokens must be positive");
    check(opt.rollout_base.empty() || opt.rollout_base.size() == groups.size(), "rollout_base: one id per group");
    // One prefill per distinct full prefix.
    std::map<std::vector<int>, std::pair<KvCache, std::vector<float>>> prefills;
    std::vector<Rollout> rollouts;
    std::vector<std::vector<int>> keys;
    const ModelConfig& c = model.config;
    for (size_t g = 0; g < groups.size(); g++) {
        for (size_t i = 0; i < groups[g].prefixes.size(); i++) {
            const std::vector<int> full = rollout_context(groups, g, i, c, opt.max_new_tokens);
            keys.push_back(full);
            prefills[full];
            rollouts.push_back({int(g), int(i), nullptr, nullptr});
        }
    }
    std::vector<std::vector<int>> distinct;
    for (auto& kv : prefills) distinct.push_back(kv.first);
    parallel_for(distinct.size(), [&](size_t i) {
        auto& slot = prefills.at(distinct[i]);
        std::vector<float> hidden(model.config.hidden_size);
        slot.second.resize(model.config.vocab_size);
        model.extend(nullptr, slot.first, distinct[i].data(), int(distinct[i].size()), hidden.data(), slot.second.data());
    });
    for (size_t r = 0; r < rollouts.size(); r++) {
        auto& slot = prefills.at(keys[r]);
        rollouts[r].prefix = &slot.first, rollouts[r].first_logits = &slot.second;
    }
    std::vector<std::vector<Completion>> out(groups.size());
    for (size_t g = 0; g < groups.size(); g++) out[g].resize(groups[g].prefixes.size());
    parallel_for(rollouts.size(), [&](size_t r) {
        out[rollouts[r].group][rollouts[r].index] =
            decode(model, rollouts[r], rollout_rng_id(opt, r, rollouts[r].group, rollouts[r].index), opt);
    });
    return out;
}

}  // namespace rusca
