// attention.cu: causal grouped-query flash attention, forward and backward, bf16 in and out with fp32
// accumulation, on tensor cores (mma.sync m16n8k16). The twin of host/cpu/attention.cpp; launchers
// are declared in cuda/attention.cuh.
//   q, out, dout, dq [B, T, Hq, D]    k, v, dk, dv [B, T, Hkv, D]    lse, delta [B, Hq, T] fp32
// Query head h reads kv head h / (Hq / Hkv). D is a template parameter (32, 64 or 128).
//
// Why flash attention: the twin keeps the T x T probabilities; at T = 8192 that is 256 MB per head.
// Here no T x T matrix ever exists: scores live in registers, one tile at a time.
//
// Tiles and work split (FlashAttention-2):
// - A block is 4 warps (128 threads). Tiles of 32..128 rows (query rows or key rows) x D are staged
//   in shared memory with rows padded to D + 8 elements, so that the 8 row addresses of an ldmatrix
//   land on 8 different bank groups (no bank conflicts), and every row stays 16-byte aligned.
// - Each warp owns 16 rows (or 2 x 16 in the forward, ForwardTiles) of the block's tile; its slice
//   of every matrix product lives in mma fragments. In the accumulator (C) layout, lane l holds rows
//   l/4 and l/4 + 8 and columns 2*(l%4), 2*(l%4) + 1 of each 16 x 8 piece, so a row's max and sum
//   need only the 4 lanes of a quad.
// - Loads are cp.async (global -> shared without registers) double-buffered: the next key tile (or
//   query tile in the backward) streams in while the current one is multiplied.
//
// Forward, block = (query tile, head, batch): loop over key tiles up to the diagonal, S = Q K^T,
//   online softmax (running max and sum in fp32, in log2 units so exp is exp2), O += P V with P
//   rounded to bf16 as the mma operand. Writes out and lse = logsumexp of the scaled scores.
// Backward, three kernels:
//   1. delta[t] = rowsum(dout[t] * out[t]) (= sum_t2 P dP, the softmax-backward row term).
//   2. dK, dV: block = (key tile, kv head, batch). It loops over the query heads of its group and the
//      query tiles at and after the diagonal, recomputing P^T = exp(K Q^T * scale - lse) and
//      dS^T = P^T (V dO^T - delta); dV += P^T dO, dK += dS^T Q stay in registers. One block owns
//      its dk, dv rows: no atomics, deterministic.
//   3. dQ: block = (query tile, head, batch), loops over key tiles up to the diagonal recomputing P
//      and dS; dQ += dS K in registers. Also deterministic. The price: 7 tile matmuls per (query,
//      key) tile pair instead of FlashAttention-2's 5 with fp32 atomics into dq (+40% FLOPs).
// Outputs of the backward use the twin's += semantics: each thread reads its dq/dk/dv elements, adds
// its fp32 sum and stores bf16.
//
// Performance expectations (not yet measured on a GPU): mma.sync with ldmatrix operand loads and a
// two-stage cp.async pipeline is the FlashAttention-2 recipe without its swizzled layouts and
// register-level tricks; with 16-row warp tiles every B fragment loaded from shared memory feeds
// one or two mmas, so shared-memory bandwidth, not the tensor cores, is the likely limit. Expect
// well below FlashAttention-2 (and far below FlashAttention-3, which uses sm_90's wgmma and TMA).
// cuda/attention_bench.cu measures it; ForwardTiles and the backward's BQ are the knobs to sweep.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "attention.cuh"
#include "common.cuh"
#include "ptx.cuh"
#include "launch.cuh"
#include "host/error.h"

