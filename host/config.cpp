// config.cpp: Hugging Face config.json <-> ModelConfig, with refusals for what we don't support.
#include "config.h"

#include <cfloat>
#include <climits>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "error.h"
#include "json_util.h"

namespace rusca {
using json = nlohmann::json;

namespace {

// Sizes are ints in the model code; a config whose derived parameter count passes this is not a
// model anyone trains here, and refusing it up front beats an out-of-memory crash (or an overflow).
constexpr double kMaxParams = 1e12;
constexpr int64_t kMaxSize = INT32_MAX;
constexpr int64_t kMaxLayers = 10000;  // the deepest real models have ~130 layers

int get_size(const JsonFields& f, const char* key) { return int(f.integer(key, 1, kMaxSize)); }
int get_size_or(const JsonFields& f, const char* key, int dflt) { return int(f.integer_or(key, dflt, 1, kMaxSize)); }

// A float field: a double past float's range would be undefined behaviour to convert.
float get_float(const JsonFields& f, const char* key, double dflt) {
    const double d = f.number_or(key, dflt);
    if (!(std::fabs(d) <= FLT_MAX)) f.fail(key, std::to_string(d) + " does not fit in a float");
    return float(d);
}

// eos_token_id may be an int or a list (Llama 3); we keep the first.
int get_token_id(const JsonFields& f, const char* key) {
    const json* v = f.find(key);
    if (!v) return -1;
    if (v->is_array()) return v->empty() ? -1 : int(json_integer((*v)[0], 0, kMaxSize, f.where(), std::string(key) + "[0]"));
    return int(json_integer(*v, 0, kMaxSize, f.where(), key));
}

void refuse_if(bool cond, const std::string& src, const std::string& field, const std::string& why) {
    check(!cond, src + ": unsupported config field \"" + field + "\": " + why);
}

// rope_theta lives at the top level (transformers 4) or inside rope_parameters (transformers 5).
float rope_theta_of(const JsonFields& f, const std::string& src) {
    for (const char* key : {"rope_scaling", "rope_parameters"}) {
        if (!f.has(key)) continue;
        const JsonFields r = f.object(key);
        std::string type = r.str_or("rope_type", r.str_or("type", "default"));
        refuse_if(type != "default", src, key, "rope type \"" + type + "\" (only default RoPE is supported)");
        if (r.has("rope_theta")) return get_float(r, "rope_theta", 0);
    }
    return get_float(f, "rope_theta", 10000.0);
}

double param_count(const ModelConfig& c) {
    const double C = c.hidden_size, q = double(c.num_heads) * c.head_dim, kv = double(c.num_kv_heads) * c.head_dim;
    const double layer = C * (q + 2 * kv) + q * C + 3 * C * c.intermediate_size + 2 * C;
    return double(c.vocab_size) * C * (c.tie_word_embeddings ? 1 : 2) + c.num_layers * layer + C;
}

}  // namespace

ModelConfig parse_config(const std::string& text, const std::string& src) {
    const json j = parse_json(text, src);
    const JsonFields f(j, src);
    ModelConfig c;
    c.model_type = f.str_or("model_type", "");
    if (c.model_type == "llama") c.family = Family::Llama;
    else if (c.model_type == "qwen2") c.family = Family::Qwen2;
    else if (c.model_type == "qwen3") c.family = Family::Qwen3;
    else refuse_if(true, src, "model_type", "\"" + c.model_type + "\" (supported: llama, qwen2, qwen3)");

    c.vocab_size = get_size(f, "vocab_size");
    c.hidden_size = get_size(f, "hidden_size");
    c.intermediate_size = get_size(f, "intermediate_size");
    c.num_layers = int(f.integer("num_hidden_layers", 1, kMaxLayers));
    c.num_heads = get_size(f, "num_attention_heads");
    c.num_kv_heads = get_size_or(f, "num_key_value_heads", c.num_heads);
    int default_head_dim = c.hidden_size % c.num_heads == 0 ? c.hidden_size / c.num_heads : 0;
    if (default_head_dim > 0) c.head_dim = get_size_or(f, "head_dim", default_head_dim);
    else c.head_dim = get_size(f, "head_dim");
    check(c.head_dim % 2 == 0, src + ": field \"head_dim\" must be a positive even number");
    check(c.num_heads % c.num_kv_heads == 0,
          src + ": num_attention_heads must be a multiple of num_key_value_heads");
    check(int64_t(c.num_heads) * c.head_dim <= kMaxSize, src + ": num_attention_heads * head_dim is too large");
    c.max_position_embeddings = get_size_or(f, "max_position_embeddings", 2048);
    c.rms_norm_eps = get_float(f, "rms_norm_eps", 1e-6);
    c.rope_theta = rope_theta_of(f, src);
    c.tie_word_embeddings = f.flag_or("tie_word_embeddings", false);
    c.bos_token_id = get_token_id(f, "bos_token_id");
    c.eos_token_id = get_token_id(f, "eos_token_id");
    const double params = param_count(c);
    check(params <= kMaxParams, src + ": the sizes give " + std::to_string(params / 1e9) +
                                    " billion parameters, over the 1000 billion rusca accepts (num_hidden_layers = " +
                                    std::to_string(c.num_layers) + ", hidden_size = " +
                                    std::to_string(c.hidden_size) + ")");

    std::string act = f.str_or("hidden_act", "silu");
    refuse_if(act != "silu", src, "hidden_act", "\"" + act + "\" (only silu / SwiGLU is supported)");
    refuse_if(f.flag_or("use_sliding_window", false), src, "use_sliding_window", "sliding-window attention");
    if (c.family == Family::Llama)
        refuse_if(f.has("sliding_window"), src, "sliding_window", "sliding-window attention");
    for (const char* moe : {"num_experts", "num_local_experts", "n_routed_experts"})
        refuse_if(f.integer_or(moe, 0, INT64_MIN, INT64_MAX) > 0, src, moe, "mixture-of-experts models");
    refuse_if(f.flag_or("mlp_bias", false), src, "mlp_bias", "MLP biases");
    c.qkv_bias = c.family == Family::Qwen2;
    c.qk_norm = c.family == Family::Qwen3;
    refuse_if(c.family != Family::Qwen2 && f.flag_or("attention_bias", false), src, "attention_bias",
              "attention biases outside the Qwen2 family");
    return c;
}

ModelConfig load_config(const std::string& path) {
    std::ifstream f(path);
    check(f.good(), path + ": cannot open config file");
    std::stringstream ss;
    ss << f.rdbuf();
    return parse_config(ss.str(), path);
}

std::string config_to_json(const ModelConfig& c) {
    static const char* arch[] = {"LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"};
    json j = {
        {"architectures", {arch[int(c.family)]}},
        {"model_type", c.model_type},
        {"vocab_size", c.vocab_size},
        {"hidden_size", c.hidden_size},
        {"intermediate_size", c.intermediate_size},
        {"num_hidden_layers", c.num_layers},
        {"num_attention_heads", c.num_heads},
        {"num_key_value_heads", c.num_kv_heads},
        {"head_dim", c.head_dim},
        {"max_position_embeddings", c.max_position_embeddings},
        {"rms_norm_eps", c.rms_norm_eps},
        {"rope_theta", c.rope_theta},
        {"tie_word_embeddings", c.tie_word_embeddings},
        {"hidden_act", "silu"},
        {"attention_bias", c.qkv_bias},
        {"torch_dtype", "float32"},
    };
    if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
    if (c.eos_token_id >= 0) j["eos_token_id"] = c.eos_token_id;
    if (c.family != Family::Llama) j["use_sliding_window"] = false;
    return j.dump(2) + "\n";
}

}  // namespace rusca
