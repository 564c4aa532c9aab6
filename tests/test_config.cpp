// test_config.cpp: config.json parsing, and refusals that name the offending field.
#include <gtest/gtest.h>

#include "host/config.h"
#include "host/error.h"
#include "host/params.h"

using namespace rusca;

namespace {

const char* kQwen2 = R"({"model_type": "qwen2", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 96,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "rope_theta": 1000000.0,
  "rms_norm_eps": 1e-6, "tie_word_embeddings": true, "hidden_act": "silu", "use_sliding_window": false,
  "sliding_window": 4096, "eos_token_id": [5, 6]})";

std::string replaced(std::string s, const std::string& from, const std::string& to) {
    return s.replace(s.find(from), from.size(), to);
}

std::string with(const std::string& extra) {
    std::string base = kQwen2;
    return base.substr(0, base.size() - 1) + ", " + extra + "}";
}

// Expects parse_config to throw an Error whose message contains every string in `parts`.
void expect_refused(const std::string& json, std::initializer_list<const char*> parts) {
    try {
        parse_config(json, "cfg.json");
        FAIL() << "accepted: " << json;
    } catch (const Error& e) {
        for (const char* p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
}

TEST(Config, ParsesQwen2WithDefaults) {
    ModelConfig c = parse_config(kQwen2, "cfg.json");
    EXPECT_EQ(c.family, Family::Qwen2);
    EXPECT_EQ(c.head_dim, 16);
    EXPECT_TRUE(c.qkv_bias);
    EXPECT_FALSE(c.qk_norm);
    EXPECT_TRUE(c.tie_word_embeddings);
    EXPECT_FLOAT_EQ(c.rope_theta, 1e6f);
    EXPECT_EQ(c.eos_token_id, 5);
}

TEST(Config, ReadsRopeThetaFromRopeParameters) {
    std::string j = R"({"model_type": "qwen3", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 8,
      "num_hidden_layers": 1, "num_attention_heads": 2, "head_dim": 6,
      "rope_parameters": {"rope_type": "default", "rope_theta": 5000.0}})";
    ModelConfig c = parse_config(j, "cfg.json");
    EXPECT_EQ(c.head_dim, 6);
    EXPECT_EQ(c.num_kv_heads, 2);
    EXPECT_TRUE(c.qk_norm);
    EXPECT_FLOAT_EQ(c.rope_theta, 5000.0f);
}

TEST(Config, RefusesWhatWeDoNotSupport) {
    expect_refused(with(R"("rope_scaling": {"rope_type": "yarn", "factor": 4.0})"), {"cfg.json", "rope_scaling", "yarn"});
    expect_refused(with(R"("hidden_act": "gelu")"), {"hidden_act"});
    expect_refused(with(R"("num_experts": 8)"), {"num_experts"});
    expect_refused(R"({"model_type": "gpt2", "vocab_size": 10})", {"cfg.json", "model_type", "gpt2"});
    expect_refused(replaced(kQwen2, "\"use_sliding_window\": false", "\"use_sliding_window\": true"),
                   {"use_sliding_window"});
    expect_refused(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 8})", {"intermediate_size"});
    expect_refused("{not json", {"cfg.json", "JSON"});
    expect_refused(replaced(kQwen2, "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"),
                   {"num_key_value_heads"});
}

TEST(Config, JsonRoundTrip) {
    ModelConfig a = parse_config(kQwen2, "cfg.json");
    ModelConfig b = parse_config(config_to_json(a), "written");
    EXPECT_EQ(a.family, b.family);
    EXPECT_EQ(a.head_dim, b.head_dim);
    EXPECT_EQ(a.num_kv_heads, b.num_kv_heads);
    EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
    EXPECT_FLOAT_EQ(a.rope_theta, b.rope_theta);
}

TEST(Params, LayoutFollowsHuggingFaceNames) {
    ModelConfig c = parse_config(kQwen2, "cfg.json");
    ParamLayout l(c);
    ASSERT_NE(l.find("model.layers.1.self_attn.k_proj.bias"), nullptr);
    EXPECT_EQ(l.find("model.layers.1.self_attn.k_proj.bias")->shape, std::vector<int64_t>{32});
    EXPECT_EQ(l.find("lm_head.weight"), nullptr);  // tied
    EXPECT_EQ(l.lm_head, l.embed);
    size_t sum = 0;
    for (const ParamInfo& p : l.tensors) sum += p.numel;
    EXPECT_EQ(sum, l.total);
}

}  // namespace
