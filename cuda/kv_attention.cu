// kv_attention.cu: attention of n new query rows over a two-segment KV cache (a shared prefix, then
// the sequence's own rows), the twin of cpu::kv_attention_forward (host/cpu/kv_attention.cpp). This
// is the decode step of the rollout engine (n = 1, many sequences, long contexts) and the scoring
// step of prefix-shared judging (short n).
//
// Why it is built this way (flash-decoding):
//  - A decode query has one row per head, so one block per (query row, kv head) would leave most
//    of the GPU idle on a long context. The keys are split into ranges of kSplitKeys = 256: block
//    (query row, kv head, split) computes, for its range, the running max m, the sum l of
//    exp(s - m) and the unnormalized output o = sum exp(s - m) v, all fp32, into scratch; a second
//    kernel merges the splits of each (row, head) in split order. The split points depend only on
//    the lengths, so results are deterministic and do not depend on the batch. A context of one
//    split skips the scratch and the merge.
//  - GQA: a block serves all query heads of its kv head (up to kMaxGroup = 8; larger groups are
//    sliced across blocks), so each K/V row is read from memory once per group, not once per head.
//  - Inside a block, keys go through shared memory in tiles of TK rows (64; 32 when D > 128):
//    1. scores S[h][j] = q_h . k_j (thread per (head, key) pair), in the log2 domain (q is
//       pre-scaled by log2(e) / sqrt(D)) so exp is one exp2f;
//    2. online softmax, one warp per head: new max, rescale factor, p = exp2(S - m), row sum;
//    3. o[h][d] = o[h][d] * rescale + sum_j p[h][j] v_j[d] (thread per column pair d, 2d+1 of
//       one or more heads).
//    Shared rows are padded by one load vector, so threads reading the same column of
//    consecutive rows hit different banks.
//  - D = 64 and 128 are compiled with D fixed and 16-byte loads; any other even D <= 256 (or
//    pointers not 16-byte aligned) runs the generic kernel: runtime D, 4-byte loads.
//
// Shapes: q, out [rows, Hq, D] (rows = B * n); K/V rows [*, Hkv, D]; query head h reads kv head
// h / (Hq / Hkv). Scratch (splits > 1): o [rows, Hq, splits, D] fp32 + (m, l) [rows, Hq, splits].
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "cuda/common.cuh"
#include "cuda/launch.cuh"
#include "cuda/kv_attention.cuh"
#include "host/error.h"

