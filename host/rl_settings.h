// rl_settings.h: the settings that make a RuscaRL run what it is. They are saved in every
// checkpoint and in OUT/settings.json; --resume refuses a run that asks for different ones, naming
// the first that differs, because a resumed run with another schedule, loss or sampler would
// silently be a different experiment.
#pragma once
#include <map>
#include <string>

#include "checkpoint.h"
#include "rl.h"

namespace rusca {

// Name -> value as text (numbers in shortest round-trip form, so 1e-6 and 1.5e-6 differ).
// Operational settings (threads, device, save/eval/dump cadence, quiet, stop-at) are left out: they
// change how a run is watched, not what it computes.
std::map<std::string, std::string> rl_run_settings(const RlOptions& o);

// Error unless `state` (a checkpoint's metadata) holds the same value for every key of `settings`:
// "<ckpt>: checkpoint was made with lr = 1e-06, this run asks for 2e-06 (resume with the same settings)".
void expect_same_settings(const TrainState& state, const std::map<std::string, std::string>& settings,
                          const std::string& ckpt);

}  // namespace rusca
