// attention.cuh: causal grouped-query flash attention on the GPU (kernels in cuda/attention.cu), the
// twin of cpu::attention_forward / cpu::attention_backward (host/cpu/ops.h, host/cpu/attention.cpp).
// Host-only declarations: includable from g++-compiled code.
//
// Layouts as the twin: q, out, dout, dq [B, T, Hq, D] bf16; k, v, dk, dv [B, T, Hkv, D] bf16; query
// head h reads kv head h / (Hq / Hkv); softmax scale 1/sqrt(D); causal. D must be 64 or 128, Hq a
// multiple of Hkv, every pointer 16-byte aligned; anything else throws rusca::Error.
//
// Difference from the twin: instead of the [B, Hq, T, T] probabilities, the forward saves
// lse [B, Hq, T] fp32, the natural-log logsumexp of each row of scaled scores
// (lse = log sum_{t2 <= t} exp(q_t . k_t2 / sqrt(D))), and the backward recomputes P from it.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace rusca::cuda {

// out = softmax(q k^T / sqrt(D), causal) v, written (overwritten) as bf16; lse [B, Hq, T] written.
void attention_forward(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k,
                       const __nv_bfloat16* v, int B, int T, int Hq, int Hkv, int D, cudaStream_t stream = 0);

// dq += dL/dq, dk += dL/dk, dv += dL/dv (read-add-write in fp32, stored bf16: the twin's += semantics;
// zero them first for plain gradients). out and lse are what attention_forward produced for these
// q, k, v. delta [B, Hq, T] fp32 is scratch, overwritten with rowsum(dout * out).
// Deterministic: no atomics, every output element is summed by one thread in a fixed order.
void attention_backward(__nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv, const __nv_bfloat16* dout,
                        const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                        const __nv_bfloat16* out, const float* lse, float* delta, int B, int T, int Hq, int Hkv,
                        int D, cudaStream_t stream = 0);

}  // namespace rusca::cuda
