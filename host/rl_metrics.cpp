// rl_metrics.cpp: per-step rollout statistics and alarms (rl_metrics.h).
#include "rl_metrics.h"

#include <cmath>
#include <cstdio>
#include <map>

namespace rusca {

namespace {

struct MetCount {
    long met_pos = 0, n_pos = 0, met_neg = 0, n_neg = 0;
    void add(int points, bool met) {
        if (points > 0) n_pos++, met_pos += met;
        if (points < 0) n_neg++, met_neg += met;
    }
    nlohmann::json rates() const {
        nlohmann::json j = nlohmann::json::object();
        if (n_pos) j["positive"] = double(met_pos) / double(n_pos);
        if (n_neg) j["negative"] = double(met_neg) / double(n_neg);
        return j;
    }
};

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

std::string percent(double x) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%.0f%%", 100 * x);
    return buf;
}

}  // namespace

nlohmann::json rollout_metrics(const std::vector<Rollout>& rollouts, const std::vector<const RubricExample*>& prompts,
                               int G) {
    MetCount all;
    std::map<std::string, MetCount> by_tag;
    long truncated = 0, zero_var = 0, groups = 0;
    for (size_t first = 0; first + G <= rollouts.size(); first += G) {
        groups++;
        bool same = true;
        for (int i = 1; i < G; i++) same = same && rollouts[first + i].reward == rollouts[first].reward;
        zero_var += same;
    }
    for (const Rollout& r : rollouts) {
        truncated += !r.completion.stopped;
        const RubricExample& ex = *prompts[r.prompt];
        for (size_t c = 0; c < ex.rubrics.size() && c < r.met.size(); c++) {
            if (c < r.failed.size() && r.failed[c]) continue;  // masked: no verdict to count
            const Criterion& crit = ex.rubrics[c];
            all.add(crit.points, r.met[c]);
            for (const std::string& t : crit.tags)
                if (starts_with(t, "axis:")) by_tag[t].add(crit.points, r.met[c]);
            for (const std::string& t : ex.example_tags)
                if (starts_with(t, "theme:")) by_tag[t].add(crit.points, r.met[c]);
        }
    }
    nlohmann::json m;
    m["zero_variance_groups"] = groups ? double(zero_var) / double(groups) : 0.0;
    m["truncation_rate"] = rollouts.empty() ? 0.0 : double(truncated) / double(rollouts.size());
    m["met_rate_positive"] = all.n_pos ? double(all.met_pos) / double(all.n_pos) : 0.0;
    m["met_rate_negative"] = all.n_neg ? double(all.met_neg) / double(all.n_neg) : 0.0;
    nlohmann::json tags = nlohmann::json::object();
    for (const auto& [tag, count] : by_tag) tags[tag] = count.rates();
    m["met_rate_by_tag"] = tags;
    return m;
}

std::vector<std::string> step_alarms(const nlohmann::json& m, const AlarmLimits& limits) {
    std::vector<std::string> out;
    auto get = [&](const char* key) { return m.contains(key) ? m[key].get<double>() : 0.0; };
    if (get("zero_variance_groups") > limits.zero_variance)
        out.push_back("most groups (" + percent(get("zero_variance_groups")) +
                      ") have zero reward variance: no advantage, no learning signal (prompts too easy or too "
                      "hard, or a judge that always says the same)");
    if (get("truncation_rate") > limits.truncation)
        out.push_back("most responses (" + percent(get("truncation_rate")) +
                      ") hit --max-new-tokens: they are cut before they end (raise it, or check the stop tokens)");
    const int applied = int(m.value("updates", nlohmann::json::array()).size()) - int(get("updates_skipped"));
    if (applied > 0 && get("loss") == 0 && get("grad_norm") == 0)
        out.push_back("loss and gradient are both zero: this step changed nothing");
    const double kl = get("kl"), ppo_kl = get("ppo_kl");
    if (!std::isfinite(kl) || kl > limits.kl_ref) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.3g", kl);
        out.push_back(std::string("KL to the reference explodes (") + buf + " per token): lower --lr or raise --beta");
    }
    if (!std::isfinite(ppo_kl) || std::fabs(ppo_kl) > limits.ppo_kl) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.3g", ppo_kl);
        out.push_back(std::string("KL between the old and the updated policy explodes (") + buf +
                      " per token): the updates leave the trust region; lower --lr");
    }
    return out;
}

}  // namespace rusca
