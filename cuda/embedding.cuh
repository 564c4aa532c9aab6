// embedding.cuh: launchers of cuda/embedding.cu, the token-embedding lookup and its deterministic
// backward. Twins of rusca::cpu::embedding_forward / embedding_backward (host/cpu/ops.h), same
// argument order plus a trailing stream. Host-includable (no kernel syntax).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace rusca::cuda {

// out[n, :] = wte[tokens[n], :]        out [N, C] bf16, wte [V, C] bf16, tokens [N] (device) in [0, V):
// like the twin, token ids are not range-checked here (V is not passed); the caller validates them.
void embedding_forward(__nv_bfloat16* out, const int* tokens, const __nv_bfloat16* wte, int N, int C,
                       cudaStream_t stream = 0);

// dwte[tokens[n], :] += dout[n, :]     dwte [V, C] fp32 (accumulated), dout [N, C] bf16
// Deterministic (no atomics): the same bits every run, for any number of repeats of a token.
// Allocates its scratch (O(N) ints for the sort, 2 x ceil(N / 128) x C floats) stream-ordered with
// cudaMallocAsync and frees it likewise.
void embedding_backward(float* dwte, const __nv_bfloat16* dout, const int* tokens, int N, int C,
                        cudaStream_t stream = 0);

}  // namespace rusca::cuda
