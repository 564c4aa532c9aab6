// bench_kernels.h: per-kernel GPU benchmarks behind `rusca bench attention` and
// `rusca bench grpo-loss`, each next to its PyTorch baseline run in the same invocation
// (tools/bench_attention_torch.py, tools/bench_grpo_loss_torch.py). In a build without CUDA they
// throw an Error saying so.
#pragma once
#include <string>

namespace rusca {

struct KernelBenchArgs {
    std::string python = "python3", json_out;
    bool no_pytorch = false;
    int repeats = 20;
};

// Causal GQA flash attention forward and backward, TFLOP/s at T = 1024 and 4096, head_dim 64 and 128.
void bench_attention(const KernelBenchArgs& a, int B, int Hq, int Hkv);
// The fused GRPO loss, fwd + bwd: time and extra memory vs the naive PyTorch loss (SPEC: 16384
// tokens, hidden 896, vocab 151936).
void bench_grpo_loss(const KernelBenchArgs& a, int tokens, int hidden, int vocab);

}  // namespace rusca
