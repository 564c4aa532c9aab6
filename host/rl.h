// rl.h: `rusca rl`, Rubric-Scaffolded RL (RuscaRL): GRPO whose rollouts see part of the rubric as a
// scaffold that fades out over training, rewarded by an in-process yes/no judge. Defaults are the
// paper's (SPEC.md "The algorithm"); the loop itself is run_rl() in rl.cpp.
#pragma once
#include <cstdint>
#include <string>

#include "advantage.h"
#include "cpu/grpo_loss.h"
#include "cpu/sampler.h"
#include "judge_http.h"
#include "optimizer.h"
#include "scaffold.h"

namespace rusca {

struct RlOptions {
    // models and data
    std::string policy, tokenizer;              // policy model directory and its tokenizer
    std::string judge, judge_tokenizer;         // judge model directory (tokenizer: policy's if empty)
    HttpJudgeOptions external_judge;            // --judge-url: judge with a server instead of --judge
    std::string data;                           // rubric JSONL (HealthBench format)
    std::string eval_data;                      // held-out rubric JSONL ("" = no eval)
    std::string out = "runs/rl";
    std::string scaffold_template = "data/scaffold_template.txt";
    std::string judge_template = "data/judge_template.txt";
    std::string yes = " yes", no = " no";       // the judge's answer words
    bool checker_reward = false;                // reward from the programmatic checker, not the judge (ablation)
    // the step
    int steps = 350;
    int prompts_per_step = 64, group = 8;       // 64 prompts x 8 rollouts
    int updates_per_step = 2;                   // minibatches (optimizer steps) per RL step, 1 epoch
    int micro_batch = 0;                        // rollouts per forward/backward, gradients accumulated (0: a whole minibatch)
    float lr = 1e-6f;                           // constant
    AdamWConfig adam;                           // wd 0.01, grad clip 1.0
    cpu::GrpoLossConfig loss;                   // eps 0.2 / 0.2, dual clip 3, beta 0.001, token-mean
    AdvNorm adv_norm = AdvNorm::GroupStd;
    // rollouts
    cpu::SamplingParams sampling;               // temperature 1, top-p 1, top-k off
    int max_new_tokens = 4096;
    bool scaffold = true;                       // false: plain rubric GRPO (no rubric in any prompt)
    ScaffoldSchedule schedule;                  // sigmoid, alpha 125, t0 0.2
    // operations
    uint64_t seed = 1;
    int save_every = 0, eval_every = 0, eval_limit = 0;
    int dump_every = 0;                         // every N steps, OUT/rollouts/step_<N>.jsonl (host/rollout_dump.h)
    bool resume = false;
    int stop_at = 0;                            // save and stop after this step (time-limited jobs)
    bool schedule_only = false;                 // log the scaffold plan of every step, train nothing
    bool quiet = false;
    int threads = 0;
    std::string device = "auto";                // cpu | cuda | auto (CUDA when a GPU is present)
    double memory_budget_gb = 0;                // CUDA: plan against this much, not the card's free memory (0)
    int zero = 0;                               // data parallel: 1 = ZeRO-1 (AdamW moments sharded over the ranks)
};

struct RlResult {
    int last_step = 0;
    std::string last_checkpoint;
    bool interrupted = false;
};

RlResult run_rl(const RlOptions& opt);

}  // namespace rusca
