// cross_entropy.cuh: the LM head and cross-entropy in one call, without [N x V] logits in memory
// (cross_entropy.cu says how), and the row kernels it shares with grpo_loss.cu.
// Host-only declarations: g++ code includes this.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace rusca::cuda {

// losses[n] = cross-entropy of logits[n] = hidden[n] @ W^T against targets[n]; targets < 0: loss 0,
// no gradient. With dloss given, also the backward of sum_n dloss[n] losses[n]:
//   dhidden[N, C] += dlogits @ W   (bf16)      dW[V, C] += dlogits^T @ hidden   (fp32)
// where dlogits[n] = dloss[n] * (softmax(logits[n]) - onehot(targets[n])).
// hidden [N, C], W [V, C] bf16; targets, losses, dloss [N]. dhidden / dW may be nullptr (both:
// forward only, dloss may then be nullptr). The CPU twin is the composition
//   cpu::linear_forward(logits, hidden, W, nullptr, N, C, V); cpu::cross_entropy_forward(...);
//   cpu::cross_entropy_backward(dlogits, ...); cpu::linear_backward(dhidden, dW, nullptr, dlogits, ...)
// chunk = tokens per chunk, a multiple of 8, or 0 for lm_head_token_chunk's default. Extra device
// memory: chunk * V * 4 bytes of logits + O(chunk), allocated stream-ordered (cudaMallocAsync) for
// the call. hidden must be finite in ignored rows too (their zero dlogits still meet them in dW).
// A target >= V gives a NaN loss (and NaN gradients); the host does not check targets (no sync).
void lm_head_cross_entropy(float* losses, __nv_bfloat16* dhidden, float* dW, const __nv_bfloat16* hidden,
                           const __nv_bfloat16* W, const int* targets, const float* dloss, int N, int C,
                           int V, int chunk = 0, cudaStream_t stream = 0);

// ---- building blocks of the fused LM-head losses (here and grpo_loss.cu) ----

// The token chunk to use: `chunk` (checked: > 0 and a multiple of 8, so every chunk's rows start
// 16-byte aligned) or, for chunk = 0, the largest multiple of 128 tokens whose fp32 logits fit in
// kLmHeadScratchBytes (1024 tokens for Qwen's V = 151936), at least 128; never more than N.
constexpr size_t kLmHeadScratchBytes = size_t(640) << 20;
int lm_head_token_chunk(int N, int V, int chunk);

// Per row r of logits [n, V] (fp32) and its token tokens[r]:
//   lse[r] = logsumexp(logits[r]); nll[r] = lse[r] - logits[r, tokens[r]]; logp[r] = -nll[r];
//   entropy[r] = entropy of softmax(logits[r])
// Rows with tokens[r] < 0 get 0 everywhere and cost no work. Any output may be nullptr.
void softmax_row_stats(float* nll, float* logp, float* lse, float* entropy, const float* logits,
                       const int* tokens, int n, int V, cudaStream_t stream = 0);

// IN PLACE: logits [n, V] fp32 becomes dlogits [n, V] bf16 with row stride 2V (row r's bf16 values
// fill the first half of row r's own fp32 storage), where
//   dlogits[r, v] = gscale[r] * (exp(logits[r, v] - lse[r]) - onehot(tokens[r])[v])
// and rows with tokens[r] < 0 or gscale[r] == 0 are zeros. Feed the result to gemm() as a bf16
// operand with ld = 2V. The fp32 logits are gone afterwards.
void softmax_rows_to_dlogits(float* logits, const float* lse, const int* tokens, const float* gscale,
                             int n, int V, cudaStream_t stream = 0);

}  // namespace rusca::cuda
