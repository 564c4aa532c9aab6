// cmd_sft.cpp: `rusca sft`, supervised fine-tuning from the command line.
#include <CLI/CLI.hpp>

#include "cli.h"
#include "sft.h"

namespace rusca {

void add_sft_command(CLI::App& app) {
    auto opt = std::make_shared<SftOptions>();
    CLI::App* cmd = app.add_subcommand("sft", "Supervised fine-tuning: next-token prediction on text or JSONL");
    cmd->add_option("--model", opt->model, "Model directory to start from (config.json + model.safetensors)")
        ->check(CLI::ExistingDirectory);
    cmd->add_option("--init-config", opt->init_config, "Start from random weights with this config.json instead")
        ->check(CLI::ExistingFile);
    cmd->add_option("--data", opt->data, ".txt (all tokens train) or .jsonl ({prompt,response} or {text})")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_option("--tokenizer", opt->tokenizer, "tokenizer.json, sentencepiece .model or a folder (default: the --model folder's own)")->check(CLI::ExistingPath);
    cmd->add_option("--out", opt->out, "Output directory: checkpoints, metrics.jsonl")->capture_default_str();
    cmd->add_option("--batch", opt->batch, "Sequences per step")->capture_default_str()->check(CLI::Range(1, 1 << 16));
    cmd->add_option("--seq", opt->seq, "Tokens per sequence")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--steps", opt->steps, "Total optimizer steps")->capture_default_str()->check(CLI::Range(0, 1 << 30));
    cmd->add_option("--lr", opt->lr, "Peak learning rate")->capture_default_str()->check(CLI::Range(0.0, 10.0));
    cmd->add_option("--min-lr-ratio", opt->min_lr_ratio, "Cosine floor as a fraction of --lr")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--warmup", opt->warmup, "Linear warm-up steps")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--schedule", opt->schedule, "Learning-rate schedule after warm-up")
        ->capture_default_str()
        ->check(CLI::IsMember({"cosine", "constant"}));
    cmd->add_option("--weight-decay", opt->adam.weight_decay, "AdamW weight decay (matrices only)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--beta1", opt->adam.beta1, "AdamW beta1")->capture_default_str()->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--beta2", opt->adam.beta2, "AdamW beta2")->capture_default_str()->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--grad-clip", opt->adam.grad_clip, "Max global gradient norm (0: off)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--seed", opt->seed, "Seed for initialization and data order")->capture_default_str();
    cmd->add_option("--save-every", opt->save_every, "Checkpoint every N steps (0: at the end only)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--stop-at", opt->stop_at, "Save and stop after this step; --resume continues (time-limited jobs)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_flag("--resume", opt->resume, "Continue from the latest checkpoint in --out");
    cmd->add_option("--device", opt->device, "cpu, cuda, or auto (CUDA when a GPU is present)")
        ->capture_default_str()
        ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
    cmd->add_option("--threads", opt->threads, "OpenMP threads (0: all cores)")->check(CLI::NonNegativeNumber);
    cmd->add_flag("--quiet", opt->quiet, "No progress lines");
    cmd->add_option("--zero", opt->zero, "Data parallel (mpirun -np N): 1 = ZeRO-1, AdamW moments (on CUDA also the fp32 master weights) sharded over the ranks")
        ->capture_default_str()
        ->check(CLI::Range(0, 1));
    cmd->callback([opt] {
        SftResult r = run_sft(*opt);
        if (r.interrupted) std::exit(130);
    });
}

}  // namespace rusca
