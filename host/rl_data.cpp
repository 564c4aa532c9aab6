// rl_data.cpp: over-long prompts filtered before training, and a step's prompts drawn without repeats.
#include "rl_data.h"

#include "chat.h"
#include "error.h"

namespace rusca {

long longest_generation_tokens(const Tokenizer& tok, const RubricExample& ex, const ScaffoldTemplate* scaffold,
                               int max_new_tokens) {
    std::vector<const Criterion*> all;
    for (const Criterion& c : ex.rubrics) all.push_back(&c);
    const std::string system = scaffold ? scaffold->render(all) : "";
    return long(chat_prefix_tokens(tok, system, ex.prompt).size() + chat_prompt_tokens(tok, ex.prompt).size()) +
           max_new_tokens;
}

std::vector<RubricExample> drop_overlong(std::vector<RubricExample> data, const Tokenizer& tok,
                                         const ScaffoldTemplate* scaffold, int max_new_tokens, int context,
                                         const std::string& what, long& filtered) {
    std::vector<RubricExample> kept;
    for (RubricExample& ex : data)
        if (longest_generation_tokens(tok, ex, scaffold, max_new_tokens) <= context) kept.push_back(std::move(ex));
    filtered = long(data.size() - kept.size());
    check(!kept.empty(), what + ": every prompt is too long: prompt (+ full scaffold) + --max-new-tokens " +
                             std::to_string(max_new_tokens) + " exceeds the policy's max_position_embeddings " +
                             std::to_string(context));
    return kept;
}

std::vector<size_t> draw_step_prompts(EpochSampler& sampler, int P, const std::string& what) {
    check(size_t(P) <= sampler.n, what + ": --prompts-per-step " + std::to_string(P) + " is more than its " +
                                      std::to_string(sampler.n) + " prompts: a step would draw a prompt twice");
    if (size_t(sampler.cursor) + size_t(P) > sampler.n) sampler.restore(sampler.epoch + 1, 0);
    std::vector<size_t> out;
    for (int p = 0; p < P; p++) out.push_back(sampler.next());
    return out;
}

}  // namespace rusca
