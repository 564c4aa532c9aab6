// checkpoint.cpp: model directories (config.json + model.safetensors, HF-compatible) and resumable
// training checkpoints. Crash safety comes from ordering: every file is written atomically, a
// checkpoint is assembled in a hidden temp directory and renamed into place, and only then is
// `latest` switched to it, so `latest` always names a complete checkpoint.
#include "checkpoint.h"

#include <fcntl.h>  // AT_FDCWD, for renameat2

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "error.h"
#include "fileio.h"

namespace rusca {
namespace fs = std::filesystem;

namespace {

const char* kModelFile = "model.safetensors";
const char* kIndexFile = "model.safetensors.index.json";
const char* kStateFile = "train_state.safetensors";

std::string join(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// ---------------------------------------------------------------------------------------------
// loading

// All tensors of a checkpoint, possibly spread over shards; `source` names it in errors.
struct TensorSet {
    std::string source;
    std::vector<std::unique_ptr<SafeTensorsFile>> files;
    std::map<std::string, const SafeTensorsFile*> where;  // tensor name -> file holding it

    void add_file(const std::string& path) {
        files.push_back(std::make_unique<SafeTensorsFile>(path));
        const SafeTensorsFile* f = files.back().get();
        for (const TensorView& t : f->tensors()) {
            auto [it, fresh] = where.emplace(t.name, f);
            check(fresh, path + ": tensor \"" + t.name + "\" is also stored in " + it->second->path());
        }
    }
};

// Shards listed by model.safetensors.index.json ("weight_map": {tensor: shard file}).
TensorSet open_sharded(const std::string& dir) {
    TensorSet set;
    set.source = join(dir, kIndexFile);
    nlohmann::json j = nlohmann::json::parse(read_file(set.source), nullptr, false);
    check(!j.is_discarded() && j.is_object(), set.source + ": not a valid JSON object");
    check(j.contains("weight_map") && j["weight_map"].is_object(), set.source + ": missing \"weight_map\" object");
    const nlohmann::json& wm = j["weight_map"];
    std::map<std::string, std::string> shard_of;
    for (auto it = wm.begin(); it != wm.end(); ++it) {
        check(it.value().is_string(), set.source + ": weight_map entry for \"" + it.key() + "\" must be a file name");
        shard_of[it.key()] = it.value().get<std::string>();
    }
    std::map<std::string, bool> opened;
    for (const auto& [name, shard] : shard_of)
        if (!opened[shard]) {
            set.add_file(join(dir, shard));
            opened[shard] = true;
        }
    // An index that disagrees with its shards means a broken download; say which tensor.
    for (const auto& [name, shard] : shard_of) {
        auto it = set.where.find(name);
        check(it != set.where.end() && it->second->path() == join(dir, shard),
              set.source + ": tensor \"" + name + "\" is listed in shard " + shard + " but not stored there");
    }
    return set;
}

TensorSet open_checkpoint(const std::string& path) {
    check(file_exists(path), path + ": no such file or directory");
    if (!fs::is_directory(path)) {
        TensorSet set;
        set.source = path;
        set.add_file(path);
        return set;
    }
    if (file_exists(join(path, kIndexFile))) return open_sharded(path);
    const std::string single = join(path, kModelFile);
    check(file_exists(single), path + ": contains neither " + kModelFile + " nor " + kIndexFile);
    TensorSet set;
    set.source = single;
    set.add_file(single);
    return set;
}

// Stored tensors we knowingly drop: old HF exports store RoPE frequencies (we recompute them), and
// tied models are sometimes saved with a redundant lm_head copy.
bool ignorable(const std::string& name, const ParamLayout& layout) {
    if (ends_with(name, "rotary_emb.inv_freq")) return true;
    return name == "lm_head.weight" && layout.find("lm_head.weight") == nullptr;
}

// ---------------------------------------------------------------------------------------------
// saving

// config.json with torch_dtype matching the stored weights, so transformers loads them as saved.
std::string config_json(const ModelConfig& config, DType dtype) {
    auto j = nlohmann::ordered_json::parse(config_to_json(config));
    j["torch_dtype"] = dtype == DType::BF16 ? "bfloat16" : dtype == DType::F16 ? "float16" : "float32";
    return j.dump(2) + "\n";
}

std::string checkpoint_name(long step) {
    check(step >= 0, "checkpoint step must be non-negative, got " + std::to_string(step));
    char buf[32];
    std::snprintf(buf, sizeof buf, "checkpoint-%06ld", step);
    return buf;
}

void remove_tree(const std::string& path) {
    std::error_code ec;
    fs::remove_all(path, ec);
    check(!ec, path + ": cannot remove: " + ec.message());
}

// Puts directory `from` at `to`, replacing any directory already there. When `to` exists we swap
// the two atomically (Linux renameat2), so `to` is never missing even if we die halfway.
void replace_dir(const std::string& from, const std::string& to) {
    if (fs::exists(to)) {
#ifdef RENAME_EXCHANGE
        if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_EXCHANGE) == 0) {
            remove_tree(from);  // now holds the old checkpoint
            return;
        }
#endif
        remove_tree(to);  // filesystem without atomic exchange: fall back to remove + rename
    }
    std::error_code ec;
    fs::rename(from, to, ec);
    check(!ec, from + ": cannot rename to " + to + ": " + ec.message());
}

}  // namespace

