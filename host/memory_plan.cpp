// memory_plan.cpp: the device memory of a CUDA RL run, added up (see memory_plan.h).
#include "memory_plan.h"

#include <algorithm>
#include <cstdio>

#include "error.h"
#include "params.h"  // ParamLayout

namespace rusca {

namespace {

constexpr size_t kAlign = 256;
constexpr size_t kMatmulWorkspace = size_t(32) << 20;    // cuda/matmul.cu, one per stream
constexpr size_t kLmHeadScratch = size_t(640) << 20;     // cuda/cross_entropy.cuh kLmHeadScratchBytes
constexpr size_t kPrefillChunkRows = 8192;               // CudaEngineOptions::prefill_chunk_rows
constexpr size_t kJudgePrefixRows = 65536;               // CudaEngineOptions::judge_prefix_rows
constexpr size_t kLogitRows = 512;                       // host/cuda/engine_impl.h

size_t weights_bf16(const ModelConfig& c) { return ParamLayout(c).total * 2; }

// Inference activations for `rows` tokens at once: residual, norm, q, k, v, attention, projection,
// gate, up (bf16), plus the fp32 logits of up to kLogitRows rows.
size_t engine_activation_bytes(const ModelConfig& c, size_t rows) {
    const size_t C = c.hidden_size, F = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
    return rows * (3 * C + 2 * Q + 2 * KV + 2 * F) * 2 + rows * (4 + 4 * c.num_heads) * 4 +
           kLogitRows * size_t(c.vocab_size) * 4;
}

std::string gib(size_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(1ull << 30));
    return buf;
}

}  // namespace

size_t training_activation_bytes(const ModelConfig& c, int B, int T) {
    const size_t N = size_t(B) * T, C = c.hidden_size, F = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
    const size_t Hq = c.num_heads, Hkv = c.num_kv_heads, L = c.num_layers;
    const size_t layer_bf16 = 4 * N * C + 3 * N * Q + 4 * N * KV + 3 * N * F;
    const size_t layer_f32 = 2 * N + N * Hq * 2 + N * Hkv + size_t(B) * Hq * T;
    const size_t rest_bf16 = 2 * N * C + (4 * N * C + 4 * N * Q + 4 * N * KV + 3 * N * F);
    const size_t rest_f32 = N * 3 + size_t(B) * Hq * T;
    const size_t ints = 3 * N;
    return L * (layer_bf16 * 2 + layer_f32 * 4 + 20 * kAlign) + rest_bf16 * 2 + rest_f32 * 4 + ints * 4 + 40 * kAlign;
}

size_t kv_row_bytes(const ModelConfig& c) { return 2 * size_t(c.num_layers) * c.kv_dim() * 2; }

size_t MemoryPlan::fixed() const {
    size_t sum = 0;
    for (const auto& item : items) sum += item.second;
    return sum;
}

std::string MemoryPlan::table() const {
    std::string out = "memory plan (device):\n";
    for (const auto& [what, bytes] : items) out += "  " + what + std::string(what.size() < 32 ? 34 - what.size() : 2, ' ') + gib(bytes) + "\n";
    out += "  KV pool (one step's rollouts)    " + gib(kv_pool_need) + "\n";
    out += "  total                            " + gib(fixed() + kv_pool_need) + " of " + gib(budget) + " available\n";
    return out;
}

MemoryPlan plan_rl_memory(const ModelConfig& policy, const ModelConfig& judge, const RlShape& s, size_t budget) {
    MemoryPlan p;
    const size_t n = ParamLayout(policy).total, shards = size_t(std::max(s.optimizer_shards, 1));
    const int T = s.max_bare_tokens + s.max_new_tokens;
    const size_t loss_rows = size_t(s.minibatch) * T;
    p.items = {
        {"policy weights (bf16, shared)", weights_bf16(policy)},
        {s.optimizer_shards > 1 ? "master weights (fp32, ZeRO-1 1/N)" : "master weights (fp32)", n * 4 / shards},
        {"gradients (fp32)", n * 4},
        {s.optimizer_shards > 1 ? "AdamW moments (fp32, ZeRO-1 1/N)" : "AdamW moments (fp32)", n * 8 / shards},
        {"training activations", training_activation_bytes(policy, s.minibatch, T)},
        {"fused loss logits chunk", std::min(kLmHeadScratch, loss_rows * policy.vocab_size * 4)},
        {"reference (bf16 + activations)",
         s.reference ? weights_bf16(policy) + training_activation_bytes(policy, s.minibatch, T) : 0},
        {"rollout engine activations", engine_activation_bytes(policy, kPrefillChunkRows)},
        {"cuBLASLt workspaces (4 streams)", 4 * kMatmulWorkspace},
    };
    if (s.judge_on_device)
        p.items.insert(p.items.end() - 1,
                       {{"judge weights (bf16)", weights_bf16(judge)},
                        {"judge activations + KV", engine_activation_bytes(judge, kPrefillChunkRows) +
                                                       std::min<size_t>(kJudgePrefixRows, size_t(s.rollouts) * s.max_judge_tokens) *
                                                           kv_row_bytes(judge)}});
    // Every rollout's prefix may differ (the scaffolds do), plus its own generated rows.
    p.kv_pool_need = size_t(s.rollouts) * (s.max_prefix_tokens + s.max_new_tokens) * kv_row_bytes(policy);
    p.budget = budget;
    p.fits = p.fixed() + p.kv_pool_need <= budget;
    p.kv_pool = p.fits ? budget - p.fixed() : 0;
    return p;
}

void require_fits(const MemoryPlan& p) {
    check(p.fits, "this RL run does not fit in device memory: it needs " + gib(p.fixed() + p.kv_pool_need) + " of " +
                      gib(p.budget) + " available. Lower --prompts-per-step or --group (KV pool), --max-new-tokens "
                      "(KV pool, activations), raise --updates-per-step (activations per minibatch), use smaller "
                      "models, or give --micro-batch (activations per forward/backward).\n" + p.table());
}

}  // namespace rusca