namespace rusca::cuda {
namespace {

using bf16 = __nv_bfloat16;

// The PTX instructions (ldmatrix_x4[_trans], mma_bf16_16816, cp_async_16/4, commit, wait) and
// dynamic_smem() live in cuda/ptx.cuh, with their fragment layouts.

// Two floats as a bf16 pair in one register, lo in the low half (the element with the lower index).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

// ======================================== kernels ========================================

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kRows = 16 * kWarps;  // rows of a tile: 16 per warp
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
// Forward tiling (tuning knobs, see the forward kernel): MT 16-row blocks of query rows per warp
// (1 or 2), BN keys per key tile (a multiple of 16: 32 or 64). Chosen so that no kernel spills
// registers: D = 128 with MT = 2 needs 255 registers and spills ~90 bytes even with BN = 32 (untried
// on a GPU: it may still win, as FlashAttention-2's 128-row tiles do).
template <int D>
struct ForwardTiles {
    static constexpr int MT = D == 128 ? 1 : 2, BN = 64;
};

// Shared-memory row stride (elements) of a [rows, D] bf16 tile: +8 elements (16 bytes) of padding.
template <int D>
__host__ __device__ constexpr int tile_stride() {
    return D + 8;
}

// Copy rows [row0, row0 + ROWS) of one head into a [ROWS, D + 8] shared tile (cp.async, not yet
// committed). g points at row 0 of the head; consecutive rows are ld elements apart (H * D in the
// [B, T, H, D] layout). Rows at or past T are zero-filled, so padded rows never hold NaN.
template <int D, int ROWS>
__device__ __forceinline__ void load_rows_async(bf16* s, const bf16* g, size_t ld, int row0, int T) {
    constexpr int kChunks = D / 8;  // 16-byte chunks per row
    for (int i = threadIdx.x; i < ROWS * kChunks; i += kThreads) {
        const int r = i / kChunks, c = i % kChunks, row = row0 + r;
        const bool valid = row < T;
        cp_async_16(s + r * tile_stride<D>() + c * 8, g + (size_t)(valid ? row : 0) * ld + c * 8, valid);
    }
}

// Copy ROWS consecutive fp32 values g[row0 ..] (lse or delta of one head) to shared; 0 past T.
template <int ROWS>
__device__ __forceinline__ void load_vec_async(float* s, const float* g, int row0, int T) {
    for (int i = threadIdx.x; i < ROWS; i += kThreads) {
        const bool valid = row0 + i < T;
        cp_async_4(s + i, g + (valid ? row0 + i : 0), valid);
    }
}

// acc[m][16 x 8*NT] += A[16m .. 16m+15][16 x 16*KS] * Bm[8*NT x 16*KS]^T for m < MT: MT row blocks of
// 16 (this warp's rows of the row-major bf16 tile A in shared memory, stride lda) times the row-major
// tile Bm (stride ldb), transposed: S = Q K^T, dP = dO V^T. Bm's rows are the mma's n columns, stored
// k-contiguous, so the plain (non-.trans) ldmatrix gives B; each B fragment feeds MT row blocks.
// acc points at MT consecutive [NT][4] accumulators (pass &acc for MT = 1).
template <int MT, int KS, int NT>
__device__ __forceinline__ void warp_mma_abt(float (*acc)[NT][4], const bf16* A, int lda, const bf16* Bm, int ldb) {
    static_assert(NT % 2 == 0, "n tiles come in pairs (one ldmatrix.x4 feeds two mmas)");
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int ks = 0; ks < KS; ks++) {
        uint32_t a[MT][4];  // matrices: rows 0-7 / 8-15 x cols 0-7, then rows 0-7 / 8-15 x cols 8-15
#pragma unroll
        for (int m = 0; m < MT; m++) ldmatrix_x4(a[m], A + (m * 16 + lane % 16) * lda + ks * 16 + (lane / 16) * 8);
#pragma unroll
        for (int np = 0; np < NT / 2; np++) {
            uint32_t b[4];  // matrices: n 0-7 x k 0-7, n 0-7 x k 8-15, n 8-15 x k 0-7, n 8-15 x k 8-15
            ldmatrix_x4(b, Bm + (np * 16 + lane % 8 + (lane / 16) * 8) * ldb + ks * 16 + ((lane / 8) % 2) * 8);
#pragma unroll
            for (int m = 0; m < MT; m++) {
                mma_bf16_16816(acc[m][2 * np], a[m], b[0], b[1]);
                mma_bf16_16816(acc[m][2 * np + 1], a[m], b[2], b[3]);
            }
        }
    }
}

// acc[m][16 x 8*NT] += bf16(P[m])[16 x 16*KS] * Bm[16*KS x 8*NT] for m < MT. P[m] is an fp32
// accumulator of an earlier product (C layout, 2*KS pieces of 16 x 8): the C layout of two
// neighbouring 16x8 pieces is exactly the A layout of one 16x16 operand, so P goes from registers
// straight into the mma, rounded to bf16. Bm is row-major in shared memory (k rows, n contiguous):
// the .trans ldmatrix gives B. Used for O += P V, dV += P^T dO, dK += dS^T Q, dQ += dS K.
template <int MT, int KS, int NT>
__device__ __forceinline__ void warp_mma_pb(float (*acc)[NT][4], const float (*p)[2 * KS][4], const bf16* Bm,
                                            int ldb) {
    static_assert(NT % 2 == 0, "n tiles come in pairs (one ldmatrix.x4 feeds two mmas)");
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int ks = 0; ks < KS; ks++) {
        uint32_t a[MT][4];
#pragma unroll
        for (int m = 0; m < MT; m++) {
            a[m][0] = pack_bf16(p[m][2 * ks][0], p[m][2 * ks][1]);
            a[m][1] = pack_bf16(p[m][2 * ks][2], p[m][2 * ks][3]);
            a[m][2] = pack_bf16(p[m][2 * ks + 1][0], p[m][2 * ks + 1][1]);
            a[m][3] = pack_bf16(p[m][2 * ks + 1][2], p[m][2 * ks + 1][3]);
        }
#pragma unroll
        for (int np = 0; np < NT / 2; np++) {
            uint32_t b[4];  // matrices (k x n): k 0-7 x n 0-7, k 8-15 x n 0-7, k 0-7 x n 8-15, k 8-15 x n 8-15
            ldmatrix_x4_trans(b, Bm + (ks * 16 + lane % 8 + ((lane / 8) % 2) * 8) * ldb + np * 16 + (lane / 16) * 8);
#pragma unroll
            for (int m = 0; m < MT; m++) {
                mma_bf16_16816(acc[m][2 * np], a[m], b[0], b[1]);
                mma_bf16_16816(acc[m][2 * np + 1], a[m], b[2], b[3]);
            }
        }
    }
}

