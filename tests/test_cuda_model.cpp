// test_cuda_model.cpp: the CUDA training backend against the CPU reference (which itself matches
// the PyTorch golden files): loss and every parameter gradient on one batch, for each family, and
// 20 AdamW steps whose loss curve follows the CPU one; forward_backward() against forward + backward.
// head_dim is 64, what the flash-attention kernels serve. Skips without a GPU.
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

// forward_backward() runs the LM head once both ways instead of forward + recompute in backward:
// the same loss and the same gradients, bit for bit (the same kernels on the same inputs).
TEST(CudaModel, ForwardBackwardEqualsForwardThenBackward) {
    SKIP_WITHOUT_GPU();
    ModelConfig c = config_for(Family::Qwen2);
    Pair m(c);
    std::vector<int> tokens, targets;
    batch(2, 19, c.vocab_size, 9, tokens, targets);
    m.gpu->zero_grad();
    const float loss = m.gpu->forward(tokens.data(), targets.data(), 2, 19);
    m.gpu->backward();
    const std::vector<float> want(m.gpu->grads(), m.gpu->grads() + m.gpu->layout.total);
    m.gpu->zero_grad();
    EXPECT_EQ(m.gpu->forward_backward(tokens.data(), targets.data(), 2, 19), loss);
    EXPECT_EQ(std::vector<float>(m.gpu->grads(), m.gpu->grads() + m.gpu->layout.total), want);
}

// The inspection paths: final hidden states and logits on the host, as the CPU backend's (bf16).
TEST(CudaModel, HiddenStatesAndLogitsOnTheHostMatchTheCpuBackend) {
    SKIP_WITHOUT_GPU();
    ModelConfig c = config_for(Family::Llama);
    Pair m(c);
    std::vector<int> tokens, targets;
    batch(1, 13, c.vocab_size, 4, tokens, targets);
    auto rel_err = [](const float* got, const float* want, size_t n) {
        double err = 0, scale = 1e-12;
        for (size_t i = 0; i < n; i++)
            err = std::max(err, double(std::fabs(got[i] - want[i]))), scale = std::max(scale, double(std::fabs(want[i])));
        return err / scale;
    };
    const size_t NC = size_t(13) * c.hidden_size;
    const float* h = m.cpu->forward_hidden(tokens.data(), 1, 13);
    const std::vector<float> h_cpu(h, h + NC);
    EXPECT_LE(rel_err(m.gpu->forward_hidden(tokens.data(), 1, 13), h_cpu.data(), NC), 3e-2);
    m.cpu->forward(tokens.data(), nullptr, 1, 13), m.gpu->forward(tokens.data(), nullptr, 1, 13);
    const std::vector<float> l_cpu = m.cpu->logits(), l_gpu = m.gpu->logits();
    ASSERT_EQ(l_gpu.size(), l_cpu.size());
    EXPECT_LE(rel_err(l_gpu.data(), l_cpu.data(), l_cpu.size()), 3e-2);
}

// After a step the device's fp32 master weights are the weights (the host copy is stale until
// download_params, which a checkpoint calls); before any step the uploaded host copy is.
TEST(CudaModel, CheckpointRoundTripThroughTheHost) {
    SKIP_WITHOUT_GPU();
    ModelConfig c = config_for(Family::Llama);
    Pair m(c);
    const size_t n = m.gpu->layout.total;
    const std::vector<float> before(m.gpu->params(), m.gpu->params() + n);
    m.gpu->download_params();
    EXPECT_EQ(std::vector<float>(m.gpu->params(), m.gpu->params() + n), before);
    std::vector<int> tokens, targets;
    batch(2, 9, c.vocab_size, 3, tokens, targets);
    AdamW adam(m.gpu->layout, AdamWConfig{});
    m.gpu->zero_grad();
    ASSERT_TRUE(std::isfinite(m.gpu->forward_backward(tokens.data(), targets.data(), 2, 9)));
    ASSERT_TRUE(std::isfinite(m.gpu->optimizer_step(adam, 1e-2f)));
    m.gpu->download_params();
    const std::vector<float> after(m.gpu->params(), m.gpu->params() + n);
    EXPECT_NE(after, before);
    std::fill(m.gpu->params(), m.gpu->params() + n, 0.0f);
    m.gpu->download_params();
    EXPECT_EQ(std::vector<float>(m.gpu->params(), m.gpu->params() + n), after);
}

}  // namespace
#endif
