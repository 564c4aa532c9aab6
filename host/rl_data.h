// rl_data.h: which prompts a RuscaRL run trains on and which it draws at each step.
#pragma once
#include <string>
#include <vector>

#include "rubric.h"
#include "scaffold.h"
#include "sft_data.h"
#include "tokenizer/tokenizer.h"

namespace rusca {

// The tokens generation may need for `ex`: the chat prefix holding a scaffold of EVERY criterion
// (the longest any rollout can get; bare when `scaffold` is null) + the prompt + max_new_tokens.
long longest_generation_tokens(const Tokenizer& tok, const RubricExample& ex, const ScaffoldTemplate* scaffold,
                               int max_new_tokens);

// The examples whose longest generation fits in `context` tokens (the policy's
// max_position_embeddings), in order; `filtered` gets how many were left out. A prompt that cannot
// fit is dropped before training (verl's filter_overlong_prompts) instead of stopping the run at the
// step that draws it. None left is an Error naming `what` (the file).
std::vector<RubricExample> drop_overlong(std::vector<RubricExample> data, const Tokenizer& tok,
                                         const ScaffoldTemplate* scaffold, int max_new_tokens, int context,
                                         const std::string& what, long& filtered);

// The P data indices of one step, all different: a step never spans two epochs (verl's dataloader
// drops the last incomplete batch the same way), so when fewer than P prompts are left in this
// epoch the sampler moves to the next one. P larger than the data is an Error naming `what`.
std::vector<size_t> draw_step_prompts(EpochSampler& sampler, int P, const std::string& what);

}  // namespace rusca
