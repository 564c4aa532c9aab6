// bench_util.h: what every `rusca bench` shares: medians, the machine's names, running a PyTorch
// baseline script and reading its one JSON line, and writing the result file.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace rusca {

double median(std::vector<double> v);
std::string repo_root();  // the binary lives in <root>/build/rusca
std::string cpu_name();
std::string gpu_name();   // "no GPU" without one
// Runs `python <repo>/<script> <args>` and returns the last JSON object line it printed, or
// {"error": ...} with its exit status and last lines when it printed none.
nlohmann::json run_python_json(const std::string& python, const std::string& script, const std::string& args);
// Adds "date" (UTC) and writes `result` to `path` atomically (nothing when path is empty).
void write_bench_json(nlohmann::json result, const std::string& path);
// ours / theirs of `key` in both objects when both have it; prints "  ratio : ..." and stores it.
void add_ratio(nlohmann::json& result, const nlohmann::json& ours, const nlohmann::json& theirs,
               const std::string& key, bool higher_is_better);

}  // namespace rusca
