// config.cpp: Hugging Face config.json <-> ModelConfig, with refusals for what we don't support.
#include "config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "error.h"

namespace rusca {
using json = nlohmann::json;

namespace {

int get_int(const json& j, const char* key, const std::string& src, int dflt = -1) {
    if (!j.contains(key) || j[key].is_null()) {
        check(dflt >= 0, src + ": missing required field \"" + key + "\"");
        return dflt;
    }
    check(j[key].is_number_integer(), src + ": field \"" + key + "\" must be an integer");
    return j[key].get<int>();
}

// eos_token_id may be an int or a list (Llama 3); we keep the first.
int get_token_id(const json& j, const char* key) {
    if (!j.contains(key) || j[key].is_null()) return -1;
    if (j[key].is_array()) return j[key].empty() ? -1 : j[key][0].get<int>();
    return j[key].get<int>();
}

void refuse_if(bool cond, const std::string& src, const std::string& field, const std::string& why) {
    check(!cond, src + ": unsupported config field \"" + field + "\": " + why);
}

// rope_theta lives at the top level (transformers 4) or inside rope_parameters (transformers 5).
float rope_theta_of(const json& j, const std::string& src) {
    for (const char* key : {"rope_scaling", "rope_parameters"}) {
        if (!j.contains(key) || j[key].is_null()) continue;
        const json& r = j[key];
        std::string type = r.value("rope_type", r.value("type", std::string("default")));
        refuse_if(type != "default", src, key, "rope type \"" + type + "\" (only default RoPE is supported)");
        if (r.contains("rope_theta")) return r["rope_theta"].get<float>();
    }
    return j.value("rope_theta", 10000.0f);
}

}  // namespace

ModelConfig parse_config(const std::string& text, const std::string& src) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::parse_error& e) {
        throw Error(src + ": not valid JSON: " + e.what());
    }
    check(j.is_object(), src + ": expected a JSON object");
    ModelConfig c;
    c.model_type = j.value("model_type", std::string());
    if (c.model_type == "llama") c.family = Family::Llama;
    else if (c.model_type == "qwen2") c.family = Family::Qwen2;
    else if (c.model_type == "qwen3") c.family = Family::Qwen3;
    else refuse_if(true, src, "model_type", "\"" + c.model_type + "\" (supported: llama, qwen2, qwen3)");

    c.vocab_size = get_int(j, "vocab_size", src);
    c.hidden_size = get_int(j, "hidden_size", src);
    c.intermediate_size = get_int(j, "intermediate_size", src);
    c.num_layers = get_int(j, "num_hidden_layers", src);
    c.num_heads = get_int(j, "num_attention_heads", src);
    c.num_kv_heads = get_int(j, "num_key_value_heads", src, c.num_heads);
    check(c.vocab_size > 0 && c.hidden_size > 0 && c.intermediate_size > 0 && c.num_layers > 0 &&
              c.num_heads > 0 && c.num_kv_heads > 0,
          src + ": sizes must be positive");
    int default_head_dim = c.hidden_size % c.num_heads == 0 ? c.hidden_size / c.num_heads : 0;
    c.head_dim = get_int(j, "head_dim", src, default_head_dim);
    check(c.head_dim > 0 && c.head_dim % 2 == 0, src + ": field \"head_dim\" must be a positive even number");
    check(c.num_heads % c.num_kv_heads == 0,
          src + ": num_attention_heads must be a multiple of num_key_value_heads");
    c.max_position_embeddings = get_int(j, "max_position_embeddings", src, 2048);
    c.rms_norm_eps = j.value("rms_norm_eps", 1e-6f);
    c.rope_theta = rope_theta_of(j, src);
    c.tie_word_embeddings = j.value("tie_word_embeddings", false);
    c.bos_token_id = get_token_id(j, "bos_token_id");
    c.eos_token_id = get_token_id(j, "eos_token_id");

    std::string act = j.value("hidden_act", std::string("silu"));
    refuse_if(act != "silu", src, "hidden_act", "\"" + act + "\" (only silu / SwiGLU is supported)");
    refuse_if(j.value("use_sliding_window", false), src, "use_sliding_window", "sliding-window attention");
    if (c.family == Family::Llama)
        refuse_if(j.contains("sliding_window") && !j["sliding_window"].is_null(), src, "sliding_window",
                  "sliding-window attention");
    for (const char* moe : {"num_experts", "num_local_experts", "n_routed_experts"})
        refuse_if(j.contains(moe) && !j[moe].is_null() && j[moe].get<int>() > 0, src, moe,
                  "mixture-of-experts models");
    refuse_if(j.value("mlp_bias", false), src, "mlp_bias", "MLP biases");
    c.qkv_bias = c.family == Family::Qwen2;
    c.qk_norm = c.family == Family::Qwen3;
    refuse_if(c.family != Family::Qwen2 && j.value("attention_bias", false), src, "attention_bias",
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
