// attention_bench.cuh: timing of the flash-attention kernels (cuda/attention.cu) for `rusca bench
// attention`; the PyTorch baseline on the same shapes is tools/bench_attention_torch.py.
// Host-only declarations: includable from g++-compiled code.
#pragma once

namespace rusca::cuda {

struct AttentionBenchResult {
    int B = 0, T = 0, Hq = 0, Hkv = 0, D = 0, repeats = 0;
    double forward_ms = 0, backward_ms = 0;  // median of `repeats` runs after warm-up (CUDA events)
    // Causal FLOPs: forward 2 * 2 * B * Hq * T * T * D / 2 (QK^T and PV, half of them masked away),
    // backward 2.5 x forward (five matmuls instead of two), the convention of FlashAttention's benchmarks.
    double forward_tflops = 0, backward_tflops = 0;
};

// Times attention_forward and attention_backward (delta + dK/dV + dQ kernels) on random bf16 inputs
// of shape q [B, T, Hq, D], k, v [B, T, Hkv, D] on the current device. Throws rusca::Error on bad
// shapes (as the launchers do) or repeats < 1.
AttentionBenchResult bench_attention(int B, int T, int Hq, int Hkv, int D, int repeats);

}  // namespace rusca::cuda
