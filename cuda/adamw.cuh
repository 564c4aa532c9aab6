// adamw.cuh: launchers of cuda/adamw.cu, the optimizer step and the two helpers of gradient
// clipping. Twins of rusca::cpu::adamw_update / sum_squares / scale (host/cpu/ops.h), same argument
// order plus a trailing stream (adamw_update also takes one extra output, below).
// Host-includable (no kernel syntax).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace rusca::cuda {

// AdamW, PyTorch semantics and operation order (as the CPU twin); step counts from 1.
// params (fp32 master weights), grads, m, v: [n] fp32 on the device.
// params_bf16 (EXTRA output, not in the twin): if not nullptr, receives the updated params rounded
// to bf16 ([n]), the copy the forward pass reads; saves a separate conversion pass.
void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int step, __nv_bfloat16* params_bf16,
                  cudaStream_t stream = 0);

// Sum of squares of g[0..n) in double (squares exact in double, summed by CUB's DeviceReduce:
// run-to-run deterministic for a fixed n on the same device). Returns to the host, so it
// synchronizes `stream`.
double sum_squares(const float* g, size_t n, cudaStream_t stream = 0);
// The same, written to out[0] (device memory) without synchronizing: e.g. for an all-reduce of the
// per-rank sums before the norm is taken.
void sum_squares_to_device(double* out, const float* g, size_t n, cudaStream_t stream = 0);

// g *= s   (fp32, n elements), e.g. gradient clipping.
void scale(float* g, size_t n, float s, cudaStream_t stream = 0);

}  // namespace rusca::cuda
