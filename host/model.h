// model.h: the decoder-only transformer (Llama / Qwen2 / Qwen3) as the trainer sees it.
//
// The trainer talks to `Model`: forward a batch, backward, read the loss, and the flat parameter /
// gradient arrays (one allocation each, offsets from ParamLayout). Backends implement it; the CPU
// backend (CpuModel, host/cpu/cpu_model.cpp) is the readable fp32 reference that CUDA kernels are
// tested against. There is no autograd: each backend's backward is the forward written in reverse.
#pragma once
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm.h"
#include "config.h"
#include "cpu/grpo_loss.h"  // GrpoLossConfig, GrpoLossStats
#include "error.h"
#include "optimizer.h"
#include "params.h"

namespace rusca {

class InferenceEngine;  // host/engine.h

// A GRPO minibatch laid out over the whole [B, T] token grid (row n = b*T + t): the hidden state of
// row n predicts target[n] (< 0: no response token there, mask 0). Keeping the grid's layout means
// the backward needs no scatter; the prompt rows cost the fused loss nothing on the CPU and one
// GEMM row each on the GPU.
struct GrpoBatch {
    int B = 0, T = 0, S = 0, max_len = 0;          // S = sequences (= B), max_len = longest response
    std::vector<int> tokens, target, seq;           // [B*T]
    std::vector<float> adv, mask, old_logp, ref_logp;  // [B*T]; ref_logp empty when beta == 0
    // A device backend's copies of the rows above, made by Model::keep_logprobs (CUDA: adv, mask, seq
    // and the old / reference log-probs, which then never visit the host); null on the CPU.
    std::shared_ptr<void> device;
};

enum class LogpKind { kOld, kReference };

// This rank's part of ZeRO-1's split of the flat parameters (host/data_parallel.h): `world` slices of
// `chunk` elements over the flat array zero-padded to world * chunk; this rank's starts at
// rank * chunk and holds the parameters [lo, hi) (the last ranks' slices are short or empty).
struct ParamShard {
    int rank = 0, world = 1;
    size_t chunk = 0, lo = 0, hi = 0;
};

class Model {
public:
    explicit Model(const ModelConfig& c) : config(c), layout(c) {}
    virtual ~Model() = default;
    const ModelConfig config;
    const ParamLayout layout;

    // Runs the model on tokens [B, T] (positions 0..T-1 in each row). With targets (next-token ids,
    // < 0 = ignored) it returns the mean cross-entropy over the counted positions, else 0.
    virtual float forward(const int* tokens, const int* targets, int B, int T) = 0;
    // Adds d(loss)/d(params) of the last forward into the gradients (call zero_grad first).
    virtual void backward() = 0;
    // forward() and, when the loss is finite, backward(): what a training step needs. A backend may
    // do it in less work (CUDA: the LM head's three vocabulary GEMMs once, not a forward-only pass
    // plus a recomputation); a non-finite loss may then leave gradients that zero_grad() clears.
    virtual float forward_backward(const int* tokens, const int* targets, int B, int T) {
        const float loss = forward(tokens, targets, B, T);
        if (std::isfinite(loss)) backward();
        return loss;
    }
    virtual void zero_grad() = 0;
    // Final-norm hidden states [B*T, C] of tokens [B, T] (no LM head), and the backward from
    // d(hidden) (adds into the gradients; the LM head's gradient is the caller's to add).
    virtual const float* forward_hidden(const int* tokens, int B, int T) = 0;
    virtual void backward_hidden(const float* dhidden) = 0;
    // log pi(target | the tokens before it) at every row of `b` (0 where target < 0), at the
    // sampling temperature, through the fused LM head (never the [rows x V] logits).
    virtual std::vector<float> token_logprobs(const GrpoBatch& b, double temperature) = 0;
    // token_logprobs() kept where grpo_loss_backward() reads them: b.old_logp or b.ref_logp on the
    // host (CPU), or b.device (CUDA: no host round trip). The reference model fills kReference
    // after the policy filled kOld.
    virtual void keep_logprobs(GrpoBatch& b, double temperature, LogpKind kind) {
        (kind == LogpKind::kOld ? b.old_logp : b.ref_logp) = token_logprobs(b, temperature);
    }
    // The fused GRPO loss on `b`, its gradient added into the gradients (call zero_grad first).
    virtual cpu::GrpoLossStats grpo_loss_backward(const GrpoBatch& b, const cpu::GrpoLossConfig& cfg) = 0;
    // Logits [B, T, V] of the last forward, in fp32 on the host (for inspection: the CUDA backend
    // forms them on the host from the device's final hidden states).
    virtual std::vector<float> logits() const = 0;
    // Positions that counted in the last loss.
    virtual long counted_tokens() const = 0;

