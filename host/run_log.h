// run_log.h: what sft and rl share about a run directory: metrics.jsonl kept consistent across
// resumes, and typed reads of checkpoint metadata.
#pragma once
#include <string>

#include "checkpoint.h"
#include "optimizer.h"
#include "sft_data.h"

namespace rusca {

// Keeps metrics lines of steps <= `step`: a resumed run rewrites what the killed run logged after
// its last checkpoint, so the file never holds a step twice.
void trim_metrics(const std::string& path, long step);

// state.meta[key], or an Error naming the checkpoint and the key.
std::string meta_get(const TrainState& state, const std::string& key, const std::string& ckpt);
// Error unless state.meta[key] == want: a resumed run must be configured like the saved one.
void meta_expect(const TrainState& state, const std::string& key, const std::string& want, const std::string& ckpt);

// The state every training loop saves: step, AdamW moments and step count, data position. Loops
// add their own keys (their settings) to meta before saving.
TrainState training_state(int step, const AdamW& adam, const EpochSampler& sampler);
// The inverse, from a checkpoint directory: weights into `params`, AdamW, data position; trims
// metrics_path to the checkpoint's step. Returns that step.
int restore_training(const std::string& ckpt, const TrainState& state, const ParamLayout& layout, float* params,
                     AdamW& adam, EpochSampler& sampler, const std::string& metrics_path);

}  // namespace rusca