// Max / sum over the 4 lanes of a quad (the lanes that share C-layout rows).
__device__ __forceinline__ float quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// x[row][col .. col+1] += scale * (a, b) for a bf16 row-major array: read, add in fp32, store bf16.
__device__ __forceinline__ void add_pair_bf16(bf16* x, float scale, float a, float b) {
    __nv_bfloat162* p = reinterpret_cast<__nv_bfloat162*>(x);
    const __nv_bfloat162 old = *p;
    *p = __floats2bfloat162_rn(__low2float(old) + scale * a, __high2float(old) + scale * b);
}

// ---- forward ----
// grid (ceil(T / (64 MT)), Hq, B), 128 threads; warp w owns query rows q0 + 16 MT w .. + 16 MT - 1, as
// MT blocks of 16 rows that share every K / V fragment it loads (MT = 2: half the shared-memory
// traffic per mma, FlashAttention-2's 128-row tiles). Key tiles are BN rows (ForwardTiles).
// Shared: Q tile (64 MT rows) + 2 x (K tile, V tile) of BN rows.
// scale_log2 = log2(e) / sqrt(D): scores are kept in log2 units so that exp(x) becomes exp2.
template <int D, int MT, int BN>
__global__ void __launch_bounds__(kThreads)
    attention_forward_kernel(bf16* __restrict__ out, float* __restrict__ lse, const bf16* __restrict__ q,
                             const bf16* __restrict__ k, const bf16* __restrict__ v, int T, int Hq, int Hkv,
                             float scale_log2) {
    constexpr int S = tile_stride<D>(), kTile = BN * S, BM = kRows * MT;
    bf16* sQ = reinterpret_cast<bf16*>(dynamic_smem());
    bf16* sK = sQ + BM * S;     // 2 buffers
    bf16* sV = sK + 2 * kTile;  // 2 buffers

    const int qt = gridDim.x - 1 - blockIdx.x;  // query tile: the longest (last) tiles are scheduled first
    const int h = blockIdx.y, b = blockIdx.z, hk = h / (Hq / Hkv);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const size_t ldq = (size_t)Hq * D, ldk = (size_t)Hkv * D;
    const bf16* qh = q + (size_t)b * T * ldq + (size_t)h * D;
    const bf16* kh = k + (size_t)b * T * ldk + (size_t)hk * D;
    const bf16* vh = v + (size_t)b * T * ldk + (size_t)hk * D;
    const int q0 = qt * BM;
    // Key tiles 0 .. n_kt - 1: up to the one holding the block's last query row (or key T - 1).
    const int n_kt = min(q0 + BM, T + BN - 1) / BN;

    load_rows_async<D, BM>(sQ, qh, ldq, q0, T);
    load_rows_async<D, BN>(sK, kh, ldk, 0, T);
    load_rows_async<D, BN>(sV, vh, ldk, 0, T);
    cp_async_commit();

    // This thread's query rows (C layout): row_lo + 16 m and row_lo + 16 m + 8 for m < MT; index r = 0, 1.
    const int warp_row0 = q0 + warp * 16 * MT;
    const int row_lo = warp_row0 + lane / 4;
    float o[MT][D / 8][4] = {};  // output rows of this warp, unnormalized
    float row_max[MT][2];        // running max of the scores (log2 units)
    float row_sum[MT][2];        // running sum of exp2(score - max) over this lane's columns
#pragma unroll
    for (int m = 0; m < MT; m++) {
        row_max[m][0] = row_max[m][1] = -INFINITY;
        row_sum[m][0] = row_sum[m][1] = 0.0f;
    }

    for (int kt = 0; kt < n_kt; kt++) {
        const bf16* cK = sK + (kt & 1) * kTile;
        const bf16* cV = sV + (kt & 1) * kTile;
        if (kt + 1 < n_kt) {  // prefetch the next key tile into the other buffer
            load_rows_async<D, BN>(sK + ((kt + 1) & 1) * kTile, kh, ldk, (kt + 1) * BN, T);
            load_rows_async<D, BN>(sV + ((kt + 1) & 1) * kTile, vh, ldk, (kt + 1) * BN, T);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();

        float s[MT][BN / 8][4] = {};  // scores of this warp's rows x BN keys
        warp_mma_abt<MT, D / 16, BN / 8>(s, sQ + warp * 16 * MT * S, S, cK, S);

        // Mask future keys and keys past T; only tiles reaching past this warp's first row have them.
        const bool need_mask = (kt + 1) * BN - 1 > warp_row0 || (kt + 1) * BN > T;
        float alpha[MT][2];
#pragma unroll
        for (int m = 0; m < MT; m++) {
            float new_max[2] = {row_max[m][0], row_max[m][1]};
#pragma unroll
            for (int j = 0; j < BN / 8; j++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float x = s[m][j][e] * scale_log2;
                    if (need_mask) {
                        const int key = kt * BN + j * 8 + 2 * (lane % 4) + (e & 1);
                        const int row = row_lo + m * 16 + (e / 2) * 8;
                        if (key > row || key >= T) x = -INFINITY;
                    }
                    s[m][j][e] = x;
                    new_max[e / 2] = fmaxf(new_max[e / 2], x);
                }
            }
            // Key 0 is in tile 0 and visible to every row, so the max is finite from the first tile on;
            // alpha = exp2(-inf) = 0 on the first tile, where o and row_sum are still 0.
            float psum[2] = {0.0f, 0.0f};
#pragma unroll
            for (int r = 0; r < 2; r++) {
                new_max[r] = quad_max(new_max[r]);
                alpha[m][r] = exp2f(row_max[m][r] - new_max[r]);
                row_max[m][r] = new_max[r];
            }
#pragma unroll
            for (int j = 0; j < BN / 8; j++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    s[m][j][e] = exp2f(s[m][j][e] - row_max[m][e / 2]);  // masked: exp2(-inf) = 0
                    psum[e / 2] += s[m][j][e];
                }
            }
#pragma unroll
            for (int r = 0; r < 2; r++) row_sum[m][r] = row_sum[m][r] * alpha[m][r] + psum[r];
#pragma unroll
            for (int j = 0; j < D / 8; j++) {
#pragma unroll
                for (int e = 0; e < 4; e++) o[m][j][e] *= alpha[m][e / 2];
            }
        }
        warp_mma_pb<MT, BN / 16, D / 8>(o, s, cV, S);  // O += P V
        __syncthreads();  // every warp is done with buffer kt & 1 before iteration kt + 1 refills it
    }

    // Normalize and store this lane's columns 2*(lane%4), +1 of each 8-column piece; lse once per row.
