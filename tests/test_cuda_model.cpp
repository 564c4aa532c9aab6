// test_cuda_model.cpp: the CUDA training backend against the CPU reference (which itself matches
// the PyTorch golden files): loss and every parameter gradient on one batch, for each family, and
// 20 AdamW steps whose loss curve follows the CPU one. head_dim is 64, what the flash-attention
// kernels serve. Skips without a GPU.
#include <gtest/gtest.h>

#include "gpu_test_util.h"

#ifdef RUSCA_CUDA
#include <cmath>

#include "host/model.h"

using namespace rusca;

namespace {

ModelConfig config_for(Family f) {
    ModelConfig c;
    c.family = f;
    c.model_type = f == Family::Llama ? "llama" : f == Family::Qwen2 ? "qwen2" : "qwen3";
    c.vocab_size = 96, c.hidden_size = 128, c.intermediate_size = 160, c.num_layers = 2;
    c.num_heads = 2, c.num_kv_heads = 1, c.head_dim = 64, c.max_position_embeddings = 256;
    c.rope_theta = f == Family::Llama ? 10000.0f : 1e6f;
    c.qkv_bias = f == Family::Qwen2, c.qk_norm = f == Family::Qwen3, c.tie_word_embeddings = f == Family::Qwen2;
    return c;
}

struct Pair {
    std::unique_ptr<Model> cpu, gpu;
    explicit Pair(const ModelConfig& c) : cpu(make_cpu_model(c)), gpu(make_model(c, "cuda")) {
        init_params(cpu->layout, cpu->params(), 5, 0.05f);
        std::copy(cpu->params(), cpu->params() + cpu->layout.total, gpu->params());
        gpu->upload_params();
    }
};

void batch(int B, int T, int V, uint32_t seed, std::vector<int>& tokens, std::vector<int>& targets) {
    std::mt19937 gen(seed);
    tokens.resize(size_t(B) * T), targets.resize(size_t(B) * T);
    for (int& t : tokens) t = int(gen() % V);
    for (int i = 0; i < B * T; i++) targets[i] = (i + 1) % T ? tokens[i + 1] : -1;
    targets[3] = -1;  // an ignored position mid-sequence
}

class CudaModelFamilies : public ::testing::TestWithParam<Family> {};

TEST_P(CudaModelFamilies, LossAndGradientsMatchTheCpuBackend) {
    SKIP_WITHOUT_GPU();
    ModelConfig c = config_for(GetParam());
    Pair m(c);
    std::vector<int> tokens, targets;
    batch(2, 37, c.vocab_size, 1, tokens, targets);  // T = 37: not a multiple of any tile
    for (auto* model : {m.cpu.get(), m.gpu.get()}) model->zero_grad();
    const float cpu_loss = m.cpu->forward(tokens.data(), targets.data(), 2, 37);
    const float gpu_loss = m.gpu->forward(tokens.data(), targets.data(), 2, 37);
    m.cpu->backward(), m.gpu->backward();
    EXPECT_NEAR(gpu_loss, cpu_loss, 2e-2 * cpu_loss);
    const float* g_cpu = m.cpu->grads();
    const float* g_gpu = m.gpu->grads();
    for (const ParamInfo& p : m.cpu->layout.tensors) {
        double err = 0, scale = 1e-12;
        for (size_t i = p.offset; i < p.offset + p.numel; i++) {
            ASSERT_FALSE(std::isnan(g_gpu[i])) << p.name;
            err = std::max(err, double(std::fabs(g_gpu[i] - g_cpu[i]))), scale = std::max(scale, double(std::fabs(g_cpu[i])));
        }
        EXPECT_LE(err / scale, 5e-2) << "gradient of " << p.name;  // bf16 activations
    }
}

TEST_P(CudaModelFamilies, TwentyStepsFollowTheCpuLossCurve) {
    SKIP_WITHOUT_GPU();
    ModelConfig c = config_for(GetParam());
    Pair m(c);
    AdamWConfig cfg;
    AdamW adam_cpu(m.cpu->layout, cfg), adam_gpu(m.gpu->layout, cfg);
    std::vector<int> tokens, targets;
    for (int step = 0; step < 20; step++) {
        batch(4, 64, c.vocab_size, 100 + step % 3, tokens, targets);  // 3 batches, revisited: loss falls
        float losses[2];
        Model* models[2] = {m.cpu.get(), m.gpu.get()};
        AdamW* adams[2] = {&adam_cpu, &adam_gpu};
        for (int k = 0; k < 2; k++) {
            models[k]->zero_grad();
            losses[k] = models[k]->forward(tokens.data(), targets.data(), 4, 64);
            models[k]->backward();
            models[k]->optimizer_step(*adams[k], 3e-3f);
        }
        EXPECT_NEAR(losses[1], losses[0], 0.05 * losses[0]) << "step " << step;
    }
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaModelFamilies, ::testing::Values(Family::Llama, Family::Qwen2, Family::Qwen3));

TEST(CudaModel, CheckpointRoundTripThroughTheHost) {
    SKIP_WITHOUT_GPU();
    ModelConfig c = config_for(Family::Llama);
    Pair m(c);
    std::vector<float> before(m.gpu->params(), m.gpu->params() + m.gpu->layout.total);
    std::fill(m.gpu->params(), m.gpu->params() + m.gpu->layout.total, 0.0f);
    m.gpu->download_params();
    EXPECT_EQ(std::vector<float>(m.gpu->params(), m.gpu->params() + m.gpu->layout.total), before);
}

}  // namespace
#endif
