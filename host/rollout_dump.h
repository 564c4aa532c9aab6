// rollout_dump.h: `rusca rl --dump-every N`: every N steps, OUT/rollouts/step_000010.jsonl holds
// each rollout of the step as the loop saw it, to read what the policy wrote and why it was
// rewarded. One JSON object per rollout, in the order generated (group-major):
//   {"step", "rollout" (index in the step), "group", "index" (1..G within the group), "prompt_id",
//    "lambda", "shown": [{"criterion", "points"}] (the scaffold's criteria, in the order shown),
//    "scaffold" (the system text generation saw, "" = none), "response", "tokens" (generated,
//    the stop token included), "truncated", "criteria": [{"criterion", "points", "met"}],
//    "reward", "advantage", "sample_seed" (the generation call's seed: with the scaffolds above it
//    replays the step's rollouts)}
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "rollout.h"
#include "rubric.h"
#include "tokenizer/tokenizer.h"

namespace rusca {

// OUT/rollouts/step_<step, 6 digits>.jsonl; with rank >= 0, step_<step>.rank<rank>.jsonl
std::string rollout_dump_path(const std::string& out, int step, int rank = -1);

// Writes the step's file (atomically; an existing one, from a run resumed before this step, is replaced).
// Data parallel: each rank writes the rollouts it generated (`which`, indices into rollouts) to its
// own file (rank >= 0), since only it holds their text.
void write_rollout_dump(const std::string& out, int step, const std::vector<Rollout>& rollouts,
                        const std::vector<const RubricExample*>& prompts, int G, const Tokenizer& tok,
                        uint64_t sample_seed, const std::vector<size_t>* which = nullptr, int rank = -1);

}  // namespace rusca
