// judge_backend.h: one interface over every way of judging, so the loops (rl, eval, judge) make one
// call whether the judge runs in this process (a yes/no model on the run's device) or behind an
// OpenAI-compatible server (host/judge_http.h), and score the verdicts the same way: a criterion
// the judge could not answer is masked out of the reward, never scored as not met.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine.h"
#include "judge.h"

namespace rusca {

class JudgeBackend {
public:
    virtual ~JudgeBackend() = default;
    // Verdicts [item][criterion] for every criterion of every item; failed = true where no answer came.
    virtual std::vector<std::vector<Verdict>> judge(const std::vector<JudgeItem>& items) = 0;
    // Counters of the last judge() call for the metrics (requests, retries, ...); {} when there are none.
    virtual nlohmann::json last_stats() const { return nlohmann::json::object(); }
    virtual std::string describe() const = 0;  // for log lines
};

// The in-process judge: `judge` (template, tokenizer, answer words) scored by `engine`, which holds
// the judge's weights on the run's device. Never fails a criterion.
class EngineJudge final : public JudgeBackend {
public:
    EngineJudge(InferenceEngine& engine, const Judge& judge) : engine_(engine), judge_(judge) {}
    std::vector<std::vector<Verdict>> judge(const std::vector<JudgeItem>& items) override { return engine_.judge(judge_, items); }
    std::string describe() const override { return std::string("in-process judge (") + engine_.device() + ")"; }

private:
    InferenceEngine& engine_;
    const Judge& judge_;
};

// The rubric reward of one response (rubric_reward) over the criteria the judge answered: a failed
// verdict is left out of the points earned and the points possible, as if the criterion were
// absent. nullopt when no criterion with positive points was answered (nothing to divide by).
std::optional<double> judged_reward(const RubricExample& ex, const std::vector<Verdict>& verdicts);

// Rewards of a step's responses, `group` consecutive ones per prompt, for group advantages. A
// response that cannot be scored gets the mean of its group's scored ones (0 if none is), so its
// advantage is 0 and the group's mean is unchanged: it neither pulls nor pushes the policy.
// `unscored` (optional) counts those responses.
std::vector<double> group_rewards(const std::vector<JudgeItem>& items, const std::vector<std::vector<Verdict>>& verdicts,
                                  int group, long* unscored = nullptr);

// Verdicts with failed = true among `verdicts`.
long count_failed(const std::vector<std::vector<Verdict>>& verdicts);

}  // namespace rusca
