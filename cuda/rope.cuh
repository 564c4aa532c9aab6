// rope.cuh: launchers of cuda/rope.cu, rotary position embedding in the Hugging Face rotate_half
// layout. Twins of rusca::cpu::rope_forward / rope_backward (host/cpu/ops.h), same argument order
// plus a trailing stream. Host-includable (no kernel syntax).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace rusca::cuda {

// Dims (i, i + D/2) of every head rotated by angle pos[n] * theta^(-2i/D).
// x, out: [N, H, D] bf16 (out may alias x); pos: [N] device ints. D even, D <= 512.
void rope_forward(__nv_bfloat16* out, const __nv_bfloat16* x, const int* pos, int N, int H, int D, float theta,
                  cudaStream_t stream = 0);
// dx += R(-angle) dout   (bf16, read-add-round)
void rope_backward(__nv_bfloat16* dx, const __nv_bfloat16* dout, const int* pos, int N, int H, int D,
                   float theta, cudaStream_t stream = 0);

}  // namespace rusca::cuda
