// cli.h: each subcommand lives in its own host/cmd_<name>.cpp and registers itself on the app.
// main.cpp only wires them together; CLI11 (a large header) is included by those files alone.
#pragma once

namespace CLI { class App; }

namespace rusca {

void add_info_command(CLI::App& app);       // cmd_info.cpp: GPUs and their memory
void add_sft_command(CLI::App& app);        // cmd_sft.cpp: supervised fine-tuning
void add_tokenizer_command(CLI::App& app);  // cmd_tokenizer.cpp: train / encode / decode
void add_bench_command(CLI::App& app);      // cmd_bench.cpp: benchmarks with PyTorch next to us
void add_forward_command(CLI::App& app);    // cmd_forward.cpp: logits of a checkpoint for given tokens
void add_generate_command(CLI::App& app);   // cmd_generate.cpp: JSONL prompts -> sampled completions
void add_judge_command(CLI::App& app);      // cmd_judge.cpp: responses x rubrics -> verdicts, rewards
void add_rl_command(CLI::App& app);         // cmd_rl.cpp: the RuscaRL trainer
void add_eval_command(CLI::App& app);       // cmd_eval.cpp: held-out rubric score without scaffold
void add_export_command(CLI::App& app);     // cmd_export.cpp: a checkpoint's model in f32 / bf16 / f16

}  // namespace rusca