#pragma unroll
    for (int m = 0; m < MT; m++) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int row = row_lo + m * 16 + r * 8;
            const float sum = quad_sum(row_sum[m][r]);
            if (row >= T) continue;
            const float inv = 1.0f / sum;
            bf16* orow = out + ((size_t)b * T + row) * ldq + (size_t)h * D + 2 * (lane % 4);
#pragma unroll
            for (int j = 0; j < D / 8; j++) {
                *reinterpret_cast<__nv_bfloat162*>(orow + j * 8) =
                    __floats2bfloat162_rn(o[m][j][2 * r] * inv, o[m][j][2 * r + 1] * inv);
            }
            if (lane % 4 == 0) lse[((size_t)b * Hq + h) * T + row] = (row_max[m][r] + log2f(sum)) * kLn2;
        }
    }
}

// ---- backward 1: delta = rowsum(dout * out) ----
// One warp per (b, t, h) row of D elements; grid ceil(B * T * Hq / 4), 128 threads.
template <int D>
__global__ void __launch_bounds__(kThreads)
    attention_delta_kernel(float* __restrict__ delta, const bf16* __restrict__ dout, const bf16* __restrict__ out,
                           int B, int T, int Hq) {
    const size_t row = (size_t)blockIdx.x * kWarps + threadIdx.x / 32;  // index into [B, T, Hq]
    if (row >= (size_t)B * T * Hq) return;                             // whole warps only
    const int lane = threadIdx.x % 32;
    float sum = 0.0f;
#pragma unroll
    for (int i = 2 * lane; i < D; i += 64) {
        const __nv_bfloat162 a = *reinterpret_cast<const __nv_bfloat162*>(dout + row * D + i);
        const __nv_bfloat162 c = *reinterpret_cast<const __nv_bfloat162*>(out + row * D + i);
        sum += __low2float(a) * __low2float(c) + __high2float(a) * __high2float(c);
    }
#pragma unroll
    for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if (lane == 0) {
        const size_t h = row % Hq, t = (row / Hq) % T, b = row / ((size_t)Hq * T);
        delta[(b * Hq + h) * T + t] = sum;
    }
}

