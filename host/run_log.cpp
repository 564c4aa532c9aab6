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

}  // namespace rusca