template <typename Real>
void load_params(const std::string& path, const ParamLayout& layout, Real* params) {
    TensorSet set = open_checkpoint(path);
    for (const ParamInfo& p : layout.tensors) {
        auto it = set.where.find(p.name);
        check(it != set.where.end(),
              set.source + ": tensor \"" + p.name + "\" is missing (checkpoint does not match config.json)");
        it->second->read(p.name, p.shape, params + p.offset);
    }
    for (const auto& [name, file] : set.where)
        check(layout.find(name) != nullptr || ignorable(name, layout),
              file->path() + ": unexpected tensor \"" + name + "\" (checkpoint does not match config.json)");
}

template void load_params<float>(const std::string&, const ParamLayout&, float*);
template void load_params<double>(const std::string&, const ParamLayout&, double*);

namespace {

// Tensors in layout order, cut into shards of at most max_bytes each (a tensor larger than that
// gets a shard of its own), the way transformers' save_pretrained splits at max_shard_size.
std::vector<std::vector<TensorOut>> split_shards(const std::vector<TensorOut>& tensors, size_t max_bytes) {
    std::vector<std::vector<TensorOut>> shards(1);
    size_t bytes = 0;
    for (const TensorOut& t : tensors) {
        size_t n = dtype_size(t.dtype);
        for (int64_t d : t.shape) n *= size_t(d);
        if (!shards.back().empty() && bytes + n > max_bytes) shards.emplace_back(), bytes = 0;
        shards.back().push_back(t);
        bytes += n;
    }
    return shards;
}

std::string shard_name(size_t i, size_t n) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, n);
    return buf;
}

bool is_shard_file(const std::string& name) {
    return name.rfind("model-", 0) == 0 && name.find("-of-") != std::string::npos && ends_with(name, ".safetensors");
}

// Weights written before, in the other layout (one file vs shards) or with another shard count,
// would be read instead of (or mixed with) the new ones: remove what `keep` does not name.
void remove_stale_weights(const std::string& dir, const std::vector<std::string>& keep) {
    auto kept = [&](const std::string& n) { return std::find(keep.begin(), keep.end(), n) != keep.end(); };
    for (const auto& e : fs::directory_iterator(dir)) {
        const std::string n = e.path().filename().string();
        if ((n == kModelFile || n == kIndexFile || is_shard_file(n)) && !kept(n)) fs::remove(e.path());
    }
}

}  // namespace

void save_model(const std::string& dir, const ModelConfig& config, const ParamLayout& layout,
                const float* params, DType dtype, size_t max_shard_bytes) {
    check(dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16,
          dir + ": models are saved as F32, BF16 or F16, not " + dtype_name(dtype));
    check(max_shard_bytes > 0, dir + ": the shard size limit must be positive");
    make_dirs(dir);
    write_file_atomic(join(dir, "config.json"), config_json(config, dtype));
    std::vector<uint16_t> narrow;  // the converted copy when saving in 16 bits
    if (dtype != DType::F32) {
        narrow.resize(layout.total);
        auto conv = dtype == DType::BF16 ? f32_to_bf16 : f32_to_f16;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < layout.total; i++) narrow[i] = conv(params[i]);
    }
    std::vector<TensorOut> out;
    for (const ParamInfo& p : layout.tensors) {
        const void* data = dtype == DType::F32 ? static_cast<const void*>(params + p.offset)
                                               : static_cast<const void*>(narrow.data() + p.offset);
        out.push_back({p.name, dtype, p.shape, data});
    }
    const std::vector<std::vector<TensorOut>> shards = split_shards(out, max_shard_bytes);
    if (shards.size() == 1) {
        write_safetensors(join(dir, kModelFile), out, {{"format", "pt"}});
        remove_stale_weights(dir, {kModelFile});
        return;
    }
    // Shards first, the index last: the index is what makes a reader look for shards.
    nlohmann::ordered_json index;
    index["metadata"]["total_size"] = layout.total * dtype_size(dtype);
    std::vector<std::string> names = {kIndexFile};
    for (size_t i = 0; i < shards.size(); i++) {
        names.push_back(shard_name(i, shards.size()));
        write_safetensors(join(dir, names.back()), shards[i], {{"format", "pt"}});
        for (const TensorOut& t : shards[i]) index["weight_map"][t.name] = names.back();
    }
    write_file_atomic(join(dir, kIndexFile), index.dump(2) + "\n");
    remove_stale_weights(dir, names);
}
std::vector<std::string> copy_tokenizer_files(const std::string& tokenizer, const std::string& dir) {
    check(fs::exists(tokenizer), tokenizer + ": no such tokenizer file or folder");
    const bool folder = fs::is_directory(tokenizer);
    const fs::path src_dir = folder ? fs::path(tokenizer) : fs::path(tokenizer).parent_path();
    std::vector<std::pair<fs::path, std::string>> copies;  // source, name in dir
    if (!folder) copies.push_back({tokenizer, ends_with(tokenizer, ".json") ? "tokenizer.json" : "tokenizer.model"});
    for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                             "generation_config.json", "vocab.json", "merges.txt", "added_tokens.json"}) {
        const fs::path p = src_dir / name;
        // From beside a lone file, take companions but not a second tokenizer of the other kind.
        const bool other_tokenizer = !folder && (std::string(name) == "tokenizer.json" || std::string(name) == "tokenizer.model");
        if (!other_tokenizer && fs::is_regular_file(p)) copies.push_back({p, name});
    }
    make_dirs(dir);
    std::vector<std::string> copied;
    for (const auto& [from, name] : copies) {
        write_file_atomic(join(dir, name), read_file(from.string()));
        copied.push_back(name);
    }
    return copied;
}

