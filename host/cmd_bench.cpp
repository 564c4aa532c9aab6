// cmd_bench.cpp: `rusca bench <what>`: our figure, the PyTorch figure from the same run on the
// same machine, their ratio, and a JSON file with all of it (commit those under bench/results/).
//   cpu-train: CPU training tokens/s (forward + backward + AdamW) vs PyTorch eager on the same
//              shape and thread count, run through tools/bench_cpu_train.py.
//   train:     the same on the GPU (CUDA backend) vs HF eager + bf16 autocast
//              (tools/bench_train_torch.py), with peak memory and MFU.
//   tokenizer: BPE encode speed vs Hugging Face tokenizers (cmd_bench_tokenizer.cpp).
//   rl:        whole RuscaRL steps on the GPU at the paper's batch (cmd_bench_rl.cpp).
#include <omp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "cli.h"
#include "host/cuda/bench_kernels.h"
#include "host/cuda/cuda_infer.h"
#include "error.h"
#include "fileio.h"
#include "gpu.h"
#include "mfu.h"
#include "model.h"
#include "optimizer.h"
#include "rng.h"

namespace rusca {

namespace {

struct TrainBenchArgs {
    std::string name = "cpu-train", device = "cpu", script = "tools/bench_cpu_train.py";
    std::string config = "data/bench_cpu_config.json";
    int batch = 4, seq = 256, steps = 10, warmup = 3, threads = 0;
    std::string python = "python3", json_out;
    bool no_pytorch = false;
};

// Median tokens/s of our backend: random weights, random tokens, full training steps.
nlohmann::json run_ours(const TrainBenchArgs& a) {
    ModelConfig config = load_config(a.config);
    const size_t memory_before = a.device == "cpu" ? 0 : gpu_memory_used();
    std::unique_ptr<Model> model = make_model(config, a.device);
    init_params(model->layout, model->params(), 1234);
    model->upload_params();
    AdamW adam(model->layout, AdamWConfig{});
    size_t memory_peak = 0;
    Rng rng(42);
    const size_t N = size_t(a.batch) * a.seq;
    std::vector<int> tokens(N), targets(N);
    std::vector<double> ms;
    for (int s = 0; s < a.warmup + a.steps; s++) {
        for (size_t i = 0; i < N; i++) tokens[i] = int(rng.below(config.vocab_size));
        for (size_t i = 0; i < N; i++) targets[i] = (i + 1) % a.seq ? tokens[i + 1] : -1;
        auto t0 = std::chrono::steady_clock::now();
        model->zero_grad();
        model->forward_backward(tokens.data(), targets.data(), a.batch, a.seq);
        model->optimizer_step(adam, 1e-4f);
        model->synchronize();  // time the whole step, not just its launches
        double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (s >= a.warmup) ms.push_back(dt);
        if (a.device != "cpu") memory_peak = std::max(memory_peak, gpu_memory_used() - memory_before);
    }
    double step_ms = median(ms), tokens_per_s = double(N) / (step_ms / 1e3);
    nlohmann::json out = {{"tokens_per_s_median", tokens_per_s}, {"step_ms_median", step_ms},
                          {"params", model->layout.total}, {"device", model->device()}};
    if (a.device != "cpu") {
        out["memory_bytes"] = memory_peak;  // after the steps: what our allocations hold
        const double peak = current_gpu_peak_flops();  // 0: a card the table does not know
        if (peak > 0) {  // forward + backward = 3 forwards (host/mfu.h)
            out["mfu"] = 3 * forward_flops_per_token(config, a.seq) * tokens_per_s / peak;
            out["peak_bf16_flops"] = peak;
        }
    }
    return out;
}

void train_bench(const TrainBenchArgs& a) {
    if (a.device != "cpu") require_gpu("bench " + a.name);
    if (a.threads > 0) omp_set_num_threads(a.threads);
    const int threads = omp_get_max_threads();
    ModelConfig config = load_config(a.config);
    std::string where = a.device == "cpu" ? std::to_string(threads) + " threads | " + cpu_name() : gpu_name();
    std::printf("bench %s: %s, %d layers, hidden %d, vocab %d | B=%d T=%d | %s\n", a.name.c_str(),
                config.model_type.c_str(), config.num_layers, config.hidden_size, config.vocab_size, a.batch, a.seq,
                where.c_str());
    nlohmann::json ours = run_ours(a);
    std::printf("  rusca   : %10.0f tokens/s  (median step %.1f ms over %d steps)\n",
                ours["tokens_per_s_median"].get<double>(), ours["step_ms_median"].get<double>(), a.steps);
    const std::string args = "--config " + a.config + " --batch " + std::to_string(a.batch) + " --seq " +
                             std::to_string(a.seq) + " --steps " + std::to_string(a.steps) + " --warmup " +
                             std::to_string(a.warmup) + (a.device == "cpu" ? " --threads " + std::to_string(threads) : "");
    nlohmann::json torch = a.no_pytorch ? nlohmann::json{{"error", "skipped (--no-pytorch)"}}
                                        : run_python_json(a.python, a.script, args);
    nlohmann::json result = {{"benchmark", a.name}, {"config", a.config}, {"batch", a.batch},
                             {"seq", a.seq}, {"steps", a.steps}, {"warmup", a.warmup}, {"threads", threads},
                             {"cpu", cpu_name()}, {"gpu", gpu_name()}, {"rusca", ours}, {"pytorch", torch}};
    if (ours.contains("memory_bytes") && torch.contains("peak_memory_bytes"))
        std::printf("  memory  : rusca %.2f GB, pytorch peak %.2f GB\n", ours["memory_bytes"].get<double>() / 1e9,
                    torch["peak_memory_bytes"].get<double>() / 1e9);
    if (ours.contains("mfu"))
        std::printf("  MFU     : %.1f%% of %.0f TFLOP/s bf16\n", 100 * ours["mfu"].get<double>(),
                    ours["peak_bf16_flops"].get<double>() / 1e12);
    if (torch.contains("tokens_per_s_median")) {
        double ratio = ours["tokens_per_s_median"].get<double>() / torch["tokens_per_s_median"].get<double>();
        result["ratio_rusca_over_pytorch"] = ratio;
        std::printf("  pytorch : %10.0f tokens/s  (torch %s, HF eager)\n", torch["tokens_per_s_median"].get<double>(),
                    torch.value("torch", std::string("?")).c_str());
        std::printf("  ratio   : %10.2fx (rusca / pytorch)\n", ratio);
    } else {
        std::printf("  pytorch : unavailable (%s)\n", torch.value("error", std::string("?")).c_str());
    }
    write_bench_json(result, a.json_out);
}

// The options both training benchmarks take; `a` holds the defaults of each.
void add_train_bench(CLI::App* bench, const std::string& name, const std::string& help,
                     std::shared_ptr<TrainBenchArgs> a) {
    CLI::App* cmd = bench->add_subcommand(name, help);
    cmd->add_option("--config", a->config, "Model config.json")->capture_default_str()->check(CLI::ExistingFile);
    cmd->add_option("--batch", a->batch, "Sequences per step")->capture_default_str()->check(CLI::Range(1, 4096));
    cmd->add_option("--seq", a->seq, "Tokens per sequence")->capture_default_str()->check(CLI::Range(1, 65536));
    cmd->add_option("--steps", a->steps, "Timed steps")->capture_default_str()->check(CLI::Range(1, 100000));
    cmd->add_option("--warmup", a->warmup, "Untimed warm-up steps")->capture_default_str()->check(CLI::NonNegativeNumber);
    if (a->device == "cpu")
        cmd->add_option("--threads", a->threads, "Threads for both (0: all cores)")->check(CLI::NonNegativeNumber);
    cmd->add_option("--python", a->python, "Python with torch + transformers")->capture_default_str();
    cmd->add_flag("--no-pytorch", a->no_pytorch, "Skip the PyTorch baseline");
    cmd->add_option("--json", a->json_out, "Write the results here (e.g. bench/results/<name>-<card>-<date>.json)");
    cmd->callback([a] { train_bench(*a); });
}

}  // namespace

void add_tokenizer_bench(CLI::App* bench);  // cmd_bench_tokenizer.cpp
void add_rl_bench(CLI::App* bench);         // cmd_bench_rl.cpp

void add_bench_command(CLI::App& app) {
    CLI::App* bench = app.add_subcommand("bench", "Benchmarks: our figure next to PyTorch's, same run, JSON out");
    bench->require_subcommand(1);
    add_tokenizer_bench(bench);
    add_rl_bench(bench);
    add_train_bench(bench, "cpu-train", "CPU training tokens/s vs PyTorch eager (same shape, threads)",
                    std::make_shared<TrainBenchArgs>());
    auto gpu = std::make_shared<TrainBenchArgs>();
    gpu->name = "train", gpu->device = "cuda", gpu->script = "tools/bench_train_torch.py";
    gpu->config = "data/bench_qwen2_0.5b_config.json", gpu->batch = 8, gpu->seq = 1024;
    add_train_bench(bench, "train", "GPU training tokens/s, memory and MFU vs HF eager + bf16 autocast", gpu);

    auto k = std::make_shared<KernelBenchArgs>();
    auto kernel_options = [k](CLI::App* cmd) {
        cmd->add_option("--repeats", k->repeats, "Timed repeats (median)")->capture_default_str()->check(CLI::Range(1, 10000));
        cmd->add_option("--python", k->python, "Python with torch")->capture_default_str();
        cmd->add_flag("--no-pytorch", k->no_pytorch, "Skip the PyTorch baseline");
        cmd->add_option("--json", k->json_out, "Write the results here");
    };
    CLI::App* att = bench->add_subcommand("attention", "Flash attention fwd/bwd TFLOP/s (T 1024/4096, D 64/128) vs PyTorch SDPA");
    kernel_options(att);
    auto shape = std::make_shared<std::array<int, 3>>(std::array<int, 3>{4, 16, 4});
    att->add_option("--batch", (*shape)[0], "B")->capture_default_str()->check(CLI::Range(1, 1024));
    att->add_option("--heads", (*shape)[1], "Query heads")->capture_default_str()->check(CLI::Range(1, 1024));
    att->add_option("--kv-heads", (*shape)[2], "KV heads")->capture_default_str()->check(CLI::Range(1, 1024));
    att->callback([k, shape] { bench_attention(*k, (*shape)[0], (*shape)[1], (*shape)[2]); });
    auto loss_shape = std::make_shared<std::array<int, 3>>(std::array<int, 3>{16384, 896, 151936});
    CLI::App* loss = bench->add_subcommand("grpo-loss", "Fused GRPO loss fwd+bwd: time and extra memory vs the naive PyTorch loss");
    kernel_options(loss);
    loss->add_option("--tokens", (*loss_shape)[0], "Response tokens")->capture_default_str()->check(CLI::Range(1, 1 << 24));
    loss->add_option("--hidden", (*loss_shape)[1], "Hidden size")->capture_default_str()->check(CLI::Range(8, 1 << 16));
    loss->add_option("--vocab", (*loss_shape)[2], "Vocabulary")->capture_default_str()->check(CLI::Range(2, 1 << 24));
    loss->callback([k, loss_shape] { bench_grpo_loss(*k, (*loss_shape)[0], (*loss_shape)[1], (*loss_shape)[2]); });

    // Rollouts and judging on the Qwen2-0.5B shape, random weights (host/cuda/bench_rollout.cpp).
    auto roll = std::make_shared<std::array<int, 6>>(std::array<int, 6>{64, 128, 256, 12, 300, 512});
    auto config = std::make_shared<std::string>("data/bench_qwen2_0.5b_config.json");
    CLI::App* gen = bench->add_subcommand("generate", "Batched sampling tokens/s and bandwidth use vs HF generate");
    kernel_options(gen);
    gen->add_option("--config", *config, "Model config.json")->capture_default_str()->check(CLI::ExistingFile);
    gen->add_option("--batch", (*roll)[0], "Prompts decoded together")->capture_default_str()->check(CLI::Range(1, 65536));
    gen->add_option("--prompt-len", (*roll)[1], "Prompt tokens")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    gen->add_option("--new-tokens", (*roll)[2], "Generated tokens")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    gen->callback([k, roll, config] {
        write_bench_json(bench_generate(*config, (*roll)[0], (*roll)[1], (*roll)[2], std::min(k->repeats, 5), k->python,
                                        !k->no_pytorch),
                         k->json_out);
    });
    CLI::App* jud = bench->add_subcommand("judge", "Criteria judged per second (prefix-shared) vs one HF prefill each");
    kernel_options(jud);
    jud->add_option("--config", *config, "Judge model config.json")->capture_default_str()->check(CLI::ExistingFile);
    jud->add_option("--responses", (*roll)[0], "Responses")->capture_default_str()->check(CLI::Range(1, 65536));
    jud->add_option("--criteria", (*roll)[3], "Criteria per response")->capture_default_str()->check(CLI::Range(1, 1024));
    jud->add_option("--conversation-len", (*roll)[4], "Conversation tokens")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    jud->add_option("--response-len", (*roll)[5], "Response tokens")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    jud->callback([k, roll, config] {
        write_bench_json(bench_judge(*config, (*roll)[0], (*roll)[3], (*roll)[4], (*roll)[5], 40, std::min(k->repeats, 5),
                                     k->python, !k->no_pytorch),
                         k->json_out);
    });
}

}  // namespace rusca