// ---- backward 2: dK, dV ----
// grid (ceil(T / 64), Hkv, B), 128 threads; warp w owns keys k0 + 16w .. k0 + 16w + 15 (its rows of
// the transposed products S^T, P^T, dP^T, dS^T, each [16 keys x BQ queries]).
// Shared: K, V tiles, then 2 x (Q tile, dO tile) of BQ rows, then 2 x (lse, delta) of BQ floats.
// BQ = query rows per step (64 for D = 64; 32 for D = 128 to keep the fp32 dK, dV accumulators of
// 2 x D / 2 registers per thread plus S^T and dP^T within the register budget).
template <int D, int BQ>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dkdv_kernel(bf16* __restrict__ dk, bf16* __restrict__ dv, const bf16* __restrict__ dout,
                                   const bf16* __restrict__ q, const bf16* __restrict__ k,
                                   const bf16* __restrict__ v, const float* __restrict__ lse,
                                   const float* __restrict__ delta, int T, int Hq, int Hkv, float scale_log2,
                                   float scale) {
    constexpr int S = tile_stride<D>(), kTile = kRows * S, qTile = BQ * S;
    bf16* sK = reinterpret_cast<bf16*>(dynamic_smem());
    bf16* sV = sK + kTile;
    bf16* sQ = sV + kTile;       // 2 buffers
    bf16* sdO = sQ + 2 * qTile;  // 2 buffers
    float* sL = reinterpret_cast<float*>(sdO + 2 * qTile);  // 2 buffers of lse
    float* sD = sL + 2 * BQ;                                // 2 buffers of delta

    const int kt = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;
    const int group = Hq / Hkv;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const size_t ldq = (size_t)Hq * D, ldk = (size_t)Hkv * D;
    const bf16* kh = k + (size_t)b * T * ldk + (size_t)hk * D;
    const bf16* vh = v + (size_t)b * T * ldk + (size_t)hk * D;
    const int k0 = kt * kRows;

    // Steps: every (query head of the group, query tile from the one holding key k0 to the last);
    // earlier query rows see none of these keys.
    const int first_qt = k0 / BQ;
    const int per_head = (T + BQ - 1) / BQ - first_qt;
    const int steps = group * per_head;
    auto issue = [&](int step, int buf) {  // start loading step's Q, dO, lse, delta into buffer buf
        const int h = hk * group + step / per_head, qq0 = (first_qt + step % per_head) * BQ;
        const size_t head_off = (size_t)b * T * ldq + (size_t)h * D;
        load_rows_async<D, BQ>(sQ + buf * qTile, q + head_off, ldq, qq0, T);
        load_rows_async<D, BQ>(sdO + buf * qTile, dout + head_off, ldq, qq0, T);
        load_vec_async<BQ>(sL + buf * BQ, lse + ((size_t)b * Hq + h) * T, qq0, T);
        load_vec_async<BQ>(sD + buf * BQ, delta + ((size_t)b * Hq + h) * T, qq0, T);
    };

    load_rows_async<D, kRows>(sK, kh, ldk, k0, T);
    load_rows_async<D, kRows>(sV, vh, ldk, k0, T);
    issue(0, 0);
    cp_async_commit();

    const int key_lo = k0 + warp * 16 + lane / 4;  // this thread's keys (C-layout rows): key_lo, key_lo + 8
    float dk_acc[D / 8][4] = {}, dv_acc[D / 8][4] = {};

    for (int step = 0; step < steps; step++) {
        const int buf = step & 1;
        if (step + 1 < steps) {
            issue(step + 1, buf ^ 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const bf16* cQ = sQ + buf * qTile;
        const bf16* cdO = sdO + buf * qTile;
        const float* cL = sL + buf * BQ;
        const float* cD = sD + buf * BQ;
        const int q0 = (first_qt + step % per_head) * BQ;
        // Only tiles that reach into this key tile (causal) or past T (ragged end) need a mask.
        const bool need_mask = q0 < k0 + kRows || q0 + BQ > T;

        // P^T = exp2(K Q^T * scale_log2 - lse * log2(e)): the forward's probabilities, transposed.
        float pt[BQ / 8][4] = {};
        warp_mma_abt<1, D / 16, BQ / 8>(&pt, sK + warp * 16 * S, S, cQ, S);
#pragma unroll
        for (int j = 0; j < BQ / 8; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int qi = j * 8 + 2 * (lane % 4) + (e & 1);  // query row within the tile
                float p = exp2f(pt[j][e] * scale_log2 - cL[qi] * kLog2e);
                if (need_mask) {
                    const int key = key_lo + (e / 2) * 8;
                    if (key > q0 + qi || q0 + qi >= T) p = 0.0f;  // (set, not multiplied: exp2 may be inf)
                }
                pt[j][e] = p;
            }
        }
        warp_mma_pb<1, BQ / 16, D / 8>(&dv_acc, &pt, cdO, S);  // dV += P^T dO

        // dS^T = P^T (dP^T - delta), dP^T = V dO^T
        float ds[BQ / 8][4] = {};
        warp_mma_abt<1, D / 16, BQ / 8>(&ds, sV + warp * 16 * S, S, cdO, S);
#pragma unroll
        for (int j = 0; j < BQ / 8; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) ds[j][e] = pt[j][e] * (ds[j][e] - cD[j * 8 + 2 * (lane % 4) + (e & 1)]);
        }
        warp_mma_pb<1, BQ / 16, D / 8>(&dk_acc, &ds, cQ, S);  // dK += dS^T Q   (scale applied at the end)
        __syncthreads();  // buffer buf is refilled by the next iteration's prefetch
    }

    // dk += scale * dk_acc, dv += dv_acc for this thread's keys (2 rows x D/4 columns)
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int key = key_lo + r * 8;
        if (key >= T) continue;
        const size_t off = ((size_t)b * T + key) * ldk + (size_t)hk * D + 2 * (lane % 4);
#pragma unroll
        for (int j = 0; j < D / 8; j++) {
            add_pair_bf16(dk + off + j * 8, scale, dk_acc[j][2 * r], dk_acc[j][2 * r + 1]);
            add_pair_bf16(dv + off + j * 8, 1.0f, dv_acc[j][2 * r], dv_acc[j][2 * r + 1]);
        }
    }
}

