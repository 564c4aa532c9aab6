// cmd_export.cpp: `rusca export`, a checkpoint's model (config.json + weights, no training state)
// written to a directory in F32, BF16 or F16. It is how the shipped world's models are made small
// (tools/make_world.sh stores them in bf16: half the bytes, and the CPU backend reads them back
// into fp32 as it reads any Hugging Face checkpoint). The tokenizer files travel along (from the
// checkpoint folder, or --tokenizer), with a generation_config.json naming the stop ids, so the
// output is a Hugging Face model folder that transformers and `rusca rl --policy` load as is.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "chat.h"
#include "checkpoint.h"
#include "cli.h"
#include "error.h"
#include "model.h"
#include "safetensors.h"
#include "tokenizer/tokenizer.h"

namespace rusca {

void add_export_command(CLI::App& app) {
    struct Args {
        std::string model, out, dtype = "bf16", tokenizer;
        size_t max_shard = kDefaultMaxShardBytes;
    };
    auto a = std::make_shared<Args>();
    CLI::App* cmd = app.add_subcommand("export", "Write a checkpoint's model (config.json + safetensors, sharded past --max-shard-size) in f32, bf16 or f16");
    cmd->add_option("--model", a->model, "Model or checkpoint directory")->required()->check(CLI::ExistingDirectory);
    cmd->add_option("--out", a->out, "Output directory (created; its config.json and model.safetensors are replaced)")->required();
    cmd->add_option("--dtype", a->dtype, "Weight dtype: f32 | bf16 | f16")
        ->capture_default_str()
        ->check(CLI::IsMember({"f32", "bf16", "f16"}));
    cmd->add_option("--max-shard-size", a->max_shard, "Largest weight file; bigger models are written as shards with an index (e.g. 5GB, 500MB, 2GiB)")
        ->transform(CLI::AsSizeValue(true))
        ->default_str("5GB")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--tokenizer", a->tokenizer, "Tokenizer to ship with it (default: the one in --model, if any)")
        ->check(CLI::ExistingPath);
    cmd->callback([a] {
        std::unique_ptr<Model> m = load_cpu_model(a->model);
        const DType dtype = a->dtype == "bf16" ? DType::BF16 : a->dtype == "f16" ? DType::F16 : DType::F32;
        save_model(a->out, m->config, m->layout, m->params(), dtype, a->max_shard);
        const std::string tok_path = a->tokenizer.empty() ? find_tokenizer_file(a->model) : a->tokenizer;
        if (!tok_path.empty()) {
            copy_tokenizer_files(tok_path, a->out);
            const Tokenizer tok(tok_path);
            write_generation_config(a->out, m->config, chat_stop_tokens(tok));
        }
        std::printf("export: %s -> %s (%s, %zu parameters)\n", a->model.c_str(), a->out.c_str(), dtype_name(dtype),
                    size_t(m->layout.total));
    });
}

}  // namespace rusca
