// eval_report.h: what `rusca eval` reports beyond one score: the HealthBench breakdown by axis and
// theme, and every example's completions with their verdicts.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval.h"
#include "rubric.h"

namespace rusca {

// Which of a prompt's completions stands for it: the one with the best judge reward (Best-of-N;
// with N = 1 the only one), the first of equals.
int best_completion(const RubricExample& ex, const std::vector<std::vector<bool>>& met);

// HealthBench's breakdown (simple-evals healthbench_eval.py), on each prompt's best completion:
//  - a criterion tag ("axis:accuracy"): per prompt, the rubric score of the criteria carrying it
//    (points met / positive points among them; a prompt whose tagged criteria have no positive
//    points has no score for the tag);
//  - a prompt tag ("theme:emergency_referrals"): the prompt's whole score;
// each aggregated over the prompts that have it as the overall score is: mean clipped to [0, 1],
// bootstrap std. Only "axis:" and "theme:" tags are reported (HealthBench's own breakdown; the many
// "cluster:" tags would drown it). {"axis:accuracy": {"score", "score_std", "n"}, ...}
nlohmann::json tag_scores(const std::vector<RubricExample>& data, const EvalResult& r, uint64_t seed);

// One JSON line per prompt: {"prompt_id", "score" (best judge reward), "best" (its index),
// "completions": [{"response", "truncated", "reward", "checker_reward"?, "criteria":
// [{"criterion", "points", "met", "checker_met"?}]}]}.
std::string eval_examples_jsonl(const std::vector<RubricExample>& data, const EvalResult& r);

}  // namespace rusca
