// rmsnorm.cu: RMSNorm (Llama / Qwen) forward, backward, and the fused residual-add + RMSNorm forward.
//   out = x * r * w,  r = rstd = 1 / sqrt(mean(x^2) + eps)                       per row of C
//   dx += r * g * w - x * r^3 * mean(g * w * x),  dw += sum_n g * x * r           g = dout
//
// Layout: one warp per row for everything that is per row (forward, fused forward, dx). Lane l
// owns the columns [l*V, l*V + V), [l*V + 32V, ...), ...: V = 8 (16-byte accesses) when C % 8 == 0
// and the pointers are 16-byte aligned, otherwise V = 1. The row statistic (sum of squares, or
// sum of g*w*x) is a per-lane fp32 sum combined with a butterfly shuffle, so every lane holds the
// same bits. A row is read twice (statistic, then output); the second read hits L1/L2.
//
// dw is a sum over all N rows. Float atomics would change its bits run to run, so it is computed
// apart, in two fixed-order kernels:
//   1. rows are cut into fixed chunks (the chunk size depends on N only); block (x, y) sums chunk y
//      for a 32V-wide column tile x into partial[y, :]: thread (tx, ty) owns V columns and the rows
//      ty, ty + 8, ... of the chunk, then the 8 row-slices are added in ty order via shared memory;
//   2. dw[c] += sum over chunks of partial[chunk, c], chunks in order.
// This re-reads x and dout (cheap next to the matmuls around it) and keeps each kernel small.
#include <algorithm>
#include <cstdint>
#include <string>

#include "common.cuh"
#include "launch.cuh"
#include "cuda/pack.cuh"
#include "host/error.h"
#include "rmsnorm.cuh"

