// swiglu.cuh: launchers of cuda/swiglu.cu, the SwiGLU gate of the Llama / Qwen MLP. Twins of
// rusca::cpu::swiglu_forward / swiglu_backward (host/cpu/ops.h), same argument order plus a trailing
// stream. Host-includable (no kernel syntax).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace rusca::cuda {

// out = silu(gate) * up, elementwise over n bf16 values (out may alias gate or up).
void swiglu_forward(__nv_bfloat16* out, const __nv_bfloat16* gate, const __nv_bfloat16* up, size_t n,
                    cudaStream_t stream = 0);
// dup += dout * silu(gate);  dgate += dout * up * silu'(gate)      (bf16, read-add-round)
void swiglu_backward(__nv_bfloat16* dgate, __nv_bfloat16* dup, const __nv_bfloat16* dout,
                     const __nv_bfloat16* gate, const __nv_bfloat16* up, size_t n, cudaStream_t stream = 0);

}  // namespace rusca::cuda
