// memory_plan.h: what a CUDA RL run will hold on the device, added up before anything is allocated,
// against the card's free memory (or a smaller budget), so a run that cannot fit is refused with
// what to change instead of dying in cudaMalloc halfway through a step. Pure arithmetic over the
// model shapes and run options: it builds and is tested without a GPU.
//
// The sizes follow the CUDA backend's allocations: the training model (host/cuda/cuda_model.cpp:
// bf16 weights, fp32 master, gradients and two AdamW moments, the activations of one minibatch,
// the fused loss's logits chunk), the frozen reference (bf16 weights and forward activations), the
// engines (host/cuda/engine_impl.h: bf16 weights unless shared, prefill activations, the KV pool),
// and one cuBLASLt workspace per stream. What remains after everything else is the KV pool's.
#pragma once
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "config.h"

namespace rusca {

// Bytes of the CUDA training model's activation arena for a [B, T] batch (CudaModel::resize).
size_t training_activation_bytes(const ModelConfig& c, int B, int T);

// KV-cache bytes of one token row of a model (keys and values of every layer, bf16).
size_t kv_row_bytes(const ModelConfig& c);

struct RlShape {
    int rollouts = 0;             // prompts x group per step
    int minibatch = 0;            // rollouts per forward/backward (a minibatch, or --micro-batch)
    int max_prefix_tokens = 0;    // longest scaffold + chat-templated prompt a rollout sees
    int max_bare_tokens = 0;      // longest bare prompt (the loss's view)
    int max_new_tokens = 0;
    int max_judge_tokens = 0;     // longest judge prompt (conversation + response + criterion)
    bool reference = false;       // beta > 0
    bool judge_on_device = true;  // false: an external judge (--judge-url), no judge memory here
    int optimizer_shards = 1;     // ZeRO-1 over this many ranks: each holds 1/N of master and moments
};

struct MemoryPlan {
    std::vector<std::pair<std::string, size_t>> items;  // everything but the KV pool
    size_t kv_pool_need = 0;   // policy KV rows of one step's rollouts
    size_t budget = 0;         // free device memory, or the --memory-budget-gb cap
    size_t kv_pool = 0;        // what the plan leaves for the KV pool (0 when it does not fit)
    bool fits = false;
    size_t fixed() const;      // sum of items
    std::string table() const;  // one line per item, the total, the budget
};

MemoryPlan plan_rl_memory(const ModelConfig& policy, const ModelConfig& judge, const RlShape& s, size_t budget);

// Throws Error naming the plan and what to change when it does not fit.
void require_fits(const MemoryPlan& p);

}  // namespace rusca
