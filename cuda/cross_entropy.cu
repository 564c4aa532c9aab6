// cross_entropy.cu: LM head + softmax cross-entropy, forward and backward, without ever holding the
// [N x V] logits (for 16k tokens and a 152k vocabulary that would be 10 GB in fp32).
//
// Tokens are processed in chunks of `chunk` rows. Per chunk:
//   1. logits [chunk, V] fp32 = hidden_chunk @ W^T            cuBLASLt (gemm), fp32 output
//   2. softmax_row_stats: one block per row streams the row once with an online logsumexp
//      (running max m, sum of exp(z - m), and for the entropy sum of exp(z - m) z) -> loss, lse
//   3. softmax_rows_to_dlogits: one block per row reads the row again and writes
//      dlogits = dloss (softmax - onehot) as bf16 IN PLACE: row r's bf16 values go to the first
//      half of row r's own fp32 storage (so the bf16 matrix has row stride 2V). No second buffer:
//      the scratch stays chunk * V * 4 bytes.
//   4. dhidden_chunk += dlogits @ W (bf16, beta = 1); dW += dlogits^T @ hidden_chunk (fp32, beta = 1)
// Why the in-place write is safe: a block owns its row and walks it in tiles of kTile elements;
// every thread loads its part of tile i into registers, the block syncs, then stores tile i's bf16
// values. Those land in bytes [2 i kTile, 2 (i + 1) kTile) of the row = fp32 elements
// [i kTile / 2, (i + 1) kTile / 2), all below tile i + 1 (not yet read) and, for i > 0, below
// tile i itself (already read); for tile 0 the sync orders its loads before its stores.
//
// Precision: logits and the softmax statistics are fp32 (sums of ~V / 512 terms per thread, then a
// fixed-order tree), exponentials are expf; only dlogits, the backward GEMMs' operand, is bf16.
// Deterministic: fixed reduction orders and per-call-deterministic cuBLASLt algorithms.
#include "cuda/cross_entropy.cuh"

#include <algorithm>
#include <cmath>
#include <string>

#include "cuda/common.cuh"
#include "cuda/launch.cuh"
#include "cuda/device_buffer.h"
#include "cuda/matmul.cuh"
#include "host/error.h"

