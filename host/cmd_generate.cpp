// cmd_generate.cpp: `rusca generate`, JSONL prompts in, JSONL completions out.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "chat.h"
#include "cli.h"
#include "error.h"
#include "engine.h"
#include "model.h"
#include "rubric.h"

namespace rusca {

namespace {

struct GenerateArgs {
    std::string model, tokenizer, prompts, out, device = "auto";
    int n = 1, limit = 0;
    GenerateOptions gen;
};

void run_generate(const GenerateArgs& a) {
    std::unique_ptr<Model> model = load_cpu_model(a.model);
    Tokenizer tok(tokenizer_path(a.tokenizer, a.model));
    std::vector<RubricExample> prompts = load_rubric_jsonl(a.prompts, false);
    if (a.limit > 0 && size_t(a.limit) < prompts.size()) prompts.resize(a.limit);
    GenerateOptions opt = a.gen;
    opt.stop_tokens = chat_stop_tokens(tok);
    std::vector<PromptGroup> groups;
    for (const RubricExample& ex : prompts)
        groups.push_back({chat_prompt_tokens(tok, ex.prompt), std::vector<std::vector<int>>(a.n, chat_prefix_tokens(tok, "", ex.prompt))});
    const std::string device = resolve_device(a.device);
    auto t0 = std::chrono::steady_clock::now();
    auto completions = make_engine(device, *model)->generate(groups, opt);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    std::ofstream out(a.out);
    check(out.good(), a.out + ": cannot open for writing");
    long tokens = 0;
    for (size_t p = 0; p < prompts.size(); p++)
        for (int i = 0; i < a.n; i++) {
            const Completion& c = completions[p][i];
            nlohmann::json j = {{"prompt_id", prompts[p].prompt_id}, {"sample", i},
                                {"completion", completion_text(tok, c)}, {"tokens", c.tokens},
                                {"logprobs", c.logprobs}, {"finish", c.stopped ? "stop" : "length"}};
            out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
            tokens += long(c.tokens.size());
        }
    std::fprintf(stderr, "rusca generate (%s): %zu prompts x %d samples, %ld tokens in %.2f s (%.0f tokens/s) -> %s\n",
                 device.c_str(), prompts.size(), a.n, tokens, secs, tokens / secs, a.out.c_str());
}

}  // namespace

void add_generate_command(CLI::App& app) {
    auto a = std::make_shared<GenerateArgs>();
    CLI::App* cmd = app.add_subcommand("generate", "Sample completions for JSONL prompts (CPU backend)");
    cmd->add_option("--model", a->model, "Model directory (config.json + safetensors)")->required()->check(CLI::ExistingDirectory);
    cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json, sentencepiece .model or a folder (default: the --model folder's own)")->check(CLI::ExistingPath);
    cmd->add_option("--prompts", a->prompts, "JSONL: {\"prompt\": str or [{role, content}], \"prompt_id\"?} per line")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_option("--out", a->out, "Output JSONL: one line per completion")->required();
    cmd->add_option("--n", a->n, "Completions per prompt (they share one prefill)")->capture_default_str()->check(CLI::Range(1, 4096));
    cmd->add_option("--limit", a->limit, "Use only the first N prompts (0: all)")->check(CLI::NonNegativeNumber);
    cmd->add_option("--max-new-tokens", a->gen.max_new_tokens, "Tokens per completion at most")
        ->capture_default_str()
        ->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--temperature", a->gen.sampling.temperature, "0: greedy")->capture_default_str()->check(CLI::Range(0.0, 100.0));
    cmd->add_option("--min-p", a->gen.sampling.min_p, "Keep tokens with p >= min_p * p_max (0: off)")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--top-k", a->gen.sampling.top_k, "Keep the k most likely (0: off)")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--top-p", a->gen.sampling.top_p, "Nucleus mass (1: off)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--seed", a->gen.seed, "Sampling seed (same seed, same tokens)")->capture_default_str();
    cmd->add_option("--device", a->device, "cpu, cuda, or auto (CUDA when a GPU is present)")
        ->capture_default_str()
        ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
    cmd->callback([a] { run_generate(*a); });
}

}  // namespace rusca