namespace rusca::cuda {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kThreads = 128;  // 4 warps per block
constexpr int kWarps = kThreads / 32;
constexpr int kMaxGroup = 8;     // query heads per block
constexpr int kSplitKeys = 256;  // keys per split
constexpr int kMaxD = 256;

// Where each sequence's keys live: pools of rows [*, Hkv, D]. With the four arrays null there is
// one sequence whose prefix is rows [0, Lp) and own keys rows [0, Lo).
struct KvSeqs {
    const bf16 *pk, *pv, *ok, *ov;
    const int *prefix_start, *prefix_len, *own_start, *own_len;  // [B], device
    int Lp, Lo;
};

// VEC bf16 values moved as one load: 8 = 16 bytes, 2 = 4 bytes.
template <int VEC>
struct Vec;
template <>
struct Vec<8> {
    using type = uint4;
};
template <>
struct Vec<2> {
    using type = __nv_bfloat162;
};

template <int VEC>
__device__ __forceinline__ void unpack(const typename Vec<VEC>::type& v, float (&f)[VEC]) {
    const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
    for (int k = 0; k < VEC / 2; k++) {
        const float2 x = __bfloat1622float2(pairs[k]);
        f[2 * k] = x.x, f[2 * k + 1] = x.y;
    }
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
    for (int o = 16; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
    for (int o = 16; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

// Grid: x = query row (b * n + i), y = kv head * slices + slice of its query heads, z = key split.
// DT: head dim (0 = runtime D_rt <= 256); VEC: bf16 per load (16-byte loads need D % 8 == 0).
template <int DT, int VEC>
__global__ void __launch_bounds__(kThreads)
    kv_split_kernel(bf16* out, float* part_o, float2* part_ml, const bf16* q, KvSeqs s, int n, int Hq, int Hkv,
                    int D_rt, int splits, float qscale) {
    constexpr int DMAX = DT ? DT : kMaxD;
    constexpr int TK = DMAX <= 128 ? 64 : 32;  // keys per tile
    constexpr int LD = DMAX + VEC;             // shared row stride: one vector of padding
    // PV phase: heads per thread (a thread owns one column pair of heads hf, hf + HP, ...).
    constexpr int NH = DT ? (kMaxGroup * (DT / 2) + kThreads - 1) / kThreads : kMaxGroup;
    using V = typename Vec<VEC>::type;

    const int D = DT ? DT : D_rt, D2 = D / 2;
    const int row = blockIdx.x, b = row / n, i = row - b * n;
    const int G = Hq / Hkv, slices = (G + kMaxGroup - 1) / kMaxGroup;
    const int g = blockIdx.y / slices;
    const int h0 = g * G + (blockIdx.y % slices) * kMaxGroup;  // first query head of this block
    const int GB = min(kMaxGroup, (g + 1) * G - h0);            // query heads of this block
    const int split = blockIdx.z;

    int ps = 0, Lp = s.Lp, os = 0, Lo = s.Lo;
    if (s.prefix_len) ps = s.prefix_start[b], Lp = s.prefix_len[b], os = s.own_start[b], Lo = s.own_len[b];
    const int L = Lp + Lo - n + i + 1;  // keys visible to query i: the prefix, own rows 0 .. Lo - n + i
    const int start = split * kSplitKeys;
    const int end = split == splits - 1 ? L : min(L, start + kSplitKeys);  // the last split takes the rest

    __shared__ __align__(16) bf16 k_s[TK * LD];
    __shared__ __align__(16) bf16 v_s[TK * LD];
    __shared__ __align__(16) float q_s[kMaxGroup * DMAX];
    __shared__ float p_s[kMaxGroup * TK];  // scores, then probabilities, of the tile
    __shared__ float m_s[kMaxGroup], l_s[kMaxGroup], alpha_s[kMaxGroup];

    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const bf16* qrow = q + (size_t(row) * Hq + h0) * D;
    for (int x = tid; x < GB * D; x += kThreads) q_s[(x / D) * DMAX + x % D] = __bfloat162float(qrow[x]) * qscale;
    if (tid < kMaxGroup) m_s[tid] = -INFINITY, l_s[tid] = 0.0f;

    const int HP = DT ? kThreads / (DT / 2) : max(1, kThreads / D2);
    const int dp = tid % D2, hf = tid / D2;
    const bool pv_thread = hf < HP;  // generic D: threads past HP * D2 idle in the PV phase
    float acc[NH][2];
#pragma unroll
    for (int k = 0; k < NH; k++) acc[k][0] = acc[k][1] = 0.0f;
    __syncthreads();

    for (int t0 = start; t0 < end; t0 += TK) {
        const int nk = min(TK, end - t0);
        // 1a. K and V rows t0 .. t0 + nk of kv head g -> shared (key j: prefix rows first, then own)
        const int per_row = D / VEC;
        for (int x = tid; x < nk * per_row; x += kThreads) {
            const int j = x / per_row, c = x - j * per_row, key = t0 + j;
            const bool in_prefix = key < Lp;
            const size_t off = (size_t(in_prefix ? ps + key : os + key - Lp) * Hkv + g) * D + c * VEC;
            *reinterpret_cast<V*>(&k_s[j * LD + c * VEC]) = *reinterpret_cast<const V*>((in_prefix ? s.pk : s.ok) + off);
            *reinterpret_cast<V*>(&v_s[j * LD + c * VEC]) = *reinterpret_cast<const V*>((in_prefix ? s.pv : s.ov) + off);
        }
        __syncthreads();
        // 1b. scores, log2 domain; keys past the range get -inf (probability 0)
        for (int x = tid; x < GB * TK; x += kThreads) {
            const int h = x / TK, j = x - h * TK;
            float dot = -INFINITY;
            if (j < nk) {
                dot = 0.0f;
                const float* qh = q_s + h * DMAX;
                for (int d = 0; d < D; d += VEC) {
                    float kf[VEC];
                    unpack<VEC>(*reinterpret_cast<const V*>(&k_s[j * LD + d]), kf);
#pragma unroll
                    for (int e = 0; e < VEC; e++) dot = fmaf(qh[d + e], kf[e], dot);
                }
            }
            p_s[h * TK + j] = dot;
        }
        __syncthreads();
        // 2. online softmax, one warp per head
        for (int h = warp; h < GB; h += kWarps) {
            const float m_old = m_s[h];
            float tile_max = -INFINITY;
            for (int j = lane; j < TK; j += 32) tile_max = fmaxf(tile_max, p_s[h * TK + j]);
            const float m_new = fmaxf(m_old, warp_max(tile_max));  // finite: the tile has >= 1 key
            float sum = 0.0f;
            for (int j = lane; j < TK; j += 32) {
                const float p = exp2f(p_s[h * TK + j] - m_new);
                p_s[h * TK + j] = p;
                sum += p;
            }
            sum = warp_sum(sum);
            if (lane == 0) {
                const float alpha = exp2f(m_old - m_new);  // 0 on the first tile (m_old = -inf)
                alpha_s[h] = alpha;
                l_s[h] = l_s[h] * alpha + sum;
                m_s[h] = m_new;
            }
        }
        __syncthreads();
        // 3. o = o * alpha + P V, thread per (column pair, heads hf + k * HP)
        if (pv_thread) {
#pragma unroll
            for (int k = 0; k < NH; k++) {
                const int h = hf + k * HP;
                if (h < GB) acc[k][0] *= alpha_s[h], acc[k][1] *= alpha_s[h];
            }
            for (int j = 0; j < nk; j++) {
                const float2 v = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&v_s[j * LD + 2 * dp]));
#pragma unroll
                for (int k = 0; k < NH; k++) {
                    const int h = hf + k * HP;
                    if (h < GB) {
                        const float p = p_s[h * TK + j];
                        acc[k][0] = fmaf(p, v.x, acc[k][0]);
                        acc[k][1] = fmaf(p, v.y, acc[k][1]);
                    }
                }
            }
        }
        __syncthreads();  // before the next tile overwrites k_s, v_s, p_s
    }

    if (splits == 1) {  // the block saw every key: normalize and store
        if (pv_thread) {
#pragma unroll
            for (int k = 0; k < NH; k++) {
                const int h = hf + k * HP;
                if (h >= GB) continue;
                bf16* o = out + (size_t(row) * Hq + h0 + h) * D + 2 * dp;
                o[0] = __float2bfloat16(acc[k][0] / l_s[h]);
                o[1] = __float2bfloat16(acc[k][1] / l_s[h]);
            }
        }
        return;
    }
    // Partial of this split; an empty range (start >= L) leaves m = -inf, l = 0, o = 0.
    if (pv_thread) {
#pragma unroll
        for (int k = 0; k < NH; k++) {
            const int h = hf + k * HP;
            if (h >= GB) continue;
            float* o = part_o + ((size_t(row) * Hq + h0 + h) * splits + split) * D + 2 * dp;
            o[0] = acc[k][0], o[1] = acc[k][1];
        }
    }
    if (tid < GB) part_ml[(size_t(row) * Hq + h0 + tid) * splits + split] = make_float2(m_s[tid], l_s[tid]);
}

// One block per (query row, query head): out = sum_s o_s 2^(m_s - M) / sum_s l_s 2^(m_s - M), over
// the splits in order (deterministic). Empty splits (l = 0) are skipped.
__global__ void kv_combine_kernel(bf16* out, const float* part_o, const float2* part_ml, int D, int splits) {
    const size_t rh = blockIdx.x;  // row * Hq + head
    const float2* ml = part_ml + rh * splits;
    float M = -INFINITY;
    for (int s = 0; s < splits; s++) M = fmaxf(M, ml[s].x);
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float num = 0.0f, den = 0.0f;
        for (int s = 0; s < splits; s++) {
            const float2 x = ml[s];
            if (x.y == 0.0f) continue;
            const float w = exp2f(x.x - M);
            num = fmaf(w, part_o[(rh * splits + s) * D + d], num);
            den = fmaf(w, x.y, den);
        }
        out[rh * D + d] = __float2bfloat16(num / den);
    }
}

// ---- host side ----

constexpr size_t align256(size_t x) { return (x + 255) & ~size_t(255); }

int num_splits(int max_len) { return std::max(1, ceil_div(max_len, kSplitKeys)); }

// Scratch layout for splits > 1: o (fp32) first, then (m, l) pairs at *ml_offset.
size_t scratch_bytes(long long rows, int Hq, int D, int splits, size_t* ml_offset = nullptr) {
    if (splits == 1) return 0;
    const size_t parts = size_t(rows) * Hq * splits;
    const size_t ml = align256(parts * D * sizeof(float));
    if (ml_offset) *ml_offset = ml;
    return align256(ml + parts * sizeof(float2));
}

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

template <int DT, int VEC>
void launch_split(dim3 grid, cudaStream_t stream, bf16* out, float* part_o, float2* part_ml, const bf16* q,
                  const KvSeqs& s, int n, int Hq, int Hkv, int D, int splits, float qscale) {
    LAUNCH_KERNEL(kv_split_kernel<DT, VEC>, grid, kThreads, 0, stream, out, part_o, part_ml, q, s, n, Hq, Hkv, D,
                  splits, qscale);
}

void check_shape(const std::string& who, int n, int Hq, int Hkv, int D) {
    check(n >= 1, who + ": n (new query rows) must be >= 1 (got " + std::to_string(n) + ")");
    check(Hq >= 1 && Hkv >= 1 && Hq % Hkv == 0, who + ": Hq must be a positive multiple of Hkv (got Hq = " +
                                                    std::to_string(Hq) + ", Hkv = " + std::to_string(Hkv) + ")");
    check(D >= 2 && D <= kMaxD && D % 2 == 0,
          who + ": head dim D must be even and in [2, 256] (got " + std::to_string(D) + ")");
}

void kv_attention_launch(const std::string& who, bf16* out, const bf16* q, const KvSeqs& s, int B, int n,
                         int max_len, int Hq, int Hkv, int D, void* workspace, size_t workspace_bytes,
                         cudaStream_t stream) {
    const long long rows = (long long)B * n;
    const int G = Hq / Hkv, slices = (G + kMaxGroup - 1) / kMaxGroup, splits = num_splits(max_len);
    check(rows <= INT32_MAX && rows * Hq <= INT32_MAX, who + ": too many query rows");
    check(splits <= 65535, who + ": context too long (max_len " + std::to_string(max_len) + ")");
    check((long long)Hkv * slices <= 65535, who + ": too many kv heads");
    check(q && out, who + ": q and out must be device pointers, not null");
    const bf16* kv[4] = {s.pk, s.pv, s.ok, s.ov};
    bool fast = D == 64 || D == 128, ok4 = true;
    for (const bf16* p : kv) fast = fast && aligned(p, 16), ok4 = ok4 && aligned(p, 4);
    check(ok4, who + ": K/V pointers must be 4-byte aligned");

    size_t ml_offset = 0;
    const size_t need = scratch_bytes(rows, Hq, D, splits, &ml_offset);
    bool owned = false;
    if (need && !workspace) {
        CUDA_CHECK(cudaMallocAsync(&workspace, need, stream));
        owned = true;
    }
    check(need == 0 || owned || workspace_bytes >= need,
          who + ": workspace of " + std::to_string(workspace_bytes) + " bytes is too small (" + std::to_string(need) +
              " needed: see kv_attention_workspace_bytes)");
    float* part_o = static_cast<float*>(workspace);
    float2* part_ml = need ? reinterpret_cast<float2*>(static_cast<char*>(workspace) + ml_offset) : nullptr;

    const float qscale = float(1.4426950408889634 / std::sqrt(double(D)));  // log2(e) / sqrt(D)
    const dim3 grid(unsigned(rows), unsigned(Hkv * slices), unsigned(splits));
    if (fast && D == 64)
        launch_split<64, 8>(grid, stream, out, part_o, part_ml, q, s, n, Hq, Hkv, D, splits, qscale);
    else if (fast && D == 128)
        launch_split<128, 8>(grid, stream, out, part_o, part_ml, q, s, n, Hq, Hkv, D, splits, qscale);
    else
        launch_split<0, 2>(grid, stream, out, part_o, part_ml, q, s, n, Hq, Hkv, D, splits, qscale);
    if (need) {
        LAUNCH_KERNEL(kv_combine_kernel, unsigned(rows * Hq), D <= 64 ? 64 : 128, 0, stream, out, part_o, part_ml, D,
                      splits);
    }
    if (owned) CUDA_CHECK(cudaFreeAsync(workspace, stream));
}

}  // namespace

