// eval.h: the held-out rubric score. Per prompt, N completions (N = 1 unless Best-of-N) of the bare
// prompt (or, to measure what the scaffold gives, of the prompt behind a scaffold listing ALL its
// criteria), judged, rewarded; the score is the mean of each prompt's best reward, clipped to
// [0, 1] (HealthBench), with a bootstrap standard deviation. A criterion the judge could not answer
// (an external judge, host/judge_http.h) is masked out of the reward; a prompt none of whose
// completions could be scored is left out of the score; both are counted. When every criterion
// carries a programmatic check (host/checker.h) the same completions are also scored by the
// checker, and the judge's verdicts are compared with the checker's, separately for positive and
// negative criteria.
#pragma once
#include <vector>

#include "engine.h"
#include "generate.h"
#include "judge.h"
#include "judge_backend.h"
#include "rubric.h"
#include "scaffold.h"

namespace rusca {

struct EvalOptions {
    GenerateOptions gen;
    uint64_t seed = 1;
    int best_of_n = 1;                          // completions per prompt; each grader keeps its best
    const ScaffoldTemplate* scaffold = nullptr;  // non-null: every criterion shown as a scaffold
};

struct EvalScore {
    double score = 0, score_std = 0, mean_reward = 0;  // clipped mean of per-prompt best, bootstrap std
    std::vector<double> rewards;                       // per scored prompt: the best of its N completions
};

struct EvalResult {
    EvalScore judge;
    bool has_checker = false;  // every criterion carries a check: `checker` and agreement are filled
    EvalScore checker;
    long agree_pos = 0, n_pos = 0, agree_neg = 0, n_neg = 0;  // judge == checker, per (completion, criterion);
                                                              // zero-point criteria count in neither
    std::vector<std::vector<std::string>> responses;          // [prompt][completion], for reports and tests
    long judge_failed = 0;    // criteria without a verdict (external judge), masked out of the rewards
    long judge_unscored = 0;  // prompts none of whose completions could be scored, left out of the score
    std::vector<std::vector<bool>> truncated;                 // [prompt][completion]: hit max_new_tokens
    std::vector<std::vector<std::vector<bool>>> met;          // [prompt][completion][criterion], the judge's
    std::vector<std::vector<std::vector<bool>>> checker_met;  // the same by the checker (has_checker only)
    long tokens = 0;                                          // generated
    double seconds = 0;
};

// `judge` grades every completion (in process or a server, host/judge_backend.h).
EvalResult evaluate(InferenceEngine& policy, const Tokenizer& tok, JudgeBackend& judge,
                    const std::vector<RubricExample>& data, const EvalOptions& opt);
// The in-process judge: `judge_engine` scores with the judge's weights; `judge` supplies its prompts
// and answer words.
EvalResult evaluate(InferenceEngine& policy, const Tokenizer& tok, InferenceEngine& judge_engine, const Judge& judge,
                    const std::vector<RubricExample>& data, const EvalOptions& opt);

}  // namespace rusca
