// matmul.cuh: bf16 matmuls on cuBLASLt (fp32 math), the twins of cpu::linear_forward and
// cpu::linear_backward (host/cpu/ops.h), plus the general row-major gemm() that the fused LM-head
// losses (cross_entropy.cu, grpo_loss.cu) build on. Host-only declarations: g++ code includes this.
//
// State: one cuBLASLt handle and a cache of heuristic-chosen algorithms per device, created on first
// use and kept until the process exits, and one 32 MiB workspace per stream that runs a GEMM, so
// the trainer's and an engine's streams can run at once. Whoever destroys a stream that ran GEMMs
// calls release_matmul_workspace(stream) first.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace rusca::cuda {

// Frees `stream`'s workspace (after waiting for the stream); a no-op when it has none.
void release_matmul_workspace(cudaStream_t stream);

// out[N, OC] = inp[N, C] @ W[OC, C]^T + bias[OC]     (bias may be nullptr; bias via the cuBLASLt
// epilogue, so out is rounded to bf16 once)
void linear_forward(__nv_bfloat16* out, const __nv_bfloat16* inp, const __nv_bfloat16* W,
                    const __nv_bfloat16* bias, int N, int C, int OC, cudaStream_t stream = 0);

// dinp[N, C] += dout[N, OC] @ W[OC, C]     bf16, accumulated in fp32 and rounded once
// dW[OC, C]  += dout^T @ inp               fp32
// dbias[OC]  += sum_n dout[n, :]           fp32, a deterministic column-sum kernel
// Any of dinp, dW, dbias may be nullptr to skip it (the CPU twin requires dinp and dW).
void linear_backward(__nv_bfloat16* dinp, float* dW, float* dbias, const __nv_bfloat16* dout,
                     const __nv_bfloat16* inp, const __nv_bfloat16* W, int N, int C, int OC,
                     cudaStream_t stream = 0);

// A row-major bf16 operand of gemm(): element (i, j) of op(X) is p[i * ld + j], or p[j * ld + i]
// when trans (then X is stored as the transpose). ld is in elements.
struct MatRef {
    const __nv_bfloat16* p;
    int ld;
    bool trans;
};

// D[M, N] = alpha * op(A)[M, K] @ op(B)[K, N] + beta * D (+ bias[N] added to every row), row-major
// with row stride ldd, fp32 math. D is bf16 (d_fp32 = false) or fp32; bias (bf16) only with bf16 D.
// beta = 0 never reads D (it may hold garbage or NaN). Throws rusca::Error on bad sizes.
void gemm(void* D, bool d_fp32, int ldd, MatRef A, MatRef B, int M, int N, int K, float alpha,
          float beta, const __nv_bfloat16* bias, cudaStream_t stream = 0);

// The same product by a plain CUDA kernel (one thread per output): what gemm() falls back to when
// cuBLASLt offers no algorithm for a layout (it then warns on stderr, once per layout). Public for
// the tests.
void gemm_fallback(void* D, bool d_fp32, int ldd, MatRef A, MatRef B, int M, int N, int K,
                   float alpha, float beta, const __nv_bfloat16* bias, cudaStream_t stream = 0);

}  // namespace rusca::cuda
