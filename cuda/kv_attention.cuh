// kv_attention.cuh: launchers of attention over a two-segment KV cache (cuda/kv_attention.cu), the
// twin of cpu::kv_attention_forward in host/cpu/ops.h. Host-only declarations: g++ code may include it.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace rusca::cuda {

// One sequence, exactly the CPU twin: q, out [n, Hq, D]; shared prefix pk, pv [Lp, Hkv, D] (may be
// null when Lp == 0); own keys ok, ov [Lo, Hkv, D], whose last n rows belong to the queries; query
// i sees every prefix row and own rows 0 .. Lo - n + i. bf16 in and out, fp32 math.
// Needs Lo >= n >= 1, Lp >= 0, Hq % Hkv == 0, D even and <= 256 (64 and 128 are the fast paths),
// K/V pointers 4-byte aligned (16-byte for the fast paths, else the generic kernel runs).
// Contexts longer than 256 keys are split across blocks: the partial results (n * Hq * ceil((Lp +
// Lo) / 256) * (D + 2) floats) go to scratch taken from the stream-ordered allocator
// (cudaMallocAsync / cudaFreeAsync on `stream`). Deterministic: the split points and the merge
// order depend only on the lengths.
void kv_attention_forward(__nv_bfloat16* out, const __nv_bfloat16* q, const __nv_bfloat16* pk,
                          const __nv_bfloat16* pv, int Lp, const __nv_bfloat16* ok, const __nv_bfloat16* ov,
                          int Lo, int n, int Hq, int Hkv, int D, cudaStream_t stream = 0);

// B sequences at once (batched decode, n = 1, or n new tokens each), each with its own prefix and
// own cache, all read from pools of rows [rows, Hkv, D] (one pool pair per layer; the row offsets
// below are the same for every layer):
//   sequence b's prefix = rows [prefix_start[b], prefix_start[b] + prefix_len[b]) of pk_pool/pv_pool
//   (prefix_len[b] may be 0; several sequences may share one prefix), and its own keys = rows
//   [own_start[b], own_start[b] + own_len[b]) of ok_pool/ov_pool (own_len[b] >= n; the last n are
//   the queries'). The pools may be the same arrays. prefix_start, prefix_len, own_start, own_len:
//   int arrays [B] on the DEVICE (a decode step can update them without a host round trip).
// q, out: [B, n, Hq, D]. max_len: a host-side bound on prefix_len[b] + own_len[b], used only to size
// the grid (ceil(max_len / 256) key splits); a longer sequence is still exact, its last split just
// covers the rest. Per-sequence results do not depend on B, on the other sequences, or on max_len as
// long as the bound holds.
// workspace: device scratch of kv_attention_workspace_bytes(B, n, max_len, Hq, D) bytes (256-byte
// aligned), or nullptr to take it from the stream-ordered allocator; 0 bytes when max_len <= 256.
size_t kv_attention_workspace_bytes(int B, int n, int max_len, int Hq, int D);
void kv_attention_forward_batched(__nv_bfloat16* out, const __nv_bfloat16* q, const __nv_bfloat16* pk_pool,
                                  const __nv_bfloat16* pv_pool, const int* prefix_start, const int* prefix_len,
                                  const __nv_bfloat16* ok_pool, const __nv_bfloat16* ov_pool,
                                  const int* own_start, const int* own_len, int B, int n, int max_len, int Hq,
                                  int Hkv, int D, void* workspace = nullptr, size_t workspace_bytes = 0,
                                  cudaStream_t stream = 0);

}  // namespace rusca::cuda
