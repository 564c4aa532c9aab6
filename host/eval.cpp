// eval.cpp: generate (bare prompt), judge, score.
#include "eval.h"

#include <chrono>

#include "chat.h"

namespace rusca {

EvalResult evaluate(InferenceEngine& policy, const Tokenizer& tok, InferenceEngine& judge_engine, const Judge& judge,
                    const std::vector<RubricExample>& data, const GenerateOptions& gen, uint64_t seed) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<PromptGroup> groups;
    for (const RubricExample& ex : data) groups.push_back({chat_prompt_tokens(tok, ex.prompt), {chat_prefix_tokens(tok, "", ex.prompt)}});
    GenerateOptions opt = gen;
    opt.stop_tokens = chat_stop_tokens(tok);
    opt.seed = seed;
    auto completions = policy.generate(groups, opt);
    std::vector<JudgeItem> items;
    EvalResult r;
    for (size_t i = 0; i < data.size(); i++) {
        items.push_back({&data[i], completion_text(tok, completions[i][0])});
        r.tokens += long(completions[i][0].tokens.size());
    }
    auto verdicts = judge_engine.judge(judge, items);
    for (size_t i = 0; i < data.size(); i++) {
        std::vector<bool> met;
        for (const Verdict& v : verdicts[i]) met.push_back(v.met);
        r.rewards.push_back(rubric_reward(data[i], met));
        r.mean_reward += r.rewards.back() / double(data.size());
    }
    r.score = clipped_mean_score(r.rewards);
    r.score_std = bootstrap_std(r.rewards, 1000, seed);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

}  // namespace rusca
