// cmd_eval.cpp: `rusca eval`, the held-out rubric score of a policy, without scaffold.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli.h"
#include "eval.h"
#include "model.h"

namespace rusca {

void add_eval_command(CLI::App& app) {
    struct Args {
        std::string policy, tokenizer, judge, judge_tokenizer, data, templ = "data/judge_template.txt";
        std::string yes = " yes", no = " no", device = "auto";
        int limit = 0;
        uint64_t seed = 1;
        GenerateOptions gen;
    };
    auto a = std::make_shared<Args>();
    a->gen.max_new_tokens = 4096;
    CLI::App* cmd = app.add_subcommand("eval", "Held-out rubric score: mean reward clipped to [0,1] +- bootstrap std");
    cmd->add_option("--policy", a->policy, "Policy model directory")->required()->check(CLI::ExistingDirectory);
    cmd->add_option("--tokenizer", a->tokenizer, "The policy's tokenizer (default: the --policy folder's own)")->check(CLI::ExistingPath);
    cmd->add_option("--judge", a->judge, "Judge model directory")->required()->check(CLI::ExistingDirectory);
    cmd->add_option("--judge-tokenizer", a->judge_tokenizer, "The judge's tokenizer (default: the --judge folder's own, else the policy's)")->check(CLI::ExistingPath);
    cmd->add_option("--data", a->data, "Rubric JSONL")->required()->check(CLI::ExistingFile);
    cmd->add_option("--limit", a->limit, "First N examples only (0: all)")->check(CLI::NonNegativeNumber);
    cmd->add_option("--judge-template", a->templ, "Judge prompt")->capture_default_str()->check(CLI::ExistingFile);
    cmd->add_option("--temperature", a->gen.sampling.temperature, "0: greedy")->capture_default_str()->check(CLI::Range(0.0, 100.0));
    cmd->add_option("--top-p", a->gen.sampling.top_p, "Nucleus mass")->capture_default_str()->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--max-new-tokens", a->gen.max_new_tokens, "Response length limit")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--seed", a->seed, "Sampling and bootstrap seed")->capture_default_str();
    cmd->add_option("--device", a->device, "cpu, cuda, or auto (CUDA when a GPU is present)")->capture_default_str();
    cmd->callback([a] {
        std::vector<RubricExample> data = load_rubric_jsonl(a->data);
        if (a->limit > 0 && size_t(a->limit) < data.size()) data.resize(a->limit);
        std::unique_ptr<Model> policy = load_cpu_model(a->policy), judge_model = load_cpu_model(a->judge);
        const std::string tok_path = tokenizer_path(a->tokenizer, a->policy);
        Tokenizer tok(tok_path), judge_tok(judge_tokenizer_path(a->judge_tokenizer, a->judge, tok_path));
        CpuInference judge_inf(judge_model->config, judge_model->params());
        Judge judge(judge_inf, judge_tok, JudgeTemplate::load(a->templ), a->yes, a->no);
        const std::string device = resolve_device(a->device);
        std::unique_ptr<InferenceEngine> policy_engine = make_engine(device, *policy),
                                         judge_engine = make_engine(device, *judge_model);
        EvalResult r = evaluate(*policy_engine, tok, *judge_engine, judge, data, a->gen, a->seed);
        std::printf("eval: %zu prompts, score %.4f +- %.4f (mean reward %.4f), %ld tokens generated, %.1f s\n", data.size(),
                    r.score, r.score_std, r.mean_reward, r.tokens, r.seconds);
    });
}

}  // namespace rusca
