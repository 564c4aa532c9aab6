// cmd_rl.cpp: `rusca rl`, the RuscaRL trainer from the command line. Defaults are the paper's.
#include <CLI/CLI.hpp>

#include "cli.h"
#include "error.h"
#include "judge_http.h"
#include "recipe.h"
#include "rl.h"

namespace rusca {

namespace {

// --recipe FILE: each setting of the file becomes the value of the flag of the same name, unless
// that flag was given on the command line (explicit flags win). The flag's own checks apply.
void apply_recipe(CLI::App* cmd, const std::string& path) {
    for (const RecipeSetting& s : read_recipe(path)) {
        const std::string where = path + ":" + std::to_string(s.line) + ": ";
        CLI::Option* opt = nullptr;
        try {
            opt = cmd->get_option("--" + s.key);
        } catch (const CLI::OptionNotFound&) {
            throw Error(where + "\"" + s.key + "\" is no flag of rusca rl (rusca rl --help lists them)");
        }
        check(s.key != "recipe", where + "a recipe cannot load another recipe");
        if (opt->count() > 0) continue;  // given on the command line
        opt->add_result(s.value);
        try {
            opt->run_callback();
        } catch (const CLI::Error& e) {
            throw Error(where + e.what());
        }
    }
}

}  // namespace

void add_rl_command(CLI::App& app) {
    auto o = std::make_shared<RlOptions>();
    auto decay = std::make_shared<std::string>("sigmoid");
    auto agg = std::make_shared<std::string>("token-mean");
    auto adv = std::make_shared<std::string>("group");
    CLI::App* cmd = app.add_subcommand("rl", "RuscaRL: GRPO with rubric scaffolds that fade out, judged in process or by a server");
    auto req_dir = [&](const char* flag, std::string& v, const char* help) {
        cmd->add_option(flag, v, help)->required()->check(CLI::ExistingDirectory);
    };
    req_dir("--policy", o->policy, "Policy model directory (config.json + safetensors)");
    cmd->add_option("--judge", o->judge, "Judge model directory (in process; or --judge-url)")->check(CLI::ExistingDirectory);
    add_judge_url_options(*cmd, o->external_judge);
    cmd->add_option("--tokenizer", o->tokenizer, "The policy's tokenizer: tokenizer.json, sentencepiece .model or a folder (default: the --policy folder's own)")->check(CLI::ExistingPath);
    cmd->add_option("--judge-tokenizer", o->judge_tokenizer, "The judge's tokenizer (default: the --judge folder's own, else the policy's)")->check(CLI::ExistingPath);
    cmd->add_option("--data", o->data, "Training rubric JSONL (HealthBench format)")->required()->check(CLI::ExistingFile);
    cmd->add_option("--eval-data", o->eval_data, "Held-out rubric JSONL, scored without scaffold")->check(CLI::ExistingFile);
    cmd->add_option("--eval-every", o->eval_every, "Evaluate every N steps (and at the end)")->check(CLI::NonNegativeNumber);
    cmd->add_option("--eval-limit", o->eval_limit, "Evaluate on the first N held-out prompts (0: all)")->check(CLI::NonNegativeNumber);
    cmd->add_option("--out", o->out, "Output directory: checkpoints, metrics.jsonl")->capture_default_str();
    cmd->add_option("--steps", o->steps, "RL steps")->capture_default_str()->check(CLI::Range(1, 1 << 24));
    cmd->add_option("--prompts-per-step", o->prompts_per_step, "Prompts drawn per step")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--group", o->group, "Rollouts per prompt (G)")->capture_default_str()->check(CLI::Range(1, 4096));
    cmd->add_option("--updates-per-step", o->updates_per_step, "Minibatches (optimizer steps) per RL step")
        ->capture_default_str()
        ->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--lr", o->lr, "Learning rate (constant)")->capture_default_str()->check(CLI::Range(0.0, 10.0));
    cmd->add_option("--weight-decay", o->adam.weight_decay, "AdamW weight decay")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--grad-clip", o->adam.grad_clip, "Max global gradient norm (0: off)")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--eps-low", o->loss.eps_low, "PPO clip below 1")->capture_default_str()->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--eps-high", o->loss.eps_high, "PPO clip above 1")->capture_default_str()->check(CLI::Range(0.0, 10.0));
    cmd->add_option("--dual-clip", o->loss.dual_clip_c, "Dual-clip constant c for A < 0 (<= 1: off)")->capture_default_str();
    cmd->add_option("--beta", o->loss.beta, "k3 KL coefficient (0: no reference model)")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--loss-agg", *agg, "token-mean | seq-mean-token-mean | seq-mean-token-sum | seq-mean-token-sum-norm")
        ->capture_default_str()
        ->check(CLI::IsMember({"token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"}));
    cmd->add_option("--adv-norm", *adv, "group (std) | none (Dr. GRPO) | batch (batch std)")
        ->capture_default_str()
        ->check(CLI::IsMember({"group", "none", "batch"}));
    cmd->add_option("--temperature", o->sampling.temperature, "Sampling temperature (also the loss's)")->capture_default_str()->check(CLI::Range(0.0, 100.0));
    cmd->add_option("--top-p", o->sampling.top_p, "Nucleus mass (1: off)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--top-k", o->sampling.top_k, "0: off")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--min-p", o->sampling.min_p, "0: off")->capture_default_str()->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--max-new-tokens", o->max_new_tokens, "Response length limit")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--scaffold", *decay, "Scaffold step decay: sigmoid | constant | linear | power | none (plain GRPO)")
        ->capture_default_str()
        ->check(CLI::IsMember({"sigmoid", "constant", "linear", "power", "none"}));
    cmd->add_option("--alpha", o->schedule.alpha, "Sigmoid steepness")->capture_default_str();
    cmd->add_option("--t0", o->schedule.t0, "Sigmoid midpoint (fraction of training)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--power", o->schedule.power, "Exponent of the power decay")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--binary-n", o->schedule.binary_n, "Binary group rule: first N rollouts scaffolded, rest none (-1: off)")
        ->capture_default_str();
    cmd->add_option("--scaffold-template", o->scaffold_template, "Scaffold wording")->capture_default_str()->check(CLI::ExistingFile);
    cmd->add_option("--judge-template", o->judge_template, "Judge prompt")->capture_default_str()->check(CLI::ExistingFile);
    auto reward = std::make_shared<std::string>("judge");
    auto recipe = std::make_shared<std::string>();
    cmd->add_option("--recipe", *recipe, "Settings file (recipes/*.toml: `flag-name = value` lines); flags given here win")
        ->check(CLI::ExistingFile);
    cmd->add_option("--dump-every", o->dump_every, "Every N steps, every rollout to OUT/rollouts/step_N.jsonl (0: never)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--reward", *reward, "judge (the LLM judge) | checker (the programmatic checker of criteria with a \"check\")")
        ->capture_default_str()
        ->check(CLI::IsMember({"judge", "checker"}));
    cmd->add_option("--yes", o->yes, "Judge answer word for met")->capture_default_str();
    cmd->add_option("--no", o->no, "Judge answer word for not met")->capture_default_str();
    cmd->add_option("--seed", o->seed, "Seed: data order, scaffolds, sampling")->capture_default_str();
    cmd->add_option("--save-every", o->save_every, "Checkpoint every N steps (always at the end and on SIGINT/SIGTERM)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_flag("--resume", o->resume, "Continue from the latest checkpoint in --out");
    cmd->add_option("--stop-at", o->stop_at, "Save and stop after this step; --resume continues")->check(CLI::NonNegativeNumber);
    cmd->add_flag("--schedule-only", o->schedule_only, "Log the scaffold plan (lambda, criteria shown) of every step; no training");
    cmd->add_option("--micro-batch", o->micro_batch, "Rollouts per forward/backward; gradients accumulate over a minibatch (0: all of it)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--device", o->device, "cpu, cuda, or auto (CUDA when a GPU is present)")->capture_default_str();
    cmd->add_option("--memory-budget-gb", o->memory_budget_gb, "CUDA: device memory the run may plan for (0: all that is free)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--threads", o->threads, "OpenMP threads (0: all cores)")->check(CLI::NonNegativeNumber);
    cmd->add_flag("--quiet", o->quiet, "No progress lines");
    cmd->add_option("--zero", o->zero, "Data parallel (mpirun -np N): 1 = ZeRO-1, AdamW moments (on CUDA also the fp32 master weights) sharded over the ranks")
        ->capture_default_str()
        ->check(CLI::Range(0, 1));
    cmd->callback([cmd, o, decay, agg, adv, reward, recipe] {
        if (!recipe->empty()) apply_recipe(cmd, *recipe);
        o->external_judge.quiet = o->quiet;
        o->checker_reward = *reward == "checker";
        o->scaffold = *decay != "none";
        if (o->scaffold) o->schedule.decay = parse_step_decay(*decay);
        o->loss.agg = cpu::parse_grpo_agg(*agg);
        o->adv_norm = parse_adv_norm(*adv);
        RlResult r = run_rl(*o);
        if (r.interrupted) std::exit(130);
    });
}

}  // namespace rusca
