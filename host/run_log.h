// run_log.h: what sft and rl share about a run directory: metrics.jsonl kept consistent across
// resumes, and typed reads of checkpoint metadata.
#pragma once
#include <string>

#include "checkpoint.h"

namespace rusca {

// Keeps metrics lines of steps <= `step`: a resumed run rewrites what the killed run logged after
// its last checkpoint, so the file never holds a step twice.
void trim_metrics(const std::string& path, long step);

// state.meta[key], or an Error naming the checkpoint and the key.
std::string meta_get(const TrainState& state, const std::string& key, const std::string& ckpt);
// Error unless state.meta[key] == want: a resumed run must be configured like the saved one.
void meta_expect(const TrainState& state, const std::string& key, const std::string& want, const std::string& ckpt);

}  // namespace rusca
