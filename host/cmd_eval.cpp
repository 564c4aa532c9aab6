// cmd_eval.cpp: `rusca eval`, the held-out rubric score of a policy: without scaffold by default,
// with every criterion shown (--full-scaffold) to measure what the scaffold gives, and Best-of-N
// (--best-of-n) to measure what the policy can reach rather than what it usually writes.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "error.h"
#include "eval.h"
#include "eval_report.h"
#include "fileio.h"
#include "judge_http.h"
#include "model.h"

namespace rusca {

namespace {

nlohmann::json score_json(const EvalScore& s) {
    return {{"score", s.score}, {"score_std", s.score_std}, {"mean_reward", s.mean_reward}};
}

// One JSON object with everything printed, for scripts (tools/experiment.py).
nlohmann::json eval_json(const EvalResult& r, size_t prompts, int best_of_n, bool full_scaffold) {
    nlohmann::json j = {{"prompts", prompts}, {"best_of_n", best_of_n}, {"full_scaffold", full_scaffold},
                        {"judge", score_json(r.judge)}, {"tokens", r.tokens}, {"seconds", r.seconds},
                        {"judge_failed", r.judge_failed}, {"judge_unscored", r.judge_unscored}};
    if (r.has_checker) {
        j["checker"] = score_json(r.checker);
        j["judge_agreement"] = {{"positive", r.n_pos ? double(r.agree_pos) / r.n_pos : 1.0}, {"n_positive", r.n_pos},
                                {"negative", r.n_neg ? double(r.agree_neg) / r.n_neg : 1.0}, {"n_negative", r.n_neg}};
    }
    return j;
}

}  // namespace

void add_eval_command(CLI::App& app) {
    struct Args {
        std::string policy, tokenizer, judge, judge_tokenizer, data, templ = "data/judge_template.txt";
        std::string scaffold_template = "data/scaffold_template.txt", json_out, examples_out;
        std::string yes = " yes", no = " no", device = "auto";
        int limit = 0, best_of_n = 1;
        bool full_scaffold = false;
        uint64_t seed = 1;
        GenerateOptions gen;
        HttpJudgeOptions external_judge;
    };
    auto a = std::make_shared<Args>();
    a->gen.max_new_tokens = 4096;
    CLI::App* cmd = app.add_subcommand("eval", "Held-out rubric score: mean reward clipped to [0,1] +- bootstrap std");
    cmd->add_option("--policy", a->policy, "Policy model directory")->required()->check(CLI::ExistingDirectory);
    cmd->add_option("--tokenizer", a->tokenizer, "The policy's tokenizer (default: the --policy folder's own)")->check(CLI::ExistingPath);
    cmd->add_option("--judge", a->judge, "Judge model directory (in process; or --judge-url)")->check(CLI::ExistingDirectory);
    add_judge_url_options(*cmd, a->external_judge);
    cmd->add_option("--judge-tokenizer", a->judge_tokenizer, "The judge's tokenizer (default: the --judge folder's own, else the policy's)")->check(CLI::ExistingPath);
    cmd->add_option("--data", a->data, "Rubric JSONL")->required()->check(CLI::ExistingFile);
    cmd->add_option("--limit", a->limit, "First N examples only (0: all)")->check(CLI::NonNegativeNumber);
    cmd->add_option("--judge-template", a->templ, "Judge prompt")->capture_default_str()->check(CLI::ExistingFile);
    cmd->add_option("--yes", a->yes, "Judge answer word for met")->capture_default_str();
    cmd->add_option("--no", a->no, "Judge answer word for not met")->capture_default_str();
    cmd->add_option("--best-of-n", a->best_of_n, "Completions per prompt; a prompt scores its best (per grader)")
        ->capture_default_str()
        ->check(CLI::Range(1, 4096));
    cmd->add_flag("--full-scaffold", a->full_scaffold, "Show every criterion as a scaffold (what the scaffold gives)");
    cmd->add_option("--scaffold-template", a->scaffold_template, "Scaffold wording for --full-scaffold")
        ->capture_default_str()
        ->check(CLI::ExistingFile);
    cmd->add_option("--temperature", a->gen.sampling.temperature, "0: greedy")->capture_default_str()->check(CLI::Range(0.0, 100.0));
    cmd->add_option("--top-p", a->gen.sampling.top_p, "Nucleus mass")->capture_default_str()->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--top-k", a->gen.sampling.top_k, "0: off")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--min-p", a->gen.sampling.min_p, "0: off")->capture_default_str()->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--max-new-tokens", a->gen.max_new_tokens, "Response length limit")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--seed", a->seed, "Sampling and bootstrap seed")->capture_default_str();
    cmd->add_option("--json", a->json_out, "Also write the result as one JSON object to this file");
    cmd->add_option("--examples-out", a->examples_out,
                    "Also write one JSON line per prompt: every completion, its verdicts per criterion, its reward");
    cmd->add_option("--device", a->device, "cpu, cuda, or auto (CUDA when a GPU is present)")->capture_default_str();
    cmd->callback([a] {
        std::vector<RubricExample> data = load_rubric_jsonl(a->data);
        if (a->limit > 0 && size_t(a->limit) < data.size()) data.resize(a->limit);
        const bool external = a->external_judge.enabled();
        check(external != !a->judge.empty(), "eval needs one judge: --judge DIR (in process) or --judge-url URL (a server)");
        std::unique_ptr<Model> policy = load_cpu_model(a->policy);
        const std::string tok_path = tokenizer_path(a->tokenizer, a->policy);
        Tokenizer tok(tok_path);
        const std::string device = resolve_device(a->device);
        std::unique_ptr<InferenceEngine> policy_engine = make_engine(device, *policy);
        // The in-process judge's parts, or none of them with a server.
        std::unique_ptr<Model> judge_model;
        std::unique_ptr<Tokenizer> judge_tok;
        std::unique_ptr<CpuInference> judge_inf;
        std::unique_ptr<Judge> judge;
        std::unique_ptr<InferenceEngine> judge_engine;
        std::unique_ptr<JudgeBackend> backend;
        if (external) {
            backend = std::make_unique<HttpJudge>(a->external_judge);
        } else {
            judge_model = load_cpu_model(a->judge);
            judge_tok = std::make_unique<Tokenizer>(judge_tokenizer_path(a->judge_tokenizer, a->judge, tok_path));
            judge_inf = std::make_unique<CpuInference>(judge_model->config, judge_model->params());
            judge = std::make_unique<Judge>(*judge_inf, *judge_tok, JudgeTemplate::load(a->templ), a->yes, a->no);
            judge_engine = make_engine(device, *judge_model);
            backend = std::make_unique<EngineJudge>(*judge_engine, *judge);
        }
        ScaffoldTemplate scaffold;
        EvalOptions eo;
        eo.gen = a->gen, eo.seed = a->seed, eo.best_of_n = a->best_of_n;
        if (a->full_scaffold) scaffold = ScaffoldTemplate::load(a->scaffold_template), eo.scaffold = &scaffold;
        EvalResult r = evaluate(*policy_engine, tok, *backend, data, eo);
        std::printf("eval: %zu prompts x %d completion%s%s, score %.4f +- %.4f by the judge (mean reward %.4f)", data.size(),
                    a->best_of_n, a->best_of_n > 1 ? "s (best of N)" : "", a->full_scaffold ? " with full scaffold" : "",
                    r.judge.score, r.judge.score_std, r.judge.mean_reward);
        if (r.has_checker)
            std::printf(", %.4f +- %.4f by the checker; judge agrees with the checker on %.1f%% of %ld positive and "
                        "%.1f%% of %ld negative criteria",
                        r.checker.score, r.checker.score_std, 100.0 * r.agree_pos / std::max(r.n_pos, 1L), r.n_pos,
                        100.0 * r.agree_neg / std::max(r.n_neg, 1L), r.n_neg);
        if (r.judge_failed > 0)
            std::printf("; %ld criteria without a verdict from the judge (masked), %ld prompts unscored", r.judge_failed,
                        r.judge_unscored);
        std::printf("; %ld tokens generated, %.1f s\n", r.tokens, r.seconds);
        const nlohmann::json by_tag = tag_scores(data, r, a->seed);  // HealthBench's axis / theme breakdown
        for (const auto& [tag, t] : by_tag.items())
            std::printf("  %-40s %.4f +- %.4f (%ld prompts)\n", tag.c_str(), t["score"].get<double>(),
                        t["score_std"].get<double>(), t["n"].get<long>());
        if (!a->json_out.empty()) {
            nlohmann::json j = eval_json(r, data.size(), a->best_of_n, a->full_scaffold);
            j["by_tag"] = by_tag;
            write_file_atomic(a->json_out, j.dump(2) + "\n");
        }
        if (!a->examples_out.empty()) write_file_atomic(a->examples_out, eval_examples_jsonl(data, r));
    });
}

}  // namespace rusca
