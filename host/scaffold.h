// scaffold.h: RuscaRL's rubric scaffold: how much of the rubric each rollout sees, which criteria,
// and the text injected before the prompt.
//  - lambda_step(t) fades the help out over training (sigmoid by default: gone after ~23% of a run);
//  - lambda_i = lambda_step * (G - i) / (G - 1) spreads it over the group, so rollout 1 gets the
//    most help and rollout G none: the group always mixes scaffolded and unscaffolded answers;
//  - round(lambda_i * |R|) criteria (half to even, as Python's round in the official code) are
//    drawn uniformly from all criteria, in random order, and rendered through a template file.
#pragma once
#include <string>
#include <vector>

#include "rng.h"
#include "rubric.h"

namespace rusca {

enum class StepDecay { Sigmoid, Constant, Linear, Power };
StepDecay parse_step_decay(const std::string& name);  // "sigmoid", "constant", "linear", "power"
const char* step_decay_name(StepDecay d);

struct ScaffoldSchedule {
    StepDecay decay = StepDecay::Sigmoid;
    double alpha = 125, t0 = 0.2;  // sigmoid steepness and midpoint (paper defaults)
    double power = 2;              // exponent of the power decay
    // >= 0: the binary group rule: rollouts 1..binary_n get lambda_step, the rest 0 (with
    // decay = Constant that is "first N fully scaffolded, rest none"). < 0: the linear group rule.
    int binary_n = -1;

    // Step s of T (1-based), progress t = (s-1)/(T-1), t = 0 when T == 1.
    double lambda_step(int step, int total_steps) const;
    // Rollout i of G (1-based). G == 1: the lone rollout is the group's first and gets lambda_step
    // (the official code gives it 1.0 whatever the step; we keep the decay so G = 1 still fades).
    double lambda(int step, int total_steps, int i, int G) const;
};

// round(lambda * n), ties to even (0.5 -> 0, 2.5 -> 2), clamped to [0, n].
int criteria_shown(double lambda, int n);

// A uniform random k-subset of 0..n-1 in random order (partial Fisher-Yates: k draws).
std::vector<int> select_criteria(int n, int k, Rng& rng);

// The scaffold wording, read from a file users can edit (data/scaffold_template.txt documents the
// format at its top): sections [header], [include], [avoid], [item], [footer]; [item] is one line
// with {criterion} (the text) and optionally {points} (its absolute points).
struct ScaffoldTemplate {
    std::string header, include, avoid, item, footer;

    static ScaffoldTemplate load(const std::string& path);
    static ScaffoldTemplate parse(const std::string& text, const std::string& name);  // name: for errors
    // Positive-point criteria go under [include], the others under [avoid], each in the given
    // order; a heading with no items is left out; no criteria at all gives "" (no scaffold).
    // Zero-point criteria are skipped (they move no reward), as in the official code.
    std::string render(const std::vector<const Criterion*>& shown) const;
};

struct RolloutScaffold {
    double lambda = 0;
    std::vector<int> shown;  // indices into the example's rubrics, in the order shown
    std::string text;        // "" when nothing is shown: the prompt goes out unchanged
};

// The scaffolds of one prompt's G rollouts at `step`, drawing criteria from `rng` in rollout order.
std::vector<RolloutScaffold> build_group_scaffolds(const RubricExample& ex, const ScaffoldSchedule& sched, int step,
                                                   int total_steps, int G, const ScaffoldTemplate& tmpl, Rng& rng);

}  // namespace rusca