namespace rusca::cuda {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kRowThreads = 512;                      // one block per row
constexpr int kPerThread = 8;                         // loads in flight per thread
constexpr int kTile = kRowThreads * kPerThread;       // row elements per step

// Online softmax statistics of a set of logits z: max m, s = sum exp(z - m), t = sum exp(z - m) z.
// An empty set is m = -inf, s = t = 0.
struct SoftmaxAcc {
    float m, s, t;
};

__device__ SoftmaxAcc merge(SoftmaxAcc a, SoftmaxAcc b) {
    if (a.m == -INFINITY) return b;  // also avoids exp(-inf - -inf) = NaN for two empty sets
    if (b.m == -INFINITY) return a;
    const float m = fmaxf(a.m, b.m), ea = expf(a.m - m), eb = expf(b.m - m);
    return {m, a.s * ea + b.s * eb, a.t * ea + b.t * eb};
}

// The whole block's statistics, valid in thread 0: warps first (shuffles), then warp 0 merges the
// warps' results. Fixed order: deterministic.
__device__ SoftmaxAcc block_merge(SoftmaxAcc acc) {
    __shared__ SoftmaxAcc warp_acc[kRowThreads / 32];
    for (int off = 16; off >= 1; off /= 2) {
        SoftmaxAcc o;
        o.m = __shfl_down_sync(0xffffffffu, acc.m, off);
        o.s = __shfl_down_sync(0xffffffffu, acc.s, off);
        o.t = __shfl_down_sync(0xffffffffu, acc.t, off);
        acc = merge(acc, o);
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) warp_acc[warp] = acc;
    __syncthreads();
    if (warp == 0) {
        acc = lane < kRowThreads / 32 ? warp_acc[lane] : SoftmaxAcc{-INFINITY, 0.0f, 0.0f};
        for (int off = 16; off >= 1; off /= 2) {
            SoftmaxAcc o;
            o.m = __shfl_down_sync(0xffffffffu, acc.m, off);
            o.s = __shfl_down_sync(0xffffffffu, acc.s, off);
            o.t = __shfl_down_sync(0xffffffffu, acc.t, off);
            acc = merge(acc, o);
        }
    }
    return acc;
}

// softmax_row_stats: block r owns row r of logits [n, V]. Each thread keeps its own online
// statistics over elements tid, tid + 512, ... (coalesced loads, kPerThread of them in flight).
template <bool kEntropy>
__global__ void __launch_bounds__(kRowThreads)
    softmax_stats_kernel(float* nll, float* logp, float* lse, float* entropy, const float* logits,
                         const int* tokens, int V) {
    const int r = blockIdx.x, tok = tokens[r];
    if (tok < 0) {  // no token: zeros, no work
        if (threadIdx.x == 0) {
            if (nll) nll[r] = 0.0f;
            if (logp) logp[r] = 0.0f;
            if (lse) lse[r] = 0.0f;
            if (entropy) entropy[r] = 0.0f;
        }
        return;
    }
    const float* z = logits + (size_t)r * V;
    SoftmaxAcc acc{-INFINITY, 0.0f, 0.0f};
    for (int base = 0; base < V; base += kTile) {
        float v[kPerThread];
        float tile_max = -INFINITY;
#pragma unroll
        for (int k = 0; k < kPerThread; k++) {
            const int j = base + k * kRowThreads + threadIdx.x;
            v[k] = j < V ? z[j] : -INFINITY;
            tile_max = fmaxf(tile_max, v[k]);
        }
        if (tile_max > acc.m) {  // rescale once per tile, not per element
            const float scale = expf(acc.m - tile_max);  // exp(-inf) = 0 on the first tile
            acc.s *= scale;
            acc.t *= scale;
            acc.m = tile_max;
        }
#pragma unroll
        for (int k = 0; k < kPerThread; k++) {
            if (base + k * kRowThreads + (int)threadIdx.x < V) {
                const float e = expf(v[k] - acc.m);
                acc.s += e;
                if (kEntropy) acc.t += e * v[k];
            }
        }
    }
    acc = block_merge(acc);
    if (threadIdx.x == 0) {
        const float l = acc.m + logf(acc.s);
        const float ztok = tok < V ? z[tok] : NAN;  // a token outside the vocabulary: NaN, loudly
        if (nll) nll[r] = l - ztok;
        if (logp) logp[r] = ztok - l;
        if (lse) lse[r] = tok < V ? l : NAN;
        if (entropy) entropy[r] = l - acc.t / acc.s;
    }
}

// softmax_rows_to_dlogits: block r owns row r; see the top of the file for why writing bf16 over
// the row's own fp32 values is safe with one __syncthreads per tile.
__global__ void __launch_bounds__(kRowThreads)
    dlogits_kernel(float* logits, const float* lse, const int* tokens, const float* gscale, int V) {
    const int r = blockIdx.x, tok = tokens[r];
    float* z = logits + (size_t)r * V;
    bf16* d = reinterpret_cast<bf16*>(z);  // row r of the bf16 result (row stride 2V elements)
    const float g = tok < 0 ? 0.0f : gscale[r];
    if (g == 0.0f) {  // no gradient: zeros, without reading the row
        for (int j = threadIdx.x; j < V; j += kRowThreads) d[j] = __float2bfloat16(0.0f);
        return;
    }
    const float l = lse[r];
    for (int base = 0; base < V; base += kTile) {  // same trip count in every thread (syncs inside)
        float v[kPerThread];
#pragma unroll
        for (int k = 0; k < kPerThread; k++) {
            const int j = base + k * kRowThreads + threadIdx.x;
            v[k] = j < V ? z[j] : 0.0f;
        }
        __syncthreads();  // the whole tile is in registers before any of its bf16 values is stored
#pragma unroll
        for (int k = 0; k < kPerThread; k++) {
            const int j = base + k * kRowThreads + threadIdx.x;
            if (j < V) d[j] = __float2bfloat16(g * (expf(v[k] - l) - (j == tok ? 1.0f : 0.0f)));
        }
    }
}

}  // namespace