// ---- backward 3: dQ ----
// grid (ceil(T / 64), Hq, B), 128 threads; warp w owns query rows q0 + 16w .. + 15.
// Shared: Q tile, dO tile, then 2 x (K tile, V tile).
template <int D>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dq_kernel(bf16* __restrict__ dq, const bf16* __restrict__ dout, const bf16* __restrict__ q,
                                 const bf16* __restrict__ k, const bf16* __restrict__ v,
                                 const float* __restrict__ lse, const float* __restrict__ delta, int T, int Hq,
                                 int Hkv, float scale_log2, float scale) {
    constexpr int S = tile_stride<D>(), kTile = kRows * S;
    bf16* sQ = reinterpret_cast<bf16*>(dynamic_smem());
    bf16* sdO = sQ + kTile;
    bf16* sK = sdO + kTile;     // 2 buffers
    bf16* sV = sK + 2 * kTile;  // 2 buffers

    const int qt = gridDim.x - 1 - blockIdx.x;  // longest tiles first, as in the forward
    const int h = blockIdx.y, b = blockIdx.z, hk = h / (Hq / Hkv);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const size_t ldq = (size_t)Hq * D, ldk = (size_t)Hkv * D;
    const size_t head_off = (size_t)b * T * ldq + (size_t)h * D;
    const bf16* kh = k + (size_t)b * T * ldk + (size_t)hk * D;
    const bf16* vh = v + (size_t)b * T * ldk + (size_t)hk * D;
    const int q0 = qt * kRows;

    load_rows_async<D, kRows>(sQ, q + head_off, ldq, q0, T);
    load_rows_async<D, kRows>(sdO, dout + head_off, ldq, q0, T);
    load_rows_async<D, kRows>(sK, kh, ldk, 0, T);
    load_rows_async<D, kRows>(sV, vh, ldk, 0, T);
    cp_async_commit();

    // This thread's rows row_lo, row_lo + 8: their lse (log2 units) and delta; rows past T get 0 and
    // are masked below.
    const int row_lo = q0 + warp * 16 + lane / 4;
    float lse2[2], dlt[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = row_lo + r * 8;
        const size_t i = ((size_t)b * Hq + h) * T + row;
        lse2[r] = row < T ? lse[i] * kLog2e : 0.0f;
        dlt[r] = row < T ? delta[i] : 0.0f;
    }
    float dq_acc[D / 8][4] = {};

    for (int kt = 0; kt <= qt; kt++) {
        const bf16* cK = sK + (kt & 1) * kTile;
        const bf16* cV = sV + (kt & 1) * kTile;
        if (kt < qt) {
            load_rows_async<D, kRows>(sK + ((kt + 1) & 1) * kTile, kh, ldk, (kt + 1) * kRows, T);
            load_rows_async<D, kRows>(sV + ((kt + 1) & 1) * kTile, vh, ldk, (kt + 1) * kRows, T);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();

        float p[kRows / 8][4] = {};  // P = exp2(Q K^T * scale_log2 - lse2), 16 rows x 64 keys
        warp_mma_abt<1, D / 16, kRows / 8>(&p, sQ + warp * 16 * S, S, cK, S);
#pragma unroll
        for (int j = 0; j < kRows / 8; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int key = kt * kRows + j * 8 + 2 * (lane % 4) + (e & 1);
                const int row = row_lo + (e / 2) * 8;
                float x = exp2f(p[j][e] * scale_log2 - lse2[e / 2]);
                if (row >= T || (kt == qt && key > row)) x = 0.0f;
                p[j][e] = x;
            }
        }
        float ds[kRows / 8][4] = {};  // dS = P (dP - delta), dP = dO V^T
        warp_mma_abt<1, D / 16, kRows / 8>(&ds, sdO + warp * 16 * S, S, cV, S);
#pragma unroll
        for (int j = 0; j < kRows / 8; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) ds[j][e] = p[j][e] * (ds[j][e] - dlt[e / 2]);
        }
        warp_mma_pb<1, kRows / 16, D / 8>(&dq_acc, &ds, cK, S);  // dQ += dS K   (scale applied at the end)
        __syncthreads();
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = row_lo + r * 8;
        if (row >= T) continue;
        bf16* dqrow = dq + ((size_t)b * T + row) * ldq + (size_t)h * D + 2 * (lane % 4);
#pragma unroll
        for (int j = 0; j < D / 8; j++) add_pair_bf16(dqrow + j * 8, scale, dq_acc[j][2 * r], dq_acc[j][2 * r + 1]);
    }
}

