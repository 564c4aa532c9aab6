// rollout.h: one RuscaRL rollout as the step carries it from scaffold to loss; shared by the loop
// (rl.cpp), its metrics (rl_metrics.h) and its dumps (rollout_dump.h).
#pragma once
#include <vector>

#include "generate.h"
#include "scaffold.h"

namespace rusca {

struct Rollout {
    int prompt = 0;            // index into the step's prompts (group-major: rollout k is prompt k / G)
    RolloutScaffold scaffold;  // lambda, the criteria shown, the scaffold text ("" = none)
    Completion completion;     // what generation produced after scaffold + prompt
    std::vector<bool> met;     // verdict per criterion of the prompt's rubric
    std::vector<bool> failed;  // per criterion: the judge gave no verdict (external judge), masked
    double reward = 0;
    float advantage = 0;
};

}  // namespace rusca
