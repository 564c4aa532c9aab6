// test_memory_plan.cpp: the CUDA RL memory plan's arithmetic (it runs before any allocation, so it
// is checked here without a GPU) and the MFU figures of the step lines.
#include <gtest/gtest.h>

#include "host/error.h"
#include "host/memory_plan.h"
#include "host/mfu.h"
#include "host/params.h"

using namespace rusca;

namespace {

// Qwen2-0.5B's shape (SPEC "Numbers to beat").
ModelConfig qwen2_05b() {
    ModelConfig c;
    c.family = Family::Qwen2, c.model_type = "qwen2";
    c.vocab_size = 151936, c.hidden_size = 896, c.intermediate_size = 4864, c.num_layers = 24;
    c.num_heads = 14, c.num_kv_heads = 2, c.head_dim = 64, c.max_position_embeddings = 32768;
    c.qkv_bias = true, c.tie_word_embeddings = true;
    return c;
}

// 64 prompts x 8 rollouts, forward/backward 16 rollouts at a time (--micro-batch 16).
RlShape paper_batch(int max_new) {
    RlShape s;
    s.rollouts = 64 * 8, s.minibatch = 16, s.max_prefix_tokens = 700, s.max_bare_tokens = 400;
    s.max_new_tokens = max_new, s.max_judge_tokens = 1600, s.reference = true;
    return s;
}

// An external judge (--judge-url) holds nothing on this device: the plan has no judge lines and
// leaves their bytes to the KV pool.
TEST(MemoryPlan, ExternalJudgeTakesNoDeviceMemory) {
    const ModelConfig c = qwen2_05b();
    const size_t h200 = size_t(141) << 30;
    RlShape s = paper_batch(512);
    const MemoryPlan local = plan_rl_memory(c, c, s, h200);
    s.judge_on_device = false;
    const MemoryPlan external = plan_rl_memory(c, c, s, h200);
    size_t judge_bytes = 0;
    for (const auto& [what, bytes] : local.items)
        if (what.rfind("judge", 0) == 0) judge_bytes += bytes;
    for (const auto& [what, bytes] : external.items) EXPECT_NE(what.rfind("judge", 0), 0u) << what;
    ASSERT_GT(judge_bytes, 0u);
    EXPECT_EQ(external.items.size(), local.items.size() - 2);
    EXPECT_EQ(external.fixed() + judge_bytes, local.fixed());
    EXPECT_EQ(external.kv_pool, local.kv_pool + judge_bytes);
}

TEST(MemoryPlan, HalfBillionPolicyAndJudgeFitAnH200AndTheKvPoolGetsTheRest) {
    const ModelConfig c = qwen2_05b();
    const size_t P = ParamLayout(c).total, h200 = size_t(141) << 30;
    const MemoryPlan p = plan_rl_memory(c, c, paper_batch(512), h200);
    ASSERT_TRUE(p.fits) << p.table();
    size_t master = 0, moments = 0;
    for (const auto& [what, bytes] : p.items) {
        if (what.rfind("master", 0) == 0) master = bytes;
        if (what.rfind("AdamW", 0) == 0) moments = bytes;
    }
    EXPECT_EQ(master, 4 * P);
    EXPECT_EQ(moments, 8 * P);
    EXPECT_EQ(p.kv_pool, h200 - p.fixed());
    EXPECT_GE(p.kv_pool, p.kv_pool_need);
    // 512 rollouts x (700 + 512) rows x 24 layers x (k + v) x 128 x bf16
    EXPECT_EQ(p.kv_pool_need, size_t(512) * 1212 * 24 * 2 * 128 * 2);
    EXPECT_NE(p.table().find("KV pool"), std::string::npos);
}

// The issue ZeRO-1 solves: a 7B policy's fp32 master weights and AdamW moments (91 GB) with its
// weights, gradients, reference and judge do not fit one H200; sharded over 8 ranks they do.
TEST(MemoryPlan, SevenBillionPolicyFitsAnH200OnlyWithZeroOne) {
    ModelConfig c = qwen2_05b();  // Qwen2-7B's shape
    c.vocab_size = 152064, c.hidden_size = 3584, c.intermediate_size = 18944, c.num_layers = 28;
    c.num_heads = 28, c.num_kv_heads = 4, c.head_dim = 128, c.tie_word_embeddings = false;
    const size_t P = ParamLayout(c).total, h200 = size_t(141) << 30;
    RlShape s = paper_batch(512);
    s.minibatch = 2;
    const MemoryPlan full = plan_rl_memory(c, qwen2_05b(), s, h200);
    EXPECT_FALSE(full.fits) << full.table();
    s.optimizer_shards = 8;
    const MemoryPlan zero = plan_rl_memory(c, qwen2_05b(), s, h200);
    EXPECT_TRUE(zero.fits) << zero.table();
    EXPECT_EQ(full.fixed() - zero.fixed(), 12 * P - (4 * P / 8 + 8 * P / 8));
    EXPECT_NE(zero.table().find("ZeRO-1 1/N"), std::string::npos) << zero.table();
}

// A whole 256-rollout minibatch in one forward/backward needs ~1 MB of activations per token at this
// shape: hundreds of GB, hence --micro-batch.
TEST(MemoryPlan, WholeMinibatchOfTheHalfBillionModelNeedsMicroBatches) {
    const ModelConfig c = qwen2_05b();
    RlShape s = paper_batch(512);
    s.minibatch = 256;
    const MemoryPlan p = plan_rl_memory(c, c, s, size_t(141) << 30);
    EXPECT_FALSE(p.fits) << p.table();
}

TEST(MemoryPlan, RefusesWithWhatToChange) {
    const ModelConfig c = qwen2_05b();
    const MemoryPlan p = plan_rl_memory(c, c, paper_batch(4096), size_t(24) << 30);
    EXPECT_FALSE(p.fits);
    EXPECT_EQ(p.kv_pool, 0u);
    try {
        require_fits(p);
        FAIL() << "no error";
    } catch (const Error& e) {
        const std::string msg = e.what();
        for (const char* part : {"does not fit", "--prompts-per-step", "--max-new-tokens", "--micro-batch", "KV pool"})
            EXPECT_NE(msg.find(part), std::string::npos) << part << " missing from: " << msg;
    }
}

TEST(MemoryPlan, TrainingActivationsGrowWithTheBatch) {
    const ModelConfig c = qwen2_05b();
    EXPECT_GT(training_activation_bytes(c, 8, 1024), 7 * training_activation_bytes(c, 1, 1024));
    EXPECT_EQ(kv_row_bytes(c), size_t(24) * 2 * 128 * 2);
}

TEST(Mfu, PeakTableAndFlopCount) {
    EXPECT_EQ(peak_bf16_flops("NVIDIA H200"), 989e12);
    EXPECT_EQ(peak_bf16_flops("NVIDIA H100 80GB HBM3"), 989e12);
    EXPECT_EQ(peak_bf16_flops("NVIDIA A100-SXM4-80GB"), 312e12);
    EXPECT_EQ(peak_bf16_flops("Some Future Card"), 0.0) << "unknown cards get no MFU, not a guess";
    EXPECT_EQ(peak_bf16_flops("rusca SIMT emulator (H200 properties)"), 0.0);
    const ModelConfig c = qwen2_05b();
    const double P = double(ParamLayout(c).total);
    EXPECT_DOUBLE_EQ(forward_flops_per_token(c, 1024), 2 * P + 2.0 * 2.0 * 512 * 896 * 24);
}

}  // namespace
