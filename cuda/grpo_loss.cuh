// grpo_loss.cuh: the fused GRPO policy loss through the LM head on the GPU, twin of
// host/cpu/grpo_loss.h (same math, options, metrics and conventions; read that header first).
// Host-only declarations: g++ code includes this.
//
// Differences from the CPU twin, all about layout and chunking:
//  - hidden, W are bf16 and dhidden is bf16 (+=, accumulated in fp32, rounded once per chunk);
//    dW is fp32 (+=); logp, entropy and the per-token arrays are fp32; every array is on the device.
//  - cfg.vocab_chunk / cfg.token_chunk (and grpo_logprobs' chunk arguments) are the CPU's tile sizes
//    and are ignored here. The GPU works on `token_chunk` tokens x the whole vocabulary at a time
//    (the trailing argument: a multiple of 8, or 0 for lm_head_token_chunk's default, 1024 tokens at
//    V = 151936). Extra device memory per call: token_chunk * V * 4 bytes of logits (also reused
//    for the bf16 dlogits) + 8 bytes per chunk token + 24 bytes per token, plus the matmul
//    workspace (32 MiB, shared, persistent). For 16384 tokens and V = 151936: 0.62 GB. The scratch
//    comes from the stream-ordered allocator (cudaMallocAsync) and is freed at the end of the call.
//  - Padding rows cost a GEMM row (their dlogits are zeros), so hidden must be finite everywhere
//    (0 x NaN would reach dW); the twin skips them.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "host/cpu/grpo_loss.h"

namespace rusca::cuda {

// Loss, logp [N] and gradients, as cpu::grpo_loss. Synchronous: it copies tokens, mask and seq to
// the host first (to validate them and compute the aggregation weights, as the twin does) and
// returns the statistics, so it waits for the stream twice. Throws rusca::Error on bad input.
cpu::GrpoLossStats grpo_loss(float* logp, __nv_bfloat16* dhidden, float* dW, const __nv_bfloat16* hidden,
                             const __nv_bfloat16* W, const int* tokens, const float* adv,
                             const float* old_logp, const float* ref_logp, const float* mask, const int* seq,
                             int N, int C, int V, int S, int max_len, const cpu::GrpoLossConfig& cfg,
                             cudaStream_t stream = 0, int token_chunk = 0);

// logp[n] = log_softmax(hidden[n] W^T / temperature)[tokens[n]] (0 where tokens[n] < 0) and its
// softmax's entropy (entropy may be nullptr), as cpu::grpo_logprobs. Asynchronous; the tokens are
// not checked on the host: a token >= V gives NaN. vocab_chunk and cpu_token_chunk are ignored.
void grpo_logprobs(float* logp, float* entropy, const __nv_bfloat16* hidden, const __nv_bfloat16* W,
                   const int* tokens, int N, int C, int V, double temperature, int vocab_chunk,
                   int cpu_token_chunk, cudaStream_t stream = 0, int token_chunk = 0);

}  // namespace rusca::cuda
