// test_model.cpp: the whole CPU model. Parameter gradients against central finite differences in
// double precision for each family, and logits / loss / every gradient against the PyTorch golden
// files written by tools/make_golden.py and tools/make_hf_golden.py (transformers in float64; the
// latter from bf16 sharded folders shaped like real Qwen2/Qwen3/Llama 3 checkpoints).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "host/checkpoint.h"
#include "host/cpu/cpu_model.h"
#include "host/error.h"
#include "host/fileio.h"
#include "host/model.h"
#include "host/safetensors.h"

using namespace rusca;

namespace {

ModelConfig tiny_config(Family f) {
    ModelConfig c;
    c.family = f;
    c.model_type = f == Family::Llama ? "llama" : f == Family::Qwen2 ? "qwen2" : "qwen3";
    c.vocab_size = 11, c.hidden_size = 8, c.intermediate_size = 12, c.num_layers = 2;
    c.num_heads = 4, c.num_kv_heads = 2, c.head_dim = f == Family::Qwen3 ? 6 : 2;
    c.rms_norm_eps = 1e-6f, c.rope_theta = 10000.0f;
    c.qkv_bias = f == Family::Qwen2, c.qk_norm = f == Family::Qwen3;
    c.tie_word_embeddings = f == Family::Qwen2;
    return c;
}

class ModelGradient : public ::testing::TestWithParam<Family> {};

TEST_P(ModelGradient, MatchesFiniteDifferencesInDouble) {
    ModelConfig c = tiny_config(GetParam());
    CpuModel<double> m(c);
    std::mt19937 gen(7);
    std::normal_distribution<double> nd(0.0, 0.5);
    for (double& p : m.params) p = nd(gen);
    const int B = 2, T = 5;
    std::vector<int> tokens(B * T), targets(B * T);
    for (int i = 0; i < B * T; i++) tokens[i] = int(gen() % c.vocab_size), targets[i] = int(gen() % c.vocab_size);
    targets[3] = -1;  // an ignored position
    m.zero_grad();
    m.forward(tokens.data(), targets.data(), B, T);
    m.backward();
    const std::vector<double> analytic = m.grads;
    const double h = 1e-5;
    for (const ParamInfo& p : m.layout.tensors) {
        for (size_t k = 0; k < std::min<size_t>(p.numel, 6); k++) {
            size_t i = p.offset + (k * 7919) % p.numel;
            double saved = m.params[i];
            m.params[i] = saved + h;
            double up = m.forward(tokens.data(), targets.data(), B, T);
            m.params[i] = saved - h;
            double down = m.forward(tokens.data(), targets.data(), B, T);
            m.params[i] = saved;
            double numeric = (up - down) / (2 * h);
            EXPECT_NEAR(analytic[i], numeric, 1e-7 + 1e-5 * std::fabs(numeric)) << p.name << " element " << i - p.offset;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Families, ModelGradient, ::testing::Values(Family::Llama, Family::Qwen2, Family::Qwen3));

// Relative error of a vs b, scaled by the largest |b| (so tiny entries don't dominate).
double max_rel_error(const float* a, const float* b, size_t n) {
    double err = 0, scale = 1e-12;
    for (size_t i = 0; i < n; i++) err = std::max(err, double(std::fabs(a[i] - b[i]))), scale = std::max(scale, double(std::fabs(b[i])));
    return err / scale;
}

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, LogitsLossAndGradientsMatchPyTorch) {
    const std::string dir = "tests/golden/" + GetParam();
    ModelConfig c = load_config(dir + "/config.json");
    std::unique_ptr<Model> m = make_cpu_model(c);
    load_params(dir, m->layout, m->params());
    SafeTensorsFile g(dir + "/golden.safetensors");
    const TensorView& tv = g.get("tokens");
    const int B = int(tv.shape[0]), T = int(tv.shape[1]), V = c.vocab_size;
    std::vector<int> tokens(B * T), targets(B * T);
    g.read_i32("tokens", {B, T}, tokens.data());
    g.read_i32("targets", {B, T}, targets.data());
    std::vector<float> want_logits(size_t(B) * T * V), want_loss(1);
    g.read("logits", {B, T, V}, want_logits.data());
    g.read("loss", {1}, want_loss.data());

    m->zero_grad();
    float loss = m->forward(tokens.data(), targets.data(), B, T);
    m->backward();
    std::vector<float> logits = m->logits();
    EXPECT_LE(max_rel_error(logits.data(), want_logits.data(), logits.size()), 1e-4) << "logits";
    EXPECT_NEAR(loss, want_loss[0], 1e-4 * std::fabs(want_loss[0])) << "loss";
    for (const ParamInfo& p : m->layout.tensors) {
        std::vector<float> want(p.numel);
        g.read("grad." + p.name, p.shape, want.data());
        EXPECT_LE(max_rel_error(m->grads() + p.offset, want.data(), p.numel), 1e-4) << "gradient of " << p.name;
    }
}

// tools/make_golden.py: f32 single files. tools/make_hf_golden.py: folders shaped like the Hub's
// (bf16, sharded): head_dim 128 with QKV bias, q/k norm with heads x head_dim != hidden and GQA 7,
// Llama 3 untied with GQA 2.
INSTANTIATE_TEST_SUITE_P(Families, Golden, ::testing::Values("llama", "qwen2", "qwen3", "hf_qwen2_hd128", "hf_qwen3_gqa7",
                                                             "hf_llama3_untied"));

// The Hub-shaped goldens really are what they claim: sharded, every weight bf16.
TEST(Golden, HubShapedFoldersAreShardedBf16) {
    for (const char* name : {"hf_qwen2_hd128", "hf_qwen3_gqa7", "hf_llama3_untied"}) {
        const std::string dir = std::string("tests/golden/") + name;
        const auto index = nlohmann::json::parse(read_file(dir + "/model.safetensors.index.json"));
        std::set<std::string> shards;
        for (const auto& [tensor, shard] : index["weight_map"].items()) shards.insert(shard.get<std::string>());
        EXPECT_GE(shards.size(), 2u) << name;
        for (const std::string& shard : shards) {
            const SafeTensorsFile f(dir + "/" + shard);
            for (const TensorView& t : f.tensors()) EXPECT_EQ(t.dtype, DType::BF16) << name << " " << t.name;
        }
    }
}

TEST(Model, RejectsTokensOutsideTheVocabulary) {
    std::unique_ptr<Model> m = make_cpu_model(tiny_config(Family::Llama));
    std::vector<int> tokens = {1, 2, 99};
    EXPECT_THROW(m->forward(tokens.data(), nullptr, 1, 3), Error);
}

}  // namespace
