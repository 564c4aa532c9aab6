// eval_report.cpp: per-tag scores and per-example lines of an evaluation (eval_report.h).
#include "eval_report.h"

#include <map>

namespace rusca {

namespace {

bool reported_tag(const std::string& t) { return t.rfind("axis:", 0) == 0 || t.rfind("theme:", 0) == 0; }

}  // namespace

int best_completion(const RubricExample& ex, const std::vector<std::vector<bool>>& met) {
    int best = 0;
    for (size_t j = 1; j < met.size(); j++)
        if (rubric_reward(ex, met[j]) > rubric_reward(ex, met[best])) best = int(j);
    return best;
}

nlohmann::json tag_scores(const std::vector<RubricExample>& data, const EvalResult& r, uint64_t seed) {
    std::map<std::string, std::vector<double>> per_tag;  // tag -> one score per prompt that has it
    for (size_t i = 0; i < data.size() && i < r.met.size(); i++) {
        const RubricExample& ex = data[i];
        const std::vector<bool>& met = r.met[i][best_completion(ex, r.met[i])];
        for (const std::string& t : ex.example_tags)
            if (reported_tag(t)) per_tag[t].push_back(rubric_reward(ex, met));
        std::map<std::string, std::pair<double, double>> earned_possible;
        for (size_t c = 0; c < ex.rubrics.size(); c++)
            for (const std::string& t : ex.rubrics[c].tags) {
                if (!reported_tag(t)) continue;
                auto& [earned, possible] = earned_possible[t];
                if (met[c]) earned += ex.rubrics[c].points;
                if (ex.rubrics[c].points > 0) possible += ex.rubrics[c].points;
            }
        for (const auto& [t, ep] : earned_possible)
            if (ep.second > 0) per_tag[t].push_back(ep.first / ep.second);
    }
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [t, scores] : per_tag)
        out[t] = {{"score", clipped_mean_score(scores)}, {"score_std", bootstrap_std(scores, 1000, seed)}, {"n", scores.size()}};
    return out;
}

std::string eval_examples_jsonl(const std::vector<RubricExample>& data, const EvalResult& r) {
    using json = nlohmann::json;
    std::string out;
    for (size_t i = 0; i < data.size() && i < r.met.size(); i++) {
        const RubricExample& ex = data[i];
        json completions = json::array();
        for (size_t j = 0; j < r.met[i].size(); j++) {
            const bool checked = r.has_checker && i < r.checker_met.size();
            json criteria = json::array();
            for (size_t c = 0; c < ex.rubrics.size(); c++) {
                json v = {{"criterion", ex.rubrics[c].text}, {"points", ex.rubrics[c].points}, {"met", bool(r.met[i][j][c])}};
                if (checked) v["checker_met"] = bool(r.checker_met[i][j][c]);
                criteria.push_back(v);
            }
            json line = {{"response", r.responses[i][j]}, {"truncated", bool(r.truncated[i][j])},
                         {"reward", rubric_reward(ex, r.met[i][j])}, {"criteria", criteria}};
            if (checked) line["checker_reward"] = rubric_reward(ex, r.checker_met[i][j]);
            completions.push_back(line);
        }
        const int best = best_completion(ex, r.met[i]);
        json line = {{"prompt_id", ex.prompt_id}, {"score", rubric_reward(ex, r.met[i][best])}, {"best", best},
                     {"completions", completions}};
        out += line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    }
    return out;
}

}  // namespace rusca