int lm_head_token_chunk(int N, int V, int chunk) {
    check(V > 0, "lm_head_token_chunk: V = " + std::to_string(V) + " must be > 0");
    check(chunk >= 0 && chunk % 8 == 0,
          "token chunk = " + std::to_string(chunk) + ": must be a multiple of 8 (or 0 for the default)");
    if (chunk == 0) {
        const size_t fit = kLmHeadScratchBytes / ((size_t)V * sizeof(float));
        chunk = (int)std::max<size_t>(128, std::min<size_t>(fit, 1 << 20) / 128 * 128);
    }
    return std::max(1, std::min(chunk, N));
}

void softmax_row_stats(float* nll, float* logp, float* lse, float* entropy, const float* logits,
                       const int* tokens, int n, int V, cudaStream_t stream) {
    check(n >= 0 && V > 0, "softmax_row_stats: bad sizes n=" + std::to_string(n) + " V=" + std::to_string(V));
    if (n == 0) return;
    if (entropy)
        LAUNCH_KERNEL(softmax_stats_kernel<true>, n, kRowThreads, 0, stream, nll, logp, lse, entropy, logits, tokens,
                      V);
    else
        LAUNCH_KERNEL(softmax_stats_kernel<false>, n, kRowThreads, 0, stream, nll, logp, lse, entropy, logits, tokens,
                      V);
}

void softmax_rows_to_dlogits(float* logits, const float* lse, const int* tokens, const float* gscale,
                             int n, int V, cudaStream_t stream) {
    check(n >= 0 && V > 0, "softmax_rows_to_dlogits: bad sizes n=" + std::to_string(n) + " V=" + std::to_string(V));
    if (n == 0) return;
    LAUNCH_KERNEL(dlogits_kernel, n, kRowThreads, 0, stream, logits, lse, tokens, gscale, V);
}

void lm_head_cross_entropy(float* losses, bf16* dhidden, float* dW, const bf16* hidden, const bf16* W,
                           const int* targets, const float* dloss, int N, int C, int V, int chunk,
                           cudaStream_t stream) {
    check(N >= 0 && C > 0 && V > 0, "lm_head_cross_entropy: bad sizes N=" + std::to_string(N) +
                                        " C=" + std::to_string(C) + " V=" + std::to_string(V));
    check((size_t)2 * V <= (size_t)2147483647, "lm_head_cross_entropy: V too large");
    check(losses && hidden && W && targets, "lm_head_cross_entropy: null input or losses pointer");
    const bool backward = dhidden || dW;
    check(!backward || dloss, "lm_head_cross_entropy: gradients asked for but dloss is null");
    const int tc = lm_head_token_chunk(N, V, chunk);
    if (N == 0) return;

    // scratch: logits [tc, V] fp32 (then dlogits bf16 in place), lse [tc]
    StreamScratch scratch(StreamScratch::piece((size_t)tc * V * sizeof(float)) + StreamScratch::piece(tc * sizeof(float)),
                          stream);
    float* logits = scratch.take<float>((size_t)tc * V);
    float* lse = scratch.take<float>(tc);
    const bf16* dlogits = reinterpret_cast<const bf16*>(logits);  // [n, V], row stride 2V

    for (int n0 = 0; n0 < N; n0 += tc) {
        const int n = std::min(tc, N - n0);
        const bf16* h = hidden + (size_t)n0 * C;
        // logits[n, V] = h[n, C] @ W[V, C]^T
        gemm(logits, true, V, MatRef{h, C, false}, MatRef{W, C, true}, n, V, C, 1.0f, 0.0f, nullptr, stream);
        softmax_row_stats(losses + n0, nullptr, backward ? lse : nullptr, nullptr, logits, targets + n0, n,
                          V, stream);
        if (!backward) continue;
        softmax_rows_to_dlogits(logits, lse, targets + n0, dloss + n0, n, V, stream);
        // dhidden[n, C] += dlogits[n, V] @ W[V, C]
        if (dhidden)
            gemm(dhidden + (size_t)n0 * C, false, C, MatRef{dlogits, 2 * V, false}, MatRef{W, C, false}, n, C,
                 V, 1.0f, 1.0f, nullptr, stream);
        // dW[V, C] += dlogits[n, V]^T @ h[n, C]
        if (dW)
            gemm(dW, true, C, MatRef{dlogits, 2 * V, true}, MatRef{h, C, false}, V, C, n, 1.0f, 1.0f, nullptr,
                 stream);
    }
}

}  // namespace rusca::cuda
