// run_log.cpp: metrics trimming and checkpoint metadata checks.
#include "run_log.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
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
        // A line that is not {"step": N, ...} (a torn last line after a kill) is dropped, not fatal.
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_object() && j.contains("step") && j["step"].is_number_integer() && j["step"].get<long>() <= step)
            kept += line + "\n";
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

// A metadata value that must be an integer in [lo, hi] (std::stoi would throw its own exception).
static long meta_int(const TrainState& s, const std::string& key, const std::string& ckpt, long lo, long hi) {
    const std::string v = meta_get(s, key, ckpt);
    errno = 0;
    char* end = nullptr;
    const long n = v.empty() ? 0 : std::strtol(v.c_str(), &end, 10);
    check(!v.empty() && *end == '\0' && errno == 0 && n >= lo && n <= hi,
          ckpt + "/train_state.safetensors: metadata \"" + key + "\" = \"" + v.substr(0, 40) +
              "\" is not an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return n;
}

int restore_training(const std::string& ckpt, const TrainState& st, const ParamLayout& layout, float* params,
                     AdamW& adam, EpochSampler& sampler, const std::string& metrics_path) {
    load_params(ckpt, layout, params);
    const int step = int(meta_int(st, "step", ckpt, 0, INT_MAX));
    adam.t = int(meta_int(st, "adam_t", ckpt, 0, INT_MAX));
    adam.m = st.m, adam.v = st.v;
    // The cursor indexes this run's dataset: a larger one means a different --data file.
    sampler.restore(meta_int(st, "epoch", ckpt, 0, LONG_MAX), meta_int(st, "cursor", ckpt, 0, long(sampler.n)));
    trim_metrics(metrics_path, step);
    return step;
}

}  // namespace rusca
