// rl_settings.cpp: a run's defining settings, for checkpoints and --resume.
#include "rl_settings.h"

#include <fmt/format.h>

#include "run_log.h"

namespace rusca {

std::map<std::string, std::string> rl_run_settings(const RlOptions& o) {
    auto num = [](auto x) { return fmt::format("{}", x); };  // shortest text that reads back as x
    const bool on = o.scaffold;
    return {
        // what is trained on what
        {"policy", o.policy},
        {"seed", std::to_string(o.seed)},
        {"reward", o.checker_reward ? "checker" : "judge"},
        // the step
        {"steps", std::to_string(o.steps)},
        {"group", std::to_string(o.group)},
        {"prompts_per_step", std::to_string(o.prompts_per_step)},
        {"updates_per_step", std::to_string(o.updates_per_step)},
        {"lr", num(o.lr)},
        {"weight_decay", num(o.adam.weight_decay)},
        {"grad_clip", num(o.adam.grad_clip)},
        // the loss
        {"eps_low", num(o.loss.eps_low)},
        {"eps_high", num(o.loss.eps_high)},
        {"dual_clip", num(o.loss.dual_clip_c)},
        {"beta", num(o.loss.beta)},
        {"loss_agg", cpu::grpo_agg_name(o.loss.agg)},
        {"adv_norm", adv_norm_name(o.adv_norm)},
        // sampling
        {"temperature", num(o.sampling.temperature)},
        {"top_p", num(o.sampling.top_p)},
        {"top_k", std::to_string(o.sampling.top_k)},
        {"min_p", num(o.sampling.min_p)},
        {"max_new_tokens", std::to_string(o.max_new_tokens)},
        // the scaffold schedule
        {"scaffold", on ? step_decay_name(o.schedule.decay) : "none"},
        {"alpha", on ? num(o.schedule.alpha) : "-"},
        {"t0", on ? num(o.schedule.t0) : "-"},
        {"power", on ? num(o.schedule.power) : "-"},
        {"binary_n", on ? std::to_string(o.schedule.binary_n) : "-"},
    };
}

void expect_same_settings(const TrainState& state, const std::map<std::string, std::string>& settings,
                          const std::string& ckpt) {
    for (const auto& [key, want] : settings) meta_expect(state, key, want, ckpt);
}

}  // namespace rusca
