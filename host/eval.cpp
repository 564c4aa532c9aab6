// eval.cpp: generate (bare or fully scaffolded prompt, N per prompt), judge, check, score.
#include "eval.h"

#include <algorithm>
#include <chrono>

#include "chat.h"
#include "checker.h"
#include "error.h"

namespace rusca {

namespace {

// The prefix of every completion of `ex`: BOS alone, or BOS + a system turn listing all criteria.
std::vector<int> eval_prefix(const Tokenizer& tok, const RubricExample& ex, const ScaffoldTemplate* scaffold) {
    if (!scaffold) return chat_prefix_tokens(tok, "", ex.prompt);
    std::vector<const Criterion*> all;
    for (const Criterion& c : ex.rubrics) all.push_back(&c);
    return chat_prefix_tokens(tok, scaffold->render(all), ex.prompt);
}

// Best-of-N: a prompt's reward is the best of its completions' rewards. Prompts without any scored
// completion (every answer of the judge failed) are left out.
EvalScore score_of(const std::vector<std::vector<double>>& per_completion, uint64_t seed) {
    EvalScore s;
    for (const std::vector<double>& r : per_completion)
        if (!r.empty()) s.rewards.push_back(*std::max_element(r.begin(), r.end()));
    check(!s.rewards.empty(), "eval: no prompt could be scored (the judge answered no criterion with positive points)");
    for (double r : s.rewards) s.mean_reward += r / double(s.rewards.size());
    s.score = clipped_mean_score(s.rewards);
    s.score_std = bootstrap_std(s.rewards, 1000, seed);
    return s;
}

}  // namespace

EvalResult evaluate(InferenceEngine& policy, const Tokenizer& tok, InferenceEngine& judge_engine, const Judge& judge,
                    const std::vector<RubricExample>& data, const EvalOptions& opt) {
    EngineJudge in_process(judge_engine, judge);
    return evaluate(policy, tok, in_process, data, opt);
}

EvalResult evaluate(InferenceEngine& policy, const Tokenizer& tok, JudgeBackend& judge,
                    const std::vector<RubricExample>& data, const EvalOptions& opt) {
    check(opt.best_of_n >= 1, "eval: best-of-n must be at least 1");
    auto t0 = std::chrono::steady_clock::now();
    const int N = opt.best_of_n;
    std::vector<PromptGroup> groups;
    for (const RubricExample& ex : data)
        groups.push_back({chat_prompt_tokens(tok, ex.prompt), std::vector<std::vector<int>>(N, eval_prefix(tok, ex, opt.scaffold))});
    GenerateOptions gen = opt.gen;
    gen.stop_tokens = chat_stop_tokens(tok);
    gen.seed = opt.seed;
    auto completions = policy.generate(groups, gen);

    // The judge never sees the scaffold: items hold the bare example and the response.
    EvalResult r;
    std::vector<JudgeItem> items;
    r.responses.resize(data.size()), r.truncated.resize(data.size()), r.met.resize(data.size());
    for (size_t i = 0; i < data.size(); i++)
        for (const Completion& c : completions[i]) {
            items.push_back({&data[i], completion_text(tok, c)});
            r.responses[i].push_back(items.back().response);
            r.truncated[i].push_back(!c.stopped);
            r.tokens += long(c.tokens.size());
        }
    auto verdicts = judge.judge(items);
    r.judge_failed = count_failed(verdicts);
    r.has_checker = all_checked(data);
    if (r.has_checker) r.checker_met.resize(data.size());
    std::vector<std::vector<double>> by_judge(data.size()), by_checker(data.size());
    for (size_t k = 0; k < items.size(); k++) {
        const RubricExample& ex = *items[k].example;
        std::vector<bool> met;
        for (const Verdict& v : verdicts[k]) met.push_back(v.met);
        if (std::optional<double> reward = judged_reward(ex, verdicts[k])) by_judge[k / N].push_back(*reward);
        r.met[k / N].push_back(met);
        if (!r.has_checker) continue;
        std::vector<bool> truth = checker_verdicts(ex, items[k].response);
        by_checker[k / N].push_back(rubric_reward(ex, truth));
        r.checker_met[k / N].push_back(truth);
        for (size_t c = 0; c < truth.size(); c++) {
            if (verdicts[k][c].failed) continue;
            if (ex.rubrics[c].points == 0) continue;  // moves no reward: neither kind
            bool positive = ex.rubrics[c].points > 0;
            (positive ? r.n_pos : r.n_neg)++;
            (positive ? r.agree_pos : r.agree_neg) += met[c] == truth[c];
        }
    }
    for (const std::vector<double>& b : by_judge) r.judge_unscored += b.empty();
    r.judge = score_of(by_judge, opt.seed);
    if (r.has_checker) r.checker = score_of(by_checker, opt.seed);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

}  // namespace rusca
