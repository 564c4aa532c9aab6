// scaffold.cpp: the scaffold ratio schedule, criteria selection, and template rendering.
#include "scaffold.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <map>
#include <sstream>

#include "error.h"
#include "template_file.h"
#include "fileio.h"

namespace rusca {

StepDecay parse_step_decay(const std::string& name) {
    if (name == "sigmoid") return StepDecay::Sigmoid;
    if (name == "constant") return StepDecay::Constant;
    if (name == "linear") return StepDecay::Linear;
    if (name == "power") return StepDecay::Power;
    throw Error("unknown scaffold decay \"" + name + "\" (expected sigmoid, constant, linear or power)");
}

const char* step_decay_name(StepDecay d) {
    switch (d) {
        case StepDecay::Sigmoid: return "sigmoid";
        case StepDecay::Constant: return "constant";
        case StepDecay::Linear: return "linear";
        case StepDecay::Power: return "power";
    }
    return "?";
}

double ScaffoldSchedule::lambda_step(int step, int total_steps) const {
    check(total_steps >= 1 && step >= 1 && step <= total_steps,
          "scaffold schedule: step " + std::to_string(step) + " is outside 1.." + std::to_string(total_steps));
    const double t = total_steps == 1 ? 0.0 : double(step - 1) / double(total_steps - 1);
    switch (decay) {
        case StepDecay::Sigmoid: return 1.0 / (1.0 + std::exp(alpha * (t - t0)));  // exp overflow -> 0, fine
        case StepDecay::Constant: return 1.0;
        case StepDecay::Linear: return 1.0 - t;
        case StepDecay::Power: return std::pow(1.0 - t, power);
    }
    return 1.0;
}

double ScaffoldSchedule::lambda(int step, int total_steps, int i, int G) const {
    check(G >= 1 && i >= 1 && i <= G,
          "scaffold schedule: rollout " + std::to_string(i) + " is outside 1.." + std::to_string(G));
    const double ls = lambda_step(step, total_steps);
    if (binary_n >= 0) return i <= binary_n ? ls : 0.0;
    if (G == 1) return ls;
    return ls * double(G - i) / double(G - 1);
}

int criteria_shown(double lambda, int n) {
    check(std::isfinite(lambda) && n >= 0, "criteria_shown: bad scaffold ratio or criterion count");
    // nearbyint rounds in the current mode, which is round-half-to-even unless someone changed it.
    const double k = std::nearbyint(lambda * n);
    return k <= 0 ? 0 : k >= n ? n : int(k);
}

std::vector<int> select_criteria(int n, int k, Rng& rng) {
    check(n >= 0 && k >= 0 && k <= n, "select_criteria: cannot choose " + std::to_string(k) + " of " +
                                          std::to_string(n) + " criteria");
    std::vector<int> idx(n);
    for (int j = 0; j < n; j++) idx[j] = j;
    // The first k steps of a Fisher-Yates shuffle: slot j gets a uniform pick of what is left.
    for (int j = 0; j < k; j++) std::swap(idx[j], idx[j + int(rng.below(uint64_t(n - j)))]);
    idx.resize(k);
    return idx;
}

// ---- the template file ------------------------------------------------------------------------

namespace {

// "{points}" is the size of the points: the heading already says include or avoid.
std::string render_item(const std::string& item, const Criterion& c) {
    return substitute(item, {{"{criterion}", c.text}, {"{points}", std::to_string(std::abs(c.points))}});
}

void add_block(std::string& out, const std::string& block) {
    if (block.empty()) return;
    out += (out.empty() ? "" : "\n\n") + block;
}

}  // namespace

ScaffoldTemplate ScaffoldTemplate::load(const std::string& path) { return parse(read_file(path), path); }

ScaffoldTemplate ScaffoldTemplate::parse(const std::string& text, const std::string& name) {
    std::map<std::string, std::string> sec =
        parse_sections(text, name, {"header", "include", "avoid", "item", "footer"}, {"include", "avoid", "item"});
    ScaffoldTemplate tmpl{sec["header"], sec["include"], sec["avoid"], sec["item"], sec["footer"]};
    check(tmpl.item.find('\n') == std::string::npos && tmpl.item.find("{criterion}") != std::string::npos,
          name + ": [item] must be one line containing {criterion}");
    return tmpl;
}

std::string ScaffoldTemplate::render(const std::vector<const Criterion*>& shown) const {
    std::string good, bad;  // zero-point criteria change no reward, so they are not shown at all
    for (const Criterion* c : shown) {
        std::string& list = c->points > 0 ? good : bad;
        if (c->points != 0) list += (list.empty() ? "" : "\n") + render_item(item, *c);
    }
    if (good.empty() && bad.empty()) return "";
    std::string out;
    add_block(out, header);
    if (!good.empty()) add_block(out, include.empty() ? good : include + "\n" + good);
    if (!bad.empty()) add_block(out, avoid.empty() ? bad : avoid + "\n" + bad);
    add_block(out, footer);
    return out;
}

std::vector<RolloutScaffold> build_group_scaffolds(const RubricExample& ex, const ScaffoldSchedule& sched, int step,
                                                   int total_steps, int G, const ScaffoldTemplate& tmpl, Rng& rng) {
    const int n = int(ex.rubrics.size());
    std::vector<RolloutScaffold> out(G);
    for (int i = 1; i <= G; i++) {
        RolloutScaffold& r = out[i - 1];
        r.lambda = sched.lambda(step, total_steps, i, G);
        r.shown = select_criteria(n, criteria_shown(r.lambda, n), rng);
        std::vector<const Criterion*> shown;
        for (int k : r.shown) shown.push_back(&ex.rubrics[k]);
        r.text = tmpl.render(shown);
    }
    return out;
}

}  // namespace rusca
