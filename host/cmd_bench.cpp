// cmd_bench.cpp: `rusca bench <what>`: our figure, the PyTorch figure from the same run on the
// same machine, their ratio, and a JSON file with all of it (commit those under bench/results/).
//   cpu-train: CPU training tokens/s (forward + backward + AdamW) vs PyTorch eager on the same
//              shape and thread count, run through tools/bench_cpu_train.py.
#include <omp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "error.h"
#include "fileio.h"
#include "model.h"
#include "optimizer.h"
#include "rng.h"

namespace rusca {

namespace {

struct CpuTrainArgs {
    std::string config = "data/bench_cpu_config.json";
    int batch = 4, seq = 256, steps = 10, warmup = 3, threads = 0;
    std::string python = "python3", json_out;
    bool no_pytorch = false;
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

std::string repo_root() {  // the binary lives in <root>/build/rusca
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    std::string exe = n > 0 ? std::string(buf, size_t(n)) : "build/rusca";
    std::string dir = exe.substr(0, exe.find_last_of('/'));
    return dir.substr(0, dir.find_last_of('/'));
}

std::string cpu_name() {
    std::string text = file_exists("/proc/cpuinfo") ? read_file("/proc/cpuinfo") : "";
    size_t at = text.find("model name");
    if (at == std::string::npos) return "unknown CPU";
    size_t colon = text.find(':', at), end = text.find('\n', at);
    return text.substr(colon + 2, end - colon - 2);
}

// Median tokens/s of our CPU backend: random weights, random tokens, full training steps.
nlohmann::json run_ours(const CpuTrainArgs& a) {
    ModelConfig config = load_config(a.config);
    std::unique_ptr<Model> model = make_cpu_model(config);
    init_params(model->layout, model->params(), 1234);
    AdamW adam(model->layout, AdamWConfig{});
    Rng rng(42);
    const size_t N = size_t(a.batch) * a.seq;
    std::vector<int> tokens(N), targets(N);
    std::vector<double> ms;
    for (int s = 0; s < a.warmup + a.steps; s++) {
        for (size_t i = 0; i < N; i++) tokens[i] = int(rng.below(config.vocab_size));
        for (size_t i = 0; i < N; i++) targets[i] = (i + 1) % a.seq ? tokens[i + 1] : -1;
        auto t0 = std::chrono::steady_clock::now();
        model->zero_grad();
        model->forward(tokens.data(), targets.data(), a.batch, a.seq);
        model->backward();
        adam.step(model->params(), model->grads(), 1e-4f);
        double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (s >= a.warmup) ms.push_back(dt);
    }
    double step_ms = median(ms);
    return {{"tokens_per_s_median", double(N) / (step_ms / 1e3)}, {"step_ms_median", step_ms},
            {"params", model->layout.total}};
}

nlohmann::json run_pytorch(const CpuTrainArgs& a, int threads) {
    std::string cmd = a.python + " " + repo_root() + "/tools/bench_cpu_train.py --config " + a.config +
                      " --batch " + std::to_string(a.batch) + " --seq " + std::to_string(a.seq) + " --steps " +
                      std::to_string(a.steps) + " --warmup " + std::to_string(a.warmup) + " --threads " +
                      std::to_string(threads) + " 2>/dev/null";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return {{"error", "could not start " + a.python}};
    std::string out, last;
    char buf[4096];
    while (fgets(buf, sizeof(buf), p)) out += buf;
    pclose(p);
    for (size_t start = 0, end; start < out.size(); start = end + 1) {  // the last non-empty line
        end = out.find('\n', start);
        if (end == std::string::npos) end = out.size();
        if (end > start) last = out.substr(start, end - start);
    }
    auto j = nlohmann::json::parse(last, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return {{"error", "no JSON from tools/bench_cpu_train.py"}};
    return j;
}

void cpu_train(const CpuTrainArgs& a) {
    if (a.threads > 0) omp_set_num_threads(a.threads);
    const int threads = omp_get_max_threads();
    ModelConfig config = load_config(a.config);
    std::printf("bench cpu-train: %s, %d layers, hidden %d, vocab %d | B=%d T=%d | %d threads | %s\n",
                config.model_type.c_str(), config.num_layers, config.hidden_size, config.vocab_size, a.batch, a.seq,
                threads, cpu_name().c_str());
    nlohmann::json ours = run_ours(a);
    std::printf("  rusca   : %10.0f tokens/s  (median step %.1f ms over %d steps)\n",
                ours["tokens_per_s_median"].get<double>(), ours["step_ms_median"].get<double>(), a.steps);
    nlohmann::json torch = a.no_pytorch ? nlohmann::json{{"error", "skipped (--no-pytorch)"}} : run_pytorch(a, threads);
    nlohmann::json result = {{"benchmark", "cpu-train"}, {"config", a.config}, {"batch", a.batch},
                             {"seq", a.seq}, {"steps", a.steps}, {"warmup", a.warmup}, {"threads", threads},
                             {"cpu", cpu_name()}, {"rusca", ours}, {"pytorch", torch}};
    if (torch.contains("tokens_per_s_median")) {
        double ratio = ours["tokens_per_s_median"].get<double>() / torch["tokens_per_s_median"].get<double>();
        result["ratio_rusca_over_pytorch"] = ratio;
        std::printf("  pytorch : %10.0f tokens/s  (torch %s, eager)\n", torch["tokens_per_s_median"].get<double>(),
                    torch.value("torch", std::string("?")).c_str());
        std::printf("  ratio   : %10.2fx (rusca / pytorch)\n", ratio);
    } else {
        std::printf("  pytorch : unavailable (%s)\n", torch.value("error", std::string("?")).c_str());
    }
    char date[32];
    std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    result["date"] = date;
    if (!a.json_out.empty()) {
        write_file_atomic(a.json_out, result.dump(2) + "\n");
        std::printf("wrote %s\n", a.json_out.c_str());
    }
}

}  // namespace

void add_bench_command(CLI::App& app) {
    CLI::App* bench = app.add_subcommand("bench", "Benchmarks: our figure next to PyTorch's, same run, JSON out");
    bench->require_subcommand(1);
    auto a = std::make_shared<CpuTrainArgs>();
    CLI::App* cpu = bench->add_subcommand("cpu-train", "CPU training tokens/s vs PyTorch eager (same shape, threads)");
    cpu->add_option("--config", a->config, "Model config.json")->capture_default_str()->check(CLI::ExistingFile);
    cpu->add_option("--batch", a->batch, "Sequences per step")->capture_default_str()->check(CLI::Range(1, 4096));
    cpu->add_option("--seq", a->seq, "Tokens per sequence")->capture_default_str()->check(CLI::Range(1, 65536));
    cpu->add_option("--steps", a->steps, "Timed steps")->capture_default_str()->check(CLI::Range(1, 100000));
    cpu->add_option("--warmup", a->warmup, "Untimed warm-up steps")->capture_default_str()->check(CLI::NonNegativeNumber);
    cpu->add_option("--threads", a->threads, "Threads for both (0: all cores)")->check(CLI::NonNegativeNumber);
    cpu->add_option("--python", a->python, "Python with torch + transformers")->capture_default_str();
    cpu->add_flag("--no-pytorch", a->no_pytorch, "Skip the PyTorch baseline");
    cpu->add_option("--json", a->json_out, "Write the results here (e.g. bench/results/cpu-train.json)");
    cpu->callback([a] { cpu_train(*a); });
}

}  // namespace rusca
