// bench_util.cpp: shared pieces of the benchmarks.
#include "bench_util.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "fileio.h"
#include "gpu.h"

namespace rusca {

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

std::string repo_root() {
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    std::string exe = n > 0 ? std::string(buf, size_t(n)) : "build/rusca";
    std::string dir = exe.substr(0, exe.find_last_of('/'));
    return dir.substr(0, dir.find_last_of('/'));
}

std::string gpu_name() {
    std::vector<GpuInfo> gpus = list_gpus();
    return gpus.empty() ? "no GPU" : gpus[0].name;
}

std::string cpu_name() {
    std::string text = file_exists("/proc/cpuinfo") ? read_file("/proc/cpuinfo") : "";
    size_t at = text.find("model name");
    if (at == std::string::npos) return "unknown CPU";
    size_t colon = text.find(':', at), end = text.find('\n', at);
    return text.substr(colon + 2, end - colon - 2);
}

nlohmann::json run_python_json(const std::string& python, const std::string& script, const std::string& args) {
    const std::string cmd = python + " " + repo_root() + "/" + script + " " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return {{"error", "could not start " + python}};
    std::string out;
    char buf[4096];
    while (fgets(buf, sizeof(buf), p)) out += buf;
    const int rc = pclose(p);
    std::vector<std::string> lines;
    for (size_t start = 0, end; start < out.size(); start = end + 1) {
        end = out.find('\n', start);
        if (end == std::string::npos) end = out.size();
        if (end > start) lines.push_back(out.substr(start, end - start));
    }
    // The answer is the last line that parses as a JSON object (progress goes to stderr before it).
    for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
        auto j = nlohmann::json::parse(*it, nullptr, false);
        if (!j.is_discarded() && j.is_object()) return j;
    }
    std::string tail;
    for (size_t i = lines.size() > 5 ? lines.size() - 5 : 0; i < lines.size(); i++) tail += lines[i] + " | ";
    return {{"error", "no JSON from " + script + " (exit status " + std::to_string(rc) + "): " + tail}};
}

void write_bench_json(nlohmann::json result, const std::string& path) {
    char date[32];
    std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    result["date"] = date;
    if (path.empty()) return;
    write_file_atomic(path, result.dump(2) + "\n");
    std::printf("wrote %s\n", path.c_str());
}

void add_ratio(nlohmann::json& result, const nlohmann::json& ours, const nlohmann::json& theirs,
               const std::string& key, bool higher_is_better) {
    if (!ours.contains(key) || !theirs.contains(key)) return;
    const double a = ours[key].get<double>(), b = theirs[key].get<double>();
    const double speedup = higher_is_better ? a / b : b / a;
    result["speedup_" + key] = speedup;
    std::printf("  speedup (%s): %.2fx\n", key.c_str(), speedup);
}

}  // namespace rusca