void kv_attention_forward(bf16* out, const bf16* q, const bf16* pk, const bf16* pv, int Lp, const bf16* ok,
                          const bf16* ov, int Lo, int n, int Hq, int Hkv, int D, cudaStream_t stream) {
    const std::string who = "cuda::kv_attention_forward";
    check_shape(who, n, Hq, Hkv, D);
    check(Lp >= 0 && Lo >= n, who + ": need Lp >= 0 and Lo >= n (got Lp = " + std::to_string(Lp) +
                                  ", Lo = " + std::to_string(Lo) + ", n = " + std::to_string(n) + ")");
    check(ok && ov && (Lp == 0 || (pk && pv)), who + ": K/V pointers must not be null");
    check((long long)Lp + Lo <= INT32_MAX, who + ": context too long");
    const KvSeqs s{pk, pv, ok, ov, nullptr, nullptr, nullptr, nullptr, Lp, Lo};
    kv_attention_launch(who, out, q, s, 1, n, Lp + Lo, Hq, Hkv, D, nullptr, 0, stream);
}

size_t kv_attention_workspace_bytes(int B, int n, int max_len, int Hq, int D) {
    check(B >= 0 && n >= 1 && max_len >= 1 && Hq >= 1 && D >= 2,
          "cuda::kv_attention_workspace_bytes: need B >= 0, n >= 1, max_len >= 1, Hq >= 1, D >= 2");
    return scratch_bytes((long long)B * n, Hq, D, num_splits(max_len));
}

