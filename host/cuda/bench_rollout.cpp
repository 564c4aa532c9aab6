// bench_rollout.cpp: the two rollout-side GPU benchmarks, each our figure next to the PyTorch one
// from the same run on the same card (declared in host/cuda/cuda_infer.h):
//   bench_generate: rollouts (prefill + batched decode + sampling) vs HF `generate`
//                   (tools/bench_generate_torch.py), tokens/s and the memory-bandwidth fraction;
//   bench_judge:    prefix-shared yes/no judging vs one HF prefill per judge prompt
//                   (tools/bench_judge_torch.py), criteria judged per second.
// Random weights and random tokens: speed does not depend on what the model says,
// as long as nothing stops early (no stop tokens). Our time is wall clock around whole synchronous
// calls (generate() and judge() end with the stream synchronized), median of `repeats` after one
// untimed warm-up call.

#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cuda_infer.h"
#include "host/error.h"

#ifdef RUSCA_CUDA
#include <chrono>
#include <cmath>

#include "host/config.h"
#include "host/bench_util.h"
#include "host/gpu.h"
#include "host/model.h"
#include "host/params.h"
#include "host/rng.h"
#endif

namespace rusca {

#ifdef RUSCA_CUDA

namespace {

std::vector<int> random_tokens(Rng& rng, int n, int V) {
    std::vector<int> t(n);
    for (int& x : t) x = int(rng.below(uint64_t(V)));
    return t;
}

// Random fp32 weights on the host: matrices uniform with std 0.02 (the speed of bf16 math does not
// depend on the distribution), norms 1, biases 0. Drawn in parallel, in fixed chunks each with its
// own seed, because init_params' serial normal draws take ~15 s for the 0.5B shape.
std::vector<float> random_params(const ModelConfig& c) {
    ParamLayout layout(c);
    std::vector<float> params(layout.total);
    const long long n = (long long)layout.total, chunk = 1 << 20;
    const double a = 0.02 * std::sqrt(3.0);
#pragma omp parallel for schedule(dynamic)
    for (long long c0 = 0; c0 < n; c0 += chunk) {
        Rng rng(1234 + uint64_t(c0 / chunk));
        for (long long i = c0; i < std::min(n, c0 + chunk); i++) params[i] = float((2 * rng.uniform() - 1) * a);
    }
    for (const ParamInfo& p : layout.tensors)
        if (p.shape.size() == 1)
            std::fill_n(params.begin() + p.offset, p.numel, p.name.find("norm") != std::string::npos ? 1.0f : 0.0f);
    return params;
}

}  // namespace

nlohmann::json bench_generate(const std::string& config_path, int batch, int prompt_len, int new_tokens, int repeats,
                              const std::string& python, bool run_pytorch, double bandwidth_bytes_per_s) {
    require_gpu("bench generate");
    check(batch >= 1 && prompt_len >= 1 && new_tokens >= 1 && repeats >= 1,
          "bench generate: batch, prompt length, new tokens and repeats must be positive");
    check(bandwidth_bytes_per_s > 0, "bench generate: the bandwidth must be positive");
    const ModelConfig c = load_config(config_path);
    std::printf("bench generate: %s, %d layers, hidden %d, vocab %d | %d prompts x %d tokens, %d new tokens, "
                "sampling T=1 | %s\n",
                c.model_type.c_str(), c.num_layers, c.hidden_size, c.vocab_size, batch, prompt_len, new_tokens,
                gpu_name().c_str());
    std::fflush(stdout);
    const ParamLayout layout(c);
    auto engine = std::make_unique<CudaEngine>(c, random_params(c).data());  // freed before PyTorch runs

    Rng rng(42);
    std::vector<PromptGroup> groups(batch);
    for (PromptGroup& g : groups) g.prompt = random_tokens(rng, prompt_len, c.vocab_size), g.prefixes = {{}};
    GenerateOptions opt;
    opt.sampling.temperature = 1.0f;
    opt.max_new_tokens = new_tokens;
    opt.seed = 7;

    std::vector<double> total_s, decode_s, prefill_s;
    CudaEngineStats last;
    for (int rep = 0; rep <= repeats; rep++) {  // rep 0: warm-up
        const auto t0 = std::chrono::steady_clock::now();
        auto out = engine->generate(groups, opt);
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        for (auto& g : out) check(int(g[0].tokens.size()) == new_tokens, "bench generate: a rollout stopped early");
        last = engine->stats();
        if (rep == 0) continue;
        total_s.push_back(dt), decode_s.push_back(last.decode_s), prefill_s.push_back(last.prefill_s);
    }
    const double t = median(total_s), td = median(decode_s), tp = median(prefill_s);
    const long steps = last.decode_steps;
    const double tokens_per_s = double(batch) * new_tokens / t;
    // Bytes a decode step must read: every weight once (the LM head included; an untied embedding
    // table only for the batch's rows), and every active rollout's keys and values.
    const double C = c.hidden_size, V = c.vocab_size, L = c.num_layers, KV = c.kv_dim();
    const double weight_bytes = 2.0 * (double(layout.total) - (c.tie_word_embeddings ? 0.0 : V * C)) + batch * C * 2.0;
    double kv_bytes = 0;  // mean over the decode steps; feed j reads prompt_len + j + 1 rows per rollout
    for (long j = 0; j < steps; j++) kv_bytes += double(batch) * (prompt_len + j + 1) * KV * 2 /*K,V*/ * 2 /*bf16*/ * L;
    kv_bytes = steps ? kv_bytes / double(steps) : 0;
    const double step_s = steps ? td / double(steps) : 0;
    const double bw_fraction = step_s > 0 ? (weight_bytes + kv_bytes) / step_s / bandwidth_bytes_per_s : 0;
    nlohmann::json ours = {
        {"tokens_per_s_median", tokens_per_s},
        {"seconds_median", t},
        {"prefill_and_first_token_s_median", tp},
        {"decode_s_median", td},
        {"decode_steps", steps},
        {"decode_step_ms", step_s * 1e3},
        {"decode_tokens_per_s", steps ? double(batch) * double(steps) / td : 0.0},
        {"weight_bytes_per_step", weight_bytes},
        {"kv_bytes_per_step_mean", kv_bytes},
        {"logits_bytes_per_step", double(batch) * V * 4},
        {"bandwidth_bytes_per_s", bandwidth_bytes_per_s},
        {"bandwidth_fraction", bw_fraction},
        {"graphs_captured", last.graphs_captured},
        {"graph_launches", last.graph_launches},
        {"eager_steps", last.eager_steps},
        {"graphs_failed", last.graphs_failed},
        {"kv_pool_bytes", last.kv_pool_bytes},
        {"params", layout.total},
        {"repeats", repeats},
    };
    std::printf("  rusca   : %10.0f tokens/s  (median %.3f s: prefill + first token %.1f ms, %ld decode steps of "
                "%.3f ms)\n",
                tokens_per_s, t, tp * 1e3, steps, step_s * 1e3);
    std::printf("  memory  : %.2f GB weights + %.2f GB KV per step = %.1f%% of %.2f TB/s\n", weight_bytes / 1e9,
                kv_bytes / 1e9, 100 * bw_fraction, bandwidth_bytes_per_s / 1e12);
    std::fflush(stdout);
    engine.reset();
    nlohmann::json torch = {{"error", "skipped (run_pytorch = false)"}};
    if (run_pytorch)
        torch = run_python_json(python, "tools/bench_generate_torch.py",
                           "--config " + config_path + " --batch " + std::to_string(batch) + " --prompt-len " +
                               std::to_string(prompt_len) + " --new-tokens " + std::to_string(new_tokens) +
                               " --repeats " + std::to_string(std::min(repeats, 3)));
    nlohmann::json result = {{"benchmark", "generate"}, {"config", config_path}, {"batch", batch},
                             {"prompt_len", prompt_len}, {"new_tokens", new_tokens}, {"gpu", gpu_name()},
                             {"rusca", ours}, {"pytorch", torch}};
    if (torch.contains("tokens_per_s_median")) {
        const double ratio = tokens_per_s / torch["tokens_per_s_median"].get<double>();
        result["ratio_rusca_over_pytorch"] = ratio;
        std::printf("  pytorch : %10.0f tokens/s  (HF generate, torch %s)\n",
                    torch["tokens_per_s_median"].get<double>(), torch.value("torch", std::string("?")).c_str());
        std::printf("  ratio   : %10.2fx (rusca / pytorch; SPEC target 20x)\n", ratio);
    } else {
        std::printf("  pytorch : unavailable (%s)\n", torch.value("error", std::string("?")).c_str());
    }
    return result;
}

nlohmann::json bench_judge(const std::string& config_path, int responses, int criteria, int conversation_len,
                           int response_len, int criterion_len, int repeats, const std::string& python,
                           bool run_pytorch, int torch_batch) {
    require_gpu("bench judge");
    check(responses >= 1 && criteria >= 1 && conversation_len >= 0 && response_len >= 1 && criterion_len >= 1 &&
              repeats >= 1 && torch_batch >= 1,
          "bench judge: sizes and repeats must be positive");
    const ModelConfig c = load_config(config_path);
    const int prefix_len = conversation_len + response_len;
    std::printf("bench judge: %s, %d layers, hidden %d | %d responses x %d criteria, prefix %d (+%d) tokens, "
                "criterion %d tokens | %s\n",
                c.model_type.c_str(), c.num_layers, c.hidden_size, responses, criteria, conversation_len,
                response_len, criterion_len, gpu_name().c_str());
    std::fflush(stdout);
    auto engine = std::make_unique<CudaEngine>(c, random_params(c).data());  // freed before PyTorch runs
    Rng rng(43);
    std::vector<JudgeTokens> items(responses);
    for (JudgeTokens& it : items) {
        it.prefix = random_tokens(rng, prefix_len, c.vocab_size);
        for (int k = 0; k < criteria; k++) it.suffixes.push_back(random_tokens(rng, criterion_len, c.vocab_size));
    }
    const int yes_id = c.vocab_size / 3, no_id = c.vocab_size / 2;  // any two distinct tokens
    std::vector<double> times;
    double met = 0;
    for (int rep = 0; rep <= repeats; rep++) {  // rep 0: warm-up
        const auto t0 = std::chrono::steady_clock::now();
        auto verdicts = engine->judge(items, yes_id, no_id);
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        met = 0;
        for (auto& v : verdicts)
            for (const Verdict& x : v) met += x.met;
        if (rep > 0) times.push_back(dt);
    }
    const double t = median(times), n = double(responses) * criteria;
    const double ours_tokens = double(responses) * prefix_len + n * criterion_len;
    const double full_tokens = n * (prefix_len + criterion_len);
    nlohmann::json ours = {{"criteria_per_s_median", n / t},
                           {"seconds_median", t},
                           {"tokens_fed", ours_tokens},
                           {"full_prompt_tokens", full_tokens},
                           {"full_prompt_tokens_per_s", full_tokens / t},
                           {"fraction_met", met / n},
                           {"kv_pool_bytes", engine->stats().kv_pool_bytes},
                           {"repeats", repeats}};
    std::printf("  rusca   : %10.0f criteria/s  (median %.3f s; %.0f tokens fed instead of %.0f)\n", n / t, t,
                ours_tokens, full_tokens);
    std::fflush(stdout);
    engine.reset();
    nlohmann::json torch = {{"error", "skipped (run_pytorch = false)"}};
    if (run_pytorch)
        torch = run_python_json(python, "tools/bench_judge_torch.py",
                           "--config " + config_path + " --responses " + std::to_string(responses) + " --criteria " +
                               std::to_string(criteria) + " --conversation-len " + std::to_string(conversation_len) +
                               " --response-len " + std::to_string(response_len) + " --criterion-len " +
                               std::to_string(criterion_len) + " --batch " + std::to_string(torch_batch) +
                               " --repeats " + std::to_string(std::min(repeats, 3)));
    nlohmann::json result = {{"benchmark", "judge"}, {"config", config_path}, {"responses", responses},
                             {"criteria", criteria}, {"conversation_len", conversation_len},
                             {"response_len", response_len}, {"criterion_len", criterion_len},
                             {"gpu", gpu_name()}, {"rusca", ours}, {"pytorch", torch}};
    if (torch.contains("criteria_per_s_median")) {
        const double ratio = (n / t) / torch["criteria_per_s_median"].get<double>();
        result["ratio_rusca_over_pytorch"] = ratio;
        std::printf("  pytorch : %10.0f criteria/s  (HF prefill of each full prompt, batch %d, torch %s)\n",
                    torch["criteria_per_s_median"].get<double>(), torch_batch,
                    torch.value("torch", std::string("?")).c_str());
        std::printf("  ratio   : %10.2fx (rusca / pytorch; SPEC target 5x)\n", ratio);
    } else {
        std::printf("  pytorch : unavailable (%s)\n", torch.value("error", std::string("?")).c_str());
    }
    return result;
}

#else  // CPU-only build: the benchmarks exist, and say why they cannot run.

nlohmann::json bench_generate(const std::string&, int, int, int, int, const std::string&, bool, double) {
    throw Error("bench generate needs the CUDA backend; this rusca was built without CUDA (nvcc not found)");
}

nlohmann::json bench_judge(const std::string&, int, int, int, int, int, int, const std::string&, bool, int) {
    throw Error("bench judge needs the CUDA backend; this rusca was built without CUDA (nvcc not found)");
}

#endif  // RUSCA_CUDA

}  // namespace rusca
