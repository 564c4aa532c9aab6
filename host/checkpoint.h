// checkpoint.h: a model directory (config.json + model.safetensors) that Hugging Face transformers
// loads, and the training state that lets a killed run resume exactly.
//
// Layout written by save_checkpoint(out_dir, step, ...):
//   out_dir/checkpoint-000123/config.json          HF config
//   out_dir/checkpoint-000123/model.safetensors    HF tensor names, f32 (or bf16/f16 if asked);
//                                                   sharded with an index past 5 GB
//   out_dir/checkpoint-000123/tokenizer.json ...   the run's tokenizer files, when it names them
//   out_dir/checkpoint-000123/train_state.safetensors   AdamW moments "adam.m"/"adam.v" (flat, in
//                                                   ParamLayout order) + metadata strings (step, RNG,
//                                                   data position, ...)
//   out_dir/latest                                 text file naming the newest complete checkpoint
// A checkpoint is built in a temporary directory and renamed into place, then `latest` is replaced
// atomically, so a run killed at any moment leaves the previous checkpoint usable.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "config.h"
#include "params.h"
#include "safetensors.h"

namespace rusca {

// Loads every parameter of `layout` from a model directory (model.safetensors, or shards listed in
// model.safetensors.index.json) or from a single .safetensors file. Missing tensors, wrong shapes,
// unknown extra tensors and unreadable files are errors naming the file and tensor. A tied model
// tolerates (and ignores) a stored lm_head.weight.
template <typename Real>
void load_params(const std::string& path, const ParamLayout& layout, Real* params);

// Writes config.json + the weights into `dir` (created if needed) in dtype F32, BF16 or F16: one
// model.safetensors, or, when the weights exceed max_shard_bytes, shards model-0000i-of-0000n.safetensors
// listed by model.safetensors.index.json, as transformers' save_pretrained writes them (its default
// limit is 5 GB too). Weight files of an earlier save in `dir` that the new one does not use go.
constexpr size_t kDefaultMaxShardBytes = 5000000000;  // "5GB" as transformers reads it
void save_model(const std::string& dir, const ModelConfig& config, const ParamLayout& layout,
                const float* params, DType dtype = DType::F32, size_t max_shard_bytes = kDefaultMaxShardBytes);

struct TrainState {
    std::vector<float> m, v;                     // AdamW moments, one per parameter
    std::map<std::string, std::string> meta;     // step, rng, data position, ... (caller's keys)
};

// Copies what Hugging Face keeps beside the weights so `dir` loads with its tokenizer:
// `tokenizer` is the tokenizer file a run used (tokenizer.json or a sentencepiece .model, stored
// under its standard name) or a model folder; the companion files found next to it
// (tokenizer_config.json, special_tokens_map.json, generation_config.json, vocab.json, merges.txt,
// added_tokens.json) come along. Returns the names copied.
std::vector<std::string> copy_tokenizer_files(const std::string& tokenizer, const std::string& dir);
// Writes dir/generation_config.json naming the ids generation starts and stops at (eos: one id or
// a list, as transformers reads it), unless `dir` already has one (copied from the source folder).
void write_generation_config(const std::string& dir, const ModelConfig& config, const std::vector<int>& eos_ids);

// Saves model + train state as out_dir/checkpoint-<step> and points out_dir/latest at it, with the
// tokenizer files copied in when `tokenizer` (a file or folder, see copy_tokenizer_files) is given.
// Returns the checkpoint directory.
std::string save_checkpoint(const std::string& out_dir, long step, const ModelConfig& config,
                            const ParamLayout& layout, const float* params, const TrainState& state,
                            const std::string& tokenizer = "");
// The directory `latest` names, or "" when out_dir holds no checkpoint.
std::string latest_checkpoint(const std::string& out_dir);
// Reads train_state.safetensors of a checkpoint directory; sizes are checked against `layout`.
TrainState load_train_state(const std::string& ckpt_dir, const ParamLayout& layout);

}  // namespace rusca