void kv_attention_forward_batched(bf16* out, const bf16* q, const bf16* pk_pool, const bf16* pv_pool,
                                  const int* prefix_start, const int* prefix_len, const bf16* ok_pool,
                                  const bf16* ov_pool, const int* own_start, const int* own_len, int B, int n,
                                  int max_len, int Hq, int Hkv, int D, void* workspace, size_t workspace_bytes,
                                  cudaStream_t stream) {
    const std::string who = "cuda::kv_attention_forward_batched";
    check_shape(who, n, Hq, Hkv, D);
    check(B >= 0, who + ": B must be >= 0 (got " + std::to_string(B) + ")");
    check(max_len >= 1, who + ": max_len must be >= 1 (got " + std::to_string(max_len) + ")");
    if (B == 0) return;
    check(prefix_start && prefix_len && own_start && own_len,
          who + ": prefix_start, prefix_len, own_start, own_len must be device arrays, not null");
    check(ok_pool && ov_pool, who + ": own K/V pools must not be null");
    const KvSeqs s{pk_pool, pv_pool, ok_pool, ov_pool, prefix_start, prefix_len, own_start, own_len, 0, 0};
    kv_attention_launch(who, out, q, s, B, n, max_len, Hq, Hkv, D, workspace, workspace_bytes, stream);
}

}  // namespace rusca::cuda
