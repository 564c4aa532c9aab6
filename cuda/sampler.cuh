// sampler.cuh: launchers of the GPU token sampler (cuda/sampler.cu), the twin of host/cpu/sampler.h.
// Host-only declarations: g++-compiled code may include this file.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "host/cpu/sampler.h"  // cpu::SamplingParams, and the exact rules both twins follow

namespace rusca::cuda {

// One token per row of logits [B, V] (device), the rules of host/cpu/sampler.h; row b draws with
// counter (seed, seq_ids[b], steps[b]). tokens[B] (device) out; logprobs[B] (device, may be nullptr):
// log softmax(logits / T)[token] of the unfiltered distribution (T = 1 when greedy).
// seq_ids and steps are device arrays [B]. Throws rusca::Error on bad parameters or sizes.
// When top-k (< V) or top-p (< 1) is on and V > 4096, this call needs sort scratch
// (sample_batch_workspace_bytes) and takes it from the stream-ordered allocator
// (cudaMallocAsync / cudaFreeAsync on `stream`); use sample_batch_with_workspace to pass your own.
void sample_batch(int* tokens, float* logprobs, const float* logits, int B, int V,
                  const cpu::SamplingParams& p, uint64_t seed, const uint64_t* seq_ids, const int* steps,
                  cudaStream_t stream = 0);
// The same from bf16 logits (read as their exact float values: the CPU twin on those floats agrees).
void sample_batch(int* tokens, float* logprobs, const __nv_bfloat16* logits, int B, int V,
                  const cpu::SamplingParams& p, uint64_t seed, const uint64_t* seq_ids, const int* steps,
                  cudaStream_t stream = 0);

// Bytes of device scratch sample_batch needs for these sizes and parameters: 0 unless top-k or
// top-p is on and V > 4096; then about 16 * min(B, max(1, 2^24 / V)) * V bytes (two 8-byte sort
// keys per token of the rows sorted at once, at most 256 MiB plus ~V * 16 B) plus CUB's small
// temporary storage. Needs a CUDA device (CUB sizes its temporary storage for it).
size_t sample_batch_workspace_bytes(int B, int V, const cpu::SamplingParams& p);
// sample_batch with caller-owned scratch (workspace: device, 256-byte aligned, at least
// sample_batch_workspace_bytes(B, V, p) bytes; may be nullptr when that is 0). No allocation, so
// it can be captured in a CUDA graph.
void sample_batch_with_workspace(int* tokens, float* logprobs, const float* logits, int B, int V,
                                 const cpu::SamplingParams& p, uint64_t seed, const uint64_t* seq_ids,
                                 const int* steps, void* workspace, size_t workspace_bytes,
                                 cudaStream_t stream = 0);
void sample_batch_with_workspace(int* tokens, float* logprobs, const __nv_bfloat16* logits, int B, int V,
                                 const cpu::SamplingParams& p, uint64_t seed, const uint64_t* seq_ids,
                                 const int* steps, void* workspace, size_t workspace_bytes,
                                 cudaStream_t stream = 0);

// u[i] = cpu::counter_uniform(seed, seq_ids[i], steps[i]) computed on the device, bit for bit
// (all arrays device, n entries). Exposed so the tests can check the two agree exactly.
void counter_uniform_batch(double* u, uint64_t seed, const uint64_t* seq_ids, const uint64_t* steps, int n,
                           cudaStream_t stream = 0);

}  // namespace rusca::cuda
