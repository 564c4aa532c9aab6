// judge_backend.cpp: rewards from verdicts with unanswered criteria masked.
#include "judge_backend.h"

#include "error.h"

namespace rusca {

std::optional<double> judged_reward(const RubricExample& ex, const std::vector<Verdict>& verdicts) {
    check(verdicts.size() == ex.rubrics.size(), "judged_reward: prompt " + ex.prompt_id + " has " +
                                                    std::to_string(ex.rubrics.size()) + " criteria but " +
                                                    std::to_string(verdicts.size()) + " verdicts were given");
    long earned = 0, possible = 0;
    for (size_t k = 0; k < verdicts.size(); k++) {
        if (verdicts[k].failed) continue;
        if (verdicts[k].met) earned += ex.rubrics[k].points;
        if (ex.rubrics[k].points > 0) possible += ex.rubrics[k].points;
    }
    if (possible == 0) return std::nullopt;
    return double(earned) / double(possible);
}

std::vector<double> group_rewards(const std::vector<JudgeItem>& items, const std::vector<std::vector<Verdict>>& verdicts,
                                  int group, long* unscored) {
    check(group >= 1 && items.size() % group == 0 && verdicts.size() == items.size(),
          "group_rewards: " + std::to_string(items.size()) + " responses, " + std::to_string(verdicts.size()) +
              " verdict lists, groups of " + std::to_string(group));
    std::vector<double> out(items.size(), 0.0);
    if (unscored) *unscored = 0;
    for (size_t g = 0; g < items.size(); g += group) {
        std::vector<std::optional<double>> r;
        double sum = 0;
        int n = 0;
        for (int i = 0; i < group; i++) {
            r.push_back(judged_reward(*items[g + i].example, verdicts[g + i]));
            if (r.back()) sum += *r.back(), n++;
        }
        for (int i = 0; i < group; i++) out[g + i] = r[i] ? *r[i] : (n ? sum / n : 0.0);
        if (unscored) *unscored += group - n;
    }
    return out;
}

long count_failed(const std::vector<std::vector<Verdict>>& verdicts) {
    long n = 0;
    for (const auto& v : verdicts)
        for (const Verdict& x : v) n += x.failed;
    return n;
}

}  // namespace rusca
