// rl_metrics.h: what a RuscaRL step's rollouts say beyond the mean reward, and the alarms that catch
// a run that "trains but learns nothing" while it runs, not after 350 steps.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rollout.h"
#include "rubric.h"

namespace rusca {

// Metrics of one step's rollouts (group-major, G per prompt; prompts[r.prompt] is r's example):
//   zero_variance_groups  fraction of groups whose G rewards are all equal: all advantages 0, no signal
//   truncation_rate       fraction of responses that hit the length limit instead of a stop token
//   met_rate_positive / met_rate_negative   met verdicts over criteria with points > 0 / < 0
//                         (zero-point criteria move no reward and count in neither)
//   met_rate_by_tag       {"axis:accuracy": {"positive": r, "negative": r}, "theme:...": {...}}: the
//                         same split per HealthBench axis (a criterion's "axis:" tags) and theme (an
//                         example's "theme:" tags); a kind with no criteria is left out
nlohmann::json rollout_metrics(const std::vector<Rollout>& rollouts, const std::vector<const RubricExample*>& prompts,
                               int G);

// When an alarm goes off (fractions and per-token KLs; see step_alarms).
struct AlarmLimits {
    double zero_variance = 0.5;  // more than half the groups carry no advantage
    double truncation = 0.5;     // more than half the responses cut by --max-new-tokens
    double kl_ref = 1.0;         // mean k3 KL to the reference above 1 nat per token
    double ppo_kl = 0.1;         // |mean(old - current log-prob)| above 0.1 within one step
};

// The alarms of a step's metrics line (the keys rl.cpp writes: zero_variance_groups,
// truncation_rate, loss, grad_norm, updates_skipped, kl, ppo_kl), each one sentence naming the
// number and the usual cause; empty when all is well.
std::vector<std::string> step_alarms(const nlohmann::json& m, const AlarmLimits& limits = {});

}  // namespace rusca