namespace rusca::cuda {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kWarpsPerBlock = 4;  // rows per block in the per-row kernels

// Sum over the 32 lanes; every lane gets the same value (a + b == b + a bit for bit).
__device__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

// The row this warp owns, or -1 past the end (uniform across the warp, so shuffles stay safe).
__device__ int warp_row(int N) {
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    return row < N ? row : -1;
}

// One warp per row. x, out: [N, C]; w: [C]; rstd: [N]. out may alias x (each element is read and
// written by the same lane).
template <int V>
__global__ void rmsnorm_forward_kernel(bf16* out, float* rstd, const bf16* x, const bf16* w, int N, int C,
                                       float eps) {
    const int row = warp_row(N);
    if (row < 0) return;
    const int lane = threadIdx.x % 32;
    const bf16* xr = x + (size_t)row * C;
    bf16* outr = out + (size_t)row * C;

    float ss = 0.0f;
    for (int c = lane * V; c < C; c += 32 * V) {
        const Pack<V> xp = load<V>(xr + c);
        for (int k = 0; k < V; k++) {
            const float xv = __bfloat162float(xp.v[k]);
            ss += xv * xv;
        }
    }
    const float r = 1.0f / sqrtf(warp_sum(ss) / C + eps);

    for (int c = lane * V; c < C; c += 32 * V) {
        const Pack<V> xp = load<V>(xr + c), wp = load<V>(w + c);
        Pack<V> op;
        for (int k = 0; k < V; k++)
            op.v[k] = __float2bfloat16(__bfloat162float(xp.v[k]) * r * __bfloat162float(wp.v[k]));
        store<V>(outr + c, op);
    }
    if (lane == 0) rstd[row] = r;
}

// One warp per row: residual_out = bf16(a + b), then the forward above on the rounded residual.
// residual_out may alias a or b: each element is read and written by the same lane.
template <int V>
__global__ void fused_residual_rmsnorm_forward_kernel(bf16* residual_out, bf16* out, float* rstd, const bf16* a,
                                                      const bf16* b, const bf16* w, int N, int C, float eps) {
    const int row = warp_row(N);
    if (row < 0) return;
    const int lane = threadIdx.x % 32;
    const size_t off = (size_t)row * C;

    float ss = 0.0f;
    for (int c = lane * V; c < C; c += 32 * V) {
        const Pack<V> ap = load<V>(a + off + c), bp = load<V>(b + off + c);
        Pack<V> rp;
        for (int k = 0; k < V; k++) {
            rp.v[k] = __float2bfloat16(__bfloat162float(ap.v[k]) + __bfloat162float(bp.v[k]));
            const float xv = __bfloat162float(rp.v[k]);  // the norm sees the stored (rounded) value
            ss += xv * xv;
        }
        store<V>(residual_out + off + c, rp);
    }
    const float r = 1.0f / sqrtf(warp_sum(ss) / C + eps);

    for (int c = lane * V; c < C; c += 32 * V) {  // reads back what this same lane just wrote
        const Pack<V> xp = load<V>(residual_out + off + c), wp = load<V>(w + c);
        Pack<V> op;
        for (int k = 0; k < V; k++)
            op.v[k] = __float2bfloat16(__bfloat162float(xp.v[k]) * r * __bfloat162float(wp.v[k]));
        store<V>(out + off + c, op);
    }
    if (lane == 0) rstd[row] = r;
}

// One warp per row: dx += r * g * w - k * x, k = r^3 * sum(g * w * x) / C.
template <int V>
__global__ void rmsnorm_backward_dx_kernel(bf16* dx, const bf16* dout, const bf16* x, const bf16* w,
                                           const float* rstd, int N, int C) {
    const int row = warp_row(N);
    if (row < 0) return;
    const int lane = threadIdx.x % 32;
    const size_t off = (size_t)row * C;
    const float r = rstd[row];

    float gx = 0.0f;
    for (int c = lane * V; c < C; c += 32 * V) {
        const Pack<V> gp = load<V>(dout + off + c), xp = load<V>(x + off + c), wp = load<V>(w + c);
        for (int k = 0; k < V; k++)
            gx += __bfloat162float(gp.v[k]) * __bfloat162float(wp.v[k]) * __bfloat162float(xp.v[k]);
    }
    const float kx = r * r * r * warp_sum(gx) / C;

    for (int c = lane * V; c < C; c += 32 * V) {
        const Pack<V> gp = load<V>(dout + off + c), xp = load<V>(x + off + c), wp = load<V>(w + c);
        Pack<V> dp = load<V>(dx + off + c);
        for (int k = 0; k < V; k++) {
            const float d = r * __bfloat162float(gp.v[k]) * __bfloat162float(wp.v[k]) -
                            kx * __bfloat162float(xp.v[k]);
            dp.v[k] = __float2bfloat16(__bfloat162float(dp.v[k]) + d);
        }
        store<V>(dx + off + c, dp);
    }
}

constexpr int kDwRowsY = 8;  // threadIdx.y extent of the dw partial kernel

// Block (x, y), threads (32, kDwRowsY): partial[y, c] = sum over rows of chunk y of g * x * r for the
// 32V columns of tile x. Thread (tx, ty) owns columns c0 .. c0 + V and rows ty, ty + 8, ... of the chunk.
template <int V>
__global__ void rmsnorm_backward_dw_partial_kernel(float* partial, const bf16* dout, const bf16* x,
                                                   const float* rstd, int N, int C, int rows_per_chunk) {
    __shared__ float slice[kDwRowsY][32 * V];
    const int c0 = (blockIdx.x * 32 + threadIdx.x) * V;
    const int n0 = blockIdx.y * rows_per_chunk;
    const int n1 = min(N, n0 + rows_per_chunk);

    float acc[V] = {};
    if (c0 < C) {  // C % V == 0, so the whole pack is in range
        for (int n = n0 + threadIdx.y; n < n1; n += kDwRowsY) {
            const Pack<V> gp = load<V>(dout + (size_t)n * C + c0), xp = load<V>(x + (size_t)n * C + c0);
            const float r = rstd[n];
            for (int k = 0; k < V; k++) acc[k] += __bfloat162float(gp.v[k]) * __bfloat162float(xp.v[k]) * r;
        }
    }
    for (int k = 0; k < V; k++) slice[threadIdx.y][threadIdx.x * V + k] = acc[k];
    __syncthreads();
    if (threadIdx.y == 0 && c0 < C) {
        for (int k = 0; k < V; k++) {
            float s = 0.0f;
            for (int y = 0; y < kDwRowsY; y++) s += slice[y][threadIdx.x * V + k];  // fixed order
            partial[(size_t)blockIdx.y * C + c0 + k] = s;
        }
    }
}

// dw[c] += sum_{chunk = 0 .. nchunks-1} partial[chunk, c], one thread per column.
__global__ void rmsnorm_backward_dw_final_kernel(float* dw, const float* partial, int nchunks, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s = 0.0f;
    for (int k = 0; k < nchunks; k++) s += partial[(size_t)k * C + c];
    dw[c] += s;
}

void check_sizes(const char* what, int N, int C) {
    check(N >= 0 && C > 0, std::string(what) + ": bad sizes N=" + std::to_string(N) + " C=" + std::to_string(C));
}

int row_blocks(int N) { return ceil_div(N, kWarpsPerBlock); }

}  // namespace

