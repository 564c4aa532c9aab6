// run_log.cpp: metrics trimming and checkpoint metadata checks.
#include "run_log.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "error.h"
#include "fileio.h"

namespace rusca {

void trim_metrics(const std::string& path, long step) {
    if (!file_exists(path)) return;
    std::istringstream in(read_file(path));
    std::string line, kept;
    while (std::getline(in, line)) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_discarded() && j.value("step", 0L) <= step) kept += line + "\n";
    }
    write_file_atomic(path, kept);
}

std::string meta_get(const TrainState& s, const std::string& key, const std::string& ckpt) {
    auto it = s.meta.find(key);
    check(it != s.meta.end(), ckpt + "/train_state.safetensors: metadata \"" + key + "\" is missing");
    return it->second;
}

void meta_expect(const TrainState& s, const std::string& key, const std::string& want, const std::string& ckpt) {
    const std::string have = meta_get(s, key, ckpt);
    check(have == want, ckpt + ": checkpoint was made with " + key + " = " + have + ", this run asks for " + want +
                            " (resume with the same settings)");
}

TrainState training_state(int step, const AdamW& adam, const EpochSampler& sampler) {
    TrainState st{adam.m, adam.v, {}};
    st.meta = {{"step", std::to_string(step)},
               {"adam_t", std::to_string(adam.t)},
               {"epoch", std::to_string(sampler.epoch)},
               {"cursor", std::to_string(sampler.cursor)}};
    return st;
}

int restore_training(const std::string& ckpt, const TrainState& st, const ParamLayout& layout, float* params,
                     AdamW& adam, EpochSampler& sampler, const std::string& metrics_path) {
    load_params(ckpt, layout, params);
    const int step = std::stoi(meta_get(st, "step", ckpt));
    adam.t = std::stoi(meta_get(st, "adam_t", ckpt));
    adam.m = st.m, adam.v = st.v;
    sampler.restore(std::stol(meta_get(st, "epoch", ckpt)), std::stol(meta_get(st, "cursor", ckpt)));
    trim_metrics(metrics_path, step);
    return step;
}

}  // namespace rusca
