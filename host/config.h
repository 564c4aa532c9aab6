// config.h: the model shape, read from a Hugging Face config.json.
// We support decoder-only Llama, Qwen2 (QKV bias) and Qwen3 (per-head q/k RMSNorm) families.
// Anything we would silently get wrong (rope scaling, sliding windows, MoE, other activations)
// is refused by load_config() with a message naming the offending field.
#pragma once
#include <string>

namespace rusca {

enum class Family { Llama, Qwen2, Qwen3 };

struct ModelConfig {
    Family family = Family::Llama;
    std::string model_type = "llama";
    int vocab_size = 0;
    int hidden_size = 0;        // C
    int intermediate_size = 0;  // F
    int num_layers = 0;         // L
    int num_heads = 0;          // Hq
    int num_kv_heads = 0;       // Hkv (GQA: Hq % Hkv == 0)
    int head_dim = 0;           // D (hidden_size / num_heads unless given)
    int max_position_embeddings = 2048;
    float rms_norm_eps = 1e-6f;
    float rope_theta = 10000.0f;
    bool tie_word_embeddings = false;
    bool qkv_bias = false;  // Qwen2
    bool qk_norm = false;   // Qwen3
    int bos_token_id = -1;
    int eos_token_id = -1;

    int q_dim() const { return num_heads * head_dim; }
    int kv_dim() const { return num_kv_heads * head_dim; }
};

// Parses and validates; `source` names the file in error messages.
ModelConfig parse_config(const std::string& json_text, const std::string& source);
ModelConfig load_config(const std::string& path);
// Writes a config.json that transformers loads back into the same architecture.
std::string config_to_json(const ModelConfig& c);

}  // namespace rusca