void rmsnorm_forward(bf16* out, float* rstd, const bf16* x, const bf16* w, int N, int C, float eps,
                     cudaStream_t stream) {
    check_sizes("rmsnorm_forward", N, C);
    if (N == 0) return;
    check(out && rstd && x && w, "rmsnorm_forward: null pointer");
    const int threads = 32 * kWarpsPerBlock;
    if (C % 8 == 0 && aligned(out, 16) && aligned(x, 16) && aligned(w, 16)) {
        LAUNCH_KERNEL(rmsnorm_forward_kernel<8>, row_blocks(N), threads, 0, stream, out, rstd, x, w, N, C, eps);
    } else {
        LAUNCH_KERNEL(rmsnorm_forward_kernel<1>, row_blocks(N), threads, 0, stream, out, rstd, x, w, N, C, eps);
    }
}

void fused_residual_rmsnorm_forward(bf16* residual_out, bf16* out, float* rstd, const bf16* a, const bf16* b,
                                    const bf16* w, int N, int C, float eps, cudaStream_t stream) {
    check_sizes("fused_residual_rmsnorm_forward", N, C);
    if (N == 0) return;
    check(residual_out && out && rstd && a && b && w, "fused_residual_rmsnorm_forward: null pointer");
    const int threads = 32 * kWarpsPerBlock;
    if (C % 8 == 0 && aligned(residual_out, 16) && aligned(out, 16) && aligned(a, 16) && aligned(b, 16) &&
        aligned(w, 16)) {
        LAUNCH_KERNEL(fused_residual_rmsnorm_forward_kernel<8>, row_blocks(N), threads, 0, stream, residual_out, out,
                      rstd, a, b, w, N, C, eps);
    } else {
        LAUNCH_KERNEL(fused_residual_rmsnorm_forward_kernel<1>, row_blocks(N), threads, 0, stream, residual_out, out,
                      rstd, a, b, w, N, C, eps);
    }
}

void rmsnorm_backward(bf16* dx, float* dw, const bf16* dout, const bf16* x, const bf16* w, const float* rstd,
                      int N, int C, cudaStream_t stream) {
    check_sizes("rmsnorm_backward", N, C);
    if (N == 0) return;
    check(dx && dw && dout && x && w && rstd, "rmsnorm_backward: null pointer");

    // dx: one warp per row.
    const int threads = 32 * kWarpsPerBlock;
    if (C % 8 == 0 && aligned(dx, 16) && aligned(dout, 16) && aligned(x, 16) && aligned(w, 16)) {
        LAUNCH_KERNEL(rmsnorm_backward_dx_kernel<8>, row_blocks(N), threads, 0, stream, dx, dout, x, w, rstd, N, C);
    } else {
        LAUNCH_KERNEL(rmsnorm_backward_dx_kernel<1>, row_blocks(N), threads, 0, stream, dx, dout, x, w, rstd, N, C);
    }

    // dw: at most 256 chunks of at least 64 rows; the split depends on N only (determinism).
    const int rows_per_chunk = std::max(64, ceil_div(N, 256));
    const int nchunks = ceil_div(N, rows_per_chunk);
    float* partial = nullptr;
    CUDA_CHECK(cudaMallocAsync(&partial, sizeof(float) * (size_t)nchunks * C, stream));
    const dim3 block(32, kDwRowsY);
    if (C % 2 == 0 && aligned(dout, 4) && aligned(x, 4)) {
        const dim3 grid(ceil_div(C, 64), nchunks);
        LAUNCH_KERNEL(rmsnorm_backward_dw_partial_kernel<2>, grid, block, 0, stream, partial, dout, x, rstd, N, C,
                      rows_per_chunk);
    } else {
        const dim3 grid(ceil_div(C, 32), nchunks);
        LAUNCH_KERNEL(rmsnorm_backward_dw_partial_kernel<1>, grid, block, 0, stream, partial, dout, x, rstd, N, C,
                      rows_per_chunk);
    }
    LAUNCH_KERNEL(rmsnorm_backward_dw_final_kernel, ceil_div(C, 256), 256, 0, stream, dw, partial, nchunks, C);
    CUDA_CHECK(cudaFreeAsync(partial, stream));
}

}  // namespace rusca::cuda