// ======================================= launchers =======================================

void check_shapes(const char* what, int B, int T, int Hq, int Hkv, int D) {
    const std::string shape = std::string(what) + ": B=" + std::to_string(B) + " T=" + std::to_string(T) +
                              " Hq=" + std::to_string(Hq) + " Hkv=" + std::to_string(Hkv) + " D=" + std::to_string(D);
    check(B >= 1 && T >= 1 && Hq >= 1 && Hkv >= 1, shape + ": sizes must be positive");
    check(Hq % Hkv == 0, shape + ": Hq must be a multiple of Hkv");
    check(D == 32 || D == 64 || D == 128, shape + ": head_dim must be 32, 64 or 128 (the kernels are compiled for those)");
    check(B <= 65535 && Hq <= 65535, shape + ": B and Hq must be at most 65535 (grid limits)");
}

void check_ptr(const void* p, const char* what, const char* name) {
    check(p != nullptr, std::string(what) + ": " + name + " is null");
    check(reinterpret_cast<uintptr_t>(p) % 16 == 0,
          std::string(what) + ": " + name + " must be 16-byte aligned (rows are copied in 16-byte chunks)");
}

// Kernels that need more than the default 48 KB of dynamic shared memory must opt in.
template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
    if (bytes > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

float scale_of(int D) { return (float)(1.0 / std::sqrt((double)D)); }

template <int D>
void forward_impl(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int B, int T, int Hq,
                  int Hkv, cudaStream_t stream) {
    constexpr int MT = ForwardTiles<D>::MT, BN = ForwardTiles<D>::BN;
    const size_t smem = (MT * kRows + 4 * BN) * tile_stride<D>() * sizeof(bf16);  // Q + 2 x (K, V)
    allow_smem(attention_forward_kernel<D, MT, BN>, smem);
    const dim3 grid(ceil_div(T, kRows * MT), Hq, B);
    LAUNCH_KERNEL(attention_forward_kernel<D, MT, BN>, grid, kThreads, smem, stream, out, lse, q, k, v, T, Hq, Hkv,
                  scale_of(D) * kLog2e);
}

template <int D>
void backward_impl(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                   const bf16* out, const float* lse, float* delta, int B, int T, int Hq, int Hkv,
                   cudaStream_t stream) {
    const float scale = scale_of(D), scale_log2 = scale * kLog2e;
    const size_t rows = (size_t)B * T * Hq;
    check(rows <= (size_t)0x7fffffff * kWarps, "attention_backward: B * T * Hq too large for one launch");
    LAUNCH_KERNEL(attention_delta_kernel<D>, (unsigned)((rows + kWarps - 1) / kWarps), kThreads, 0, stream, delta, dout,
                  out, B, T, Hq);

    constexpr int BQ = D == 128 ? 32 : 64;
    const size_t smem_dkdv = (2 * kRows + 4 * BQ) * tile_stride<D>() * sizeof(bf16) + 4 * BQ * sizeof(float);
    allow_smem(attention_backward_dkdv_kernel<D, BQ>, smem_dkdv);
    LAUNCH_KERNEL(attention_backward_dkdv_kernel<D, BQ>, dim3(ceil_div(T, kRows), Hkv, B), kThreads, smem_dkdv, stream,
                  dk, dv, dout, q, k, v, lse, delta, T, Hq, Hkv, scale_log2, scale);

    const size_t smem_dq = 6 * kRows * tile_stride<D>() * sizeof(bf16);  // Q, dO + 2 x (K, V)
    allow_smem(attention_backward_dq_kernel<D>, smem_dq);
    LAUNCH_KERNEL(attention_backward_dq_kernel<D>, dim3(ceil_div(T, kRows), Hq, B), kThreads, smem_dq, stream, dq, dout,
                  q, k, v, lse, delta, T, Hq, Hkv, scale_log2, scale);
}

}  // namespace

void attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int B, int T, int Hq,
                       int Hkv, int D, cudaStream_t stream) {
    const char* what = "cuda::attention_forward";
    check_shapes(what, B, T, Hq, Hkv, D);
    check_ptr(out, what, "out"), check_ptr(lse, what, "lse");
    check_ptr(q, what, "q"), check_ptr(k, what, "k"), check_ptr(v, what, "v");
    if (D == 32) forward_impl<32>(out, lse, q, k, v, B, T, Hq, Hkv, stream);
    else if (D == 64) forward_impl<64>(out, lse, q, k, v, B, T, Hq, Hkv, stream);
    else forward_impl<128>(out, lse, q, k, v, B, T, Hq, Hkv, stream);
}

void attention_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                        const bf16* out, const float* lse, float* delta, int B, int T, int Hq, int Hkv, int D,
                        cudaStream_t stream) {
    const char* what = "cuda::attention_backward";
    check_shapes(what, B, T, Hq, Hkv, D);
    check_ptr(dq, what, "dq"), check_ptr(dk, what, "dk"), check_ptr(dv, what, "dv");
    check_ptr(dout, what, "dout"), check_ptr(q, what, "q"), check_ptr(k, what, "k"), check_ptr(v, what, "v");
    check_ptr(out, what, "out"), check_ptr(lse, what, "lse"), check_ptr(delta, what, "delta");
    if (D == 32) backward_impl<32>(dq, dk, dv, dout, q, k, v, out, lse, delta, B, T, Hq, Hkv, stream);
    else if (D == 64) backward_impl<64>(dq, dk, dv, dout, q, k, v, out, lse, delta, B, T, Hq, Hkv, stream);
    else backward_impl<128>(dq, dk, dv, dout, q, k, v, out, lse, delta, B, T, Hq, Hkv, stream);
}

}  // namespace rusca::cuda