    // Host fp32 views of parameters and gradients (layout.total floats each).
    virtual float* params() = 0;
    virtual float* grads() = 0;

    // A device backend keeps the weights on the device: after writing params() on the host, call
    // upload_params(); before reading them (to save a checkpoint), download_params(). The same for
    // the optimizer moments, which live in `adam` on the CPU and on the device for CUDA.
    virtual void upload_params() {}
    virtual void download_params() {}
    virtual void upload_optimizer(const AdamW&) {}
    virtual void download_optimizer(AdamW&) {}
    // Global-norm clipping + AdamW on this backend's gradients; returns the norm before clipping
    // (when it is not finite, nothing is updated).
    virtual float optimizer_step(AdamW& adam, float lr) { return adam.step(params(), grads(), lr); }
    // Data parallel on device ranks: scales this rank's gradients by `scale` and sums them over the
    // ranks of `device_comm` in place, where they live (a communicator over device pointers: NCCL),
    // so that optimizer_step() follows with no host round trip. False when this backend's gradients
    // are not on a device (the CPU): the caller reduces grads() over a host communicator instead.
    virtual bool all_reduce_grads(Comm& /*device_comm*/, float /*scale*/) { return false; }
    // ZeRO-1 on device ranks: from now on this backend keeps only the shard's fp32 master weights and
    // AdamW moments, taken from params() and adam's full moments (the weights the kernels read stay
    // whole), upload/download_params and _optimizer move the shard only (adam.m / v then hold
    // hi - lo), and sharded_step() replaces optimizer_step(). False where the backend cannot: the
    // CPU, whose moments DataParallel shards on the host instead.
    virtual bool shard_optimizer(const ParamShard& /*shard*/, const AdamW& /*adam*/) { return false; }
    // The ZeRO-1 step: this rank's gradients scaled by `scale` and reduce-scattered over
    // `device_comm` (null: one rank), the global norm from the slices' sums of squares summed over
    // `host_comm`, clipping, AdamW on the shard, and the bf16 weights all-gathered; returns the norm
    // before clipping (not finite: nothing updated, on every rank).
    virtual float sharded_step(Comm* /*device_comm*/, Comm& /*host_comm*/, float /*scale*/, AdamW& /*adam*/,
                               float /*lr*/) {
        throw Error("sharded_step on a backend that did not shard its optimizer (a rusca bug)");
    }
    virtual const char* device() const { return "cpu"; }
    // The bf16 weights on the device, in ParamLayout order, for an engine to share (nullptr on the
    // CPU). Valid for the model's lifetime; updated in place by optimizer_step().
    virtual const void* device_weights() const { return nullptr; }
    // Waits for the device's queued work (timing); the CPU backend is always done.
    virtual void synchronize() {}
};

// Weights drawn like Hugging Face's init: normal(0, std) for matrices, 1 for norms, 0 for biases.
void init_params(const ParamLayout& layout, float* params, uint64_t seed, float std = 0.02f);

// The CPU reference backend (fp32). Its graph is CpuModel<Real> in host/cpu/cpu_model.h.
std::unique_ptr<Model> make_cpu_model(const ModelConfig& c, bool frozen = false);
// The backend for `device`: "cpu", "cuda" (an Error naming why when CUDA is not built or there is
// no GPU), or "auto" (CUDA when a GPU is present, else the CPU). A frozen model (the RL reference)
// is never trained: it holds no gradients (on CUDA only the bf16 weights: no master copy or moments).
std::unique_ptr<Model> make_model(const ModelConfig& c, const std::string& device, bool frozen = false);
// "cpu" or "cuda" for a --device value (auto: cuda when a GPU is present); an Error naming why
// when cuda is asked for and cannot be had.
std::string resolve_device(const std::string& device);

// A model directory (config.json + safetensors weights) loaded into the CPU backend.
std::unique_ptr<Model> load_cpu_model(const std::string& dir);
// The same on `device` (weights uploaded).
std::unique_ptr<Model> load_model(const std::string& dir, const std::string& device, bool frozen = false);

}  // namespace rusca
