// model.h: the decoder-only transformer (Llama / Qwen2 / Qwen3) as the trainer sees it.
//
// The trainer talks to `Model`: forward a batch, backward, read the loss, and the flat parameter /
// gradient arrays (one allocation each, offsets from ParamLayout). Backends implement it; the CPU
// backend (CpuModel, host/cpu/cpu_model.cpp) is the readable fp32 reference that CUDA kernels are
// tested against. There is no autograd: each backend's backward is the forward written in reverse.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "optimizer.h"
#include "params.h"

namespace rusca {

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
    virtual void zero_grad() = 0;
    // Final-norm hidden states [B*T, C] of tokens [B, T] (no LM head), and the backward from
    // d(hidden) (adds into the gradients; the LM head's gradient is the caller's to add).
    virtual const float* forward_hidden(const int* tokens, int B, int T) = 0;
    virtual void backward_hidden(const float* dhidden) = 0;
    // Logits [B, T, V] of the last forward, in fp32 on the host.
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
    // (an Error, with nothing updated, when it is not finite).
    virtual float optimizer_step(AdamW& adam, float lr) { return adam.step(params(), grads(), lr); }
    virtual const char* device() const { return "cpu"; }
    // Waits for the device's queued work (timing); the CPU backend is always done.
    virtual void synchronize() {}
};

// Weights drawn like Hugging Face's init: normal(0, std) for matrices, 1 for norms, 0 for biases.
void init_params(const ParamLayout& layout, float* params, uint64_t seed, float std = 0.02f);

// The CPU reference backend (fp32). Its graph is CpuModel<Real> in host/cpu/cpu_model.h.
std::unique_ptr<Model> make_cpu_model(const ModelConfig& c);
// The backend for `device`: "cpu", "cuda" (an Error naming why when CUDA is not built or there is
// no GPU), or "auto" (CUDA when a GPU is present, else the CPU).
std::unique_ptr<Model> make_model(const ModelConfig& c, const std::string& device);
// "cpu" or "cuda" for a --device value (auto: cuda when a GPU is present); an Error naming why
// when cuda is asked for and cannot be had.
std::string resolve_device(const std::string& device);

// A model directory (config.json + safetensors weights) loaded into the CPU backend.
std::unique_ptr<Model> load_cpu_model(const std::string& dir);

}  // namespace rusca
