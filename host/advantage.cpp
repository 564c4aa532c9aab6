// advantage.cpp: group-relative advantages (see advantage.h for the three scalings).
#include "advantage.h"

#include <cmath>

#include "error.h"

namespace rusca {

AdvNorm parse_adv_norm(const std::string& name) {
    if (name == "group") return AdvNorm::GroupStd;
    if (name == "none") return AdvNorm::None;
    if (name == "batch") return AdvNorm::BatchStd;
    throw Error("unknown advantage normalization \"" + name + "\" (expected group, none or batch)");
}

const char* adv_norm_name(AdvNorm n) {
    switch (n) {
        case AdvNorm::GroupStd: return "group";
        case AdvNorm::None: return "none";
        case AdvNorm::BatchStd: return "batch";
    }
    return "?";
}

namespace {

double mean_of(const double* x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s / double(n);
}

// Unbiased (n - 1) standard deviation, as torch.std: needs n >= 2.
double std_of(const double* x, size_t n) {
    const double m = mean_of(x, n);
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (x[i] - m) * (x[i] - m);
    return std::sqrt(ss / double(n - 1));
}

}  // namespace

std::vector<float> group_advantages(const std::vector<double>& rewards, int G, AdvNorm norm, double eps) {
    check(G >= 1 && rewards.size() % size_t(G) == 0,
          "group_advantages: " + std::to_string(rewards.size()) + " rewards do not split into groups of " +
              std::to_string(G));
    std::vector<float> adv(rewards.size(), 0.0f);
    if (G == 1 || rewards.empty()) return adv;
    const double batch_std = norm == AdvNorm::BatchStd ? std_of(rewards.data(), rewards.size()) : 0.0;
    for (size_t g = 0; g < rewards.size(); g += G) {
        const double* r = rewards.data() + g;
        const double mean = mean_of(r, G);
        double denom = 1.0;
        if (norm == AdvNorm::GroupStd) denom = std_of(r, G) + eps;
        if (norm == AdvNorm::BatchStd) denom = batch_std + eps;
        for (int i = 0; i < G; i++) adv[g + i] = float((r[i] - mean) / denom);
    }
    return adv;
}

}  // namespace rusca
