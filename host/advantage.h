// advantage.h: GRPO group-relative advantages. Each prompt's G rollouts form a group; a rollout's
// advantage is how much better its reward is than its group's mean, so no value network is needed.
#pragma once
#include <string>
#include <vector>

namespace rusca {

// How the centred reward r - mean(group) is scaled:
//  GroupStd: / (unbiased std of the group + eps)                      (GRPO; the paper's choice)
//  None:     not scaled                                               (Dr. GRPO: the std favours
//            easy and hopeless prompts, whose small std inflates their advantages)
//  BatchStd: / (unbiased std of ALL rewards in the batch, about the batch mean, + eps), the group
//            mean is still the baseline. This is TRL's GRPOConfig scale_rewards="batch"
//            (rewards.std() over the whole batch), the "LitePPO" recipe.
enum class AdvNorm { GroupStd, None, BatchStd };
AdvNorm parse_adv_norm(const std::string& name);  // "group", "none", "batch"
const char* adv_norm_name(AdvNorm n);

// rewards are group-major (prompt p's G rollouts at [p*G, p*G + G)); returns one advantage per
// reward. G == 1 gives all zeros: with no group there is no baseline to compare against.
std::vector<float> group_advantages(const std::vector<double>& rewards, int G, AdvNorm norm, double eps = 1e-6);

}  // namespace rusca
