// rmsnorm.cuh: launchers of cuda/rmsnorm.cu. Twins of rusca::cpu::rmsnorm_forward / rmsnorm_backward
// (host/cpu/ops.h), same argument order plus a trailing stream; and a fused residual-add + RMSNorm
// forward. Host-includable (no kernel syntax).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace rusca::cuda {

// out = x * rstd * w per row of C, rstd = 1 / sqrt(mean(x^2) + eps).
// x, out: [N, C] bf16 (out may alias x); w: [C] bf16; rstd: [N] fp32, saved for the backward.
void rmsnorm_forward(__nv_bfloat16* out, float* rstd, const __nv_bfloat16* x, const __nv_bfloat16* w, int N,
                     int C, float eps, cudaStream_t stream = 0);

// dx += rstd * dout * w - x * rstd^3 * mean(dout * w * x)     dx [N, C] bf16 (+=, read-add-round)
// dw += sum_n dout * x * rstd                                 dw [C] fp32 (+=)
// dw is summed deterministically (fixed row chunks, then the chunk partials in order); its scratch
// (at most 256 x C floats) is allocated stream-ordered with cudaMallocAsync and freed likewise.
void rmsnorm_backward(__nv_bfloat16* dx, float* dw, const __nv_bfloat16* dout, const __nv_bfloat16* x,
                      const __nv_bfloat16* w, const float* rstd, int N, int C, cudaStream_t stream = 0);

// residual_out = a + b (rounded to bf16), out = rmsnorm(residual_out) with rstd saved: the
// pre-norm residual add and the next norm in one pass. The norm reads the bf16-rounded residual, so
// rmsnorm_backward with x = residual_out is its exact backward (through the norm; the add's gradient
// is the identity). All arrays [N, C] bf16 except w [C] bf16 and rstd [N] fp32; residual_out may
// alias a or b (in-place residual stream).
void fused_residual_rmsnorm_forward(__nv_bfloat16* residual_out, __nv_bfloat16* out, float* rstd,
                                    const __nv_bfloat16* a, const __nv_bfloat16* b, const __nv_bfloat16* w,
                                    int N, int C, float eps, cudaStream_t stream = 0);

}  // namespace rusca::cuda