void write_generation_config(const std::string& dir, const ModelConfig& config, const std::vector<int>& eos_ids) {
    const std::string path = join(dir, "generation_config.json");
    if (file_exists(path)) return;
    nlohmann::ordered_json j;
    if (config.bos_token_id >= 0) j["bos_token_id"] = config.bos_token_id;
    if (eos_ids.size() == 1) j["eos_token_id"] = eos_ids[0];
    else if (!eos_ids.empty()) j["eos_token_id"] = eos_ids;
    write_file_atomic(path, j.dump(2) + "\n");
}

std::string save_checkpoint(const std::string& out_dir, long step, const ModelConfig& config,
                            const ParamLayout& layout, const float* params, const TrainState& state,
                            const std::string& tokenizer) {
    const std::string name = checkpoint_name(step);
    check(state.m.size() == layout.total && state.v.size() == layout.total,
          name + ": optimizer state has " + std::to_string(state.m.size()) + "/" + std::to_string(state.v.size()) +
              " moments but the model has " + std::to_string(layout.total) + " parameters");
    make_dirs(out_dir);
    // A leftover temp directory is a checkpoint that a killed run never finished: discard it.
    const std::string tmp = join(out_dir, ".tmp-" + name);
    remove_tree(tmp);
    save_model(tmp, config, layout, params);
    if (!tokenizer.empty()) copy_tokenizer_files(tokenizer, tmp);

    std::map<std::string, std::string> meta = state.meta;
    meta["param_count"] = std::to_string(layout.total);
    const std::vector<int64_t> shape = {int64_t(layout.total)};
    write_safetensors(join(tmp, kStateFile),
                      {{"adam.m", DType::F32, shape, state.m.data()}, {"adam.v", DType::F32, shape, state.v.data()}},
                      meta);
    fsync_dir(tmp);

    const std::string final_dir = join(out_dir, name);
    replace_dir(tmp, final_dir);
    fsync_dir(out_dir);
    write_file_atomic(join(out_dir, "latest"), name + "\n");
    return final_dir;
}

std::string latest_checkpoint(const std::string& out_dir) {
    const std::string latest = join(out_dir, "latest");
    if (!file_exists(latest)) return "";
    std::string name = read_file(latest);
    const char* ws = " \t\r\n";
    name.erase(name.find_last_not_of(ws) + 1);
    name.erase(0, name.find_first_not_of(ws));
    check(!name.empty(), latest + ": empty (expected a checkpoint directory name)");
    const std::string dir = join(out_dir, name);
    check(fs::is_directory(dir), latest + ": names \"" + name + "\" but " + dir + " is not a directory");
    return dir;
}

TrainState load_train_state(const std::string& ckpt_dir, const ParamLayout& layout) {
    const std::string path = join(ckpt_dir, kStateFile);
    SafeTensorsFile f(path);
    TrainState s;
    s.meta = f.metadata();
    auto pc = s.meta.find("param_count");
    check(pc != s.meta.end(), path + ": metadata has no \"param_count\"");
    check(pc->second == std::to_string(layout.total), path + ": saved for a model with " + pc->second +
                                                          " parameters, but this model has " +
                                                          std::to_string(layout.total));
    s.meta.erase(pc);  // ours, not the caller's: the round trip gives back exactly what was saved
    const std::vector<int64_t> shape = {int64_t(layout.total)};
    s.m.resize(layout.total);
    s.v.resize(layout.total);
    f.read("adam.m", shape, s.m.data());
    f.read("adam.v", shape, s.v.data());
    return s;
}

}  // namespace rusca
