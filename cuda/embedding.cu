// embedding.cu: token embedding lookup (forward) and its scatter-add backward.
//
// Forward: a gather, one block per token row; rows are copied 16 bytes (8 bf16) at a time when the
// row length and the pointers allow it, otherwise element by element.
//
// Backward: dwte[tokens[n], :] += dout[n, :]. Repeated tokens land on the same dwte row, and float
// atomics would make the sum order (hence the bits) change from run to run. Instead:
//   1. sort the pairs (token, position) by token with CUB's radix sort (stable: within one token the
//      positions stay in increasing order). Equal tokens now form runs of consecutive slots;
//   2. cut the sorted slots into fixed chunks of kChunk. Block (k, y) owns chunk k and a column tile y
//      (one column per thread); it sums each run's rows inside the chunk in slot order. A run that
//      lies wholly inside the chunk is added straight into dwte; the piece of a run that crosses the
//      chunk's start goes to head[k], the piece that crosses its end to tail[k];
//   3. for each run that crosses chunk boundaries, the block of its first chunk adds
//      tail[first] + head[first + 1] + ... + head[last] in chunk order, then into dwte.
// Every dwte element is written by one thread, after sums in an order fixed by the tokens alone, so
// the result is the same bits run after run (no atomics). Chunking keeps a hot token (say padding,
// half of the batch) spread over many blocks instead of one long serial loop. Dependent loads
// (position -> dout row) are issued 8 at a time so their latencies overlap.
#include <cub/device/device_radix_sort.cuh>

#include <cstdint>

#include "common.cuh"
#include "launch.cuh"
#include "cuda/pack.cuh"
#include "embedding.cuh"
#include "host/error.h"

namespace rusca::cuda {
namespace {

using bf16 = __nv_bfloat16;

// Block n copies row tokens[n] of wte into row n of out, V elements per thread step (C % V == 0).
template <int V>
__global__ void embedding_forward_kernel(bf16* out, const int* tokens, const bf16* wte, int C) {
    const int n = blockIdx.x;
    const Pack<V>* src = reinterpret_cast<const Pack<V>*>(wte + (size_t)tokens[n] * C);
    Pack<V>* dst = reinterpret_cast<Pack<V>*>(out + (size_t)n * C);
    for (int p = threadIdx.x; p < C / V; p += blockDim.x) dst[p] = src[p];
}

// pos[i] = i: the values sorted along with the tokens.
__global__ void iota_kernel(int* pos, int N) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < N) pos[i] = i;
}

constexpr int kChunk = 128;  // sorted slots per chunk (fixed: the sum order depends on it)
constexpr int kBatch = 8;    // loads in flight per thread

// Step 2. grid (nchunks, ceil(C / blockDim.x)). sorted_tok / sorted_pos [N]: tokens sorted stably and
// their positions. head / tail: [nchunks, C] pieces of runs crossing the chunk's start / end.
__global__ void embedding_backward_chunk_kernel(float* dwte, float* head, float* tail, const bf16* dout,
                                                const int* sorted_tok, const int* sorted_pos, int N, int C) {
    __shared__ int tok[kChunk], pos[kChunk];  // this chunk's slots, shared by all columns
    const int k = blockIdx.x;
    const int s0 = k * kChunk, n = min(N - s0, kChunk);
    for (int j = threadIdx.x; j < n; j += blockDim.x) tok[j] = sorted_tok[s0 + j], pos[j] = sorted_pos[s0 + j];
    __syncthreads();
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;

    // Does the first piece continue a run from the previous chunk, the last one into the next?
    const bool first_continues = s0 > 0 && sorted_tok[s0 - 1] == tok[0];
    const bool last_continues = s0 + n < N && sorted_tok[s0 + n] == tok[n - 1];
    float acc = 0.0f;
    int piece_start = 0;
    for (int j0 = 0; j0 < n; j0 += kBatch) {
        float g[kBatch];
        for (int u = 0; u < kBatch; u++)  // independent loads, all in flight together
            g[u] = j0 + u < n ? __bfloat162float(dout[(size_t)pos[j0 + u] * C + c]) : 0.0f;
        for (int u = 0; u < kBatch && j0 + u < n; u++) {
            const int j = j0 + u;
            acc += g[u];  // slot order = position order within a token
            if (j + 1 < n && tok[j + 1] == tok[j]) continue;  // the piece goes on
            // The piece [piece_start, j] ends here.
            if (piece_start == 0 && first_continues) {
                head[(size_t)k * C + c] = acc;
            } else if (j + 1 == n && last_continues) {
                tail[(size_t)k * C + c] = acc;
            } else {
                dwte[(size_t)tok[j] * C + c] += acc;  // the whole run is in this chunk
            }
            acc = 0.0f;
            piece_start = j + 1;
        }
    }
}

// Step 3. grid (nchunks, ceil(C / blockDim.x)). Block k works only if the last run of chunk k starts
// in chunk k and goes on past it; thread x adds, for its column, tail[k] and the heads of the chunks
// the run reaches, in chunk order.
__global__ void embedding_backward_join_kernel(float* dwte, const float* head, const float* tail,
                                               const int* sorted_tok, int N, int C) {
    const int k = blockIdx.x, nchunks = gridDim.x;
    const int s0 = k * kChunk, s1 = min(N, s0 + kChunk);
    const int tok = sorted_tok[s1 - 1];
    const bool continues = s1 < N && sorted_tok[s1] == tok;
    const bool starts_here = s0 == 0 || sorted_tok[s0 - 1] != tok;
    if (!continues || !starts_here) return;
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;

    float acc = tail[(size_t)k * C + c];
    bool more = true;
    for (int k0 = k + 1; more; k0 += kBatch) {
        float h[kBatch];
        bool goes_on[kBatch];  // does the run continue past chunk k0 + u?
        for (int u = 0; u < kBatch; u++) {  // independent loads, all in flight together
            const int kk = k0 + u;
            const int end = min(N, (kk + 1) * kChunk);
            h[u] = kk < nchunks ? head[(size_t)kk * C + c] : 0.0f;
            goes_on[u] = kk < nchunks && end < N && sorted_tok[end] == tok;
        }
        for (int u = 0; u < kBatch && more; u++) {
            acc += h[u];  // chunk k0 + u is reached: its head piece belongs to this run
            more = goes_on[u];
        }
    }
    dwte[(size_t)tok * C + c] += acc;
}

}  // namespace

void embedding_forward(bf16* out, const int* tokens, const bf16* wte, int N, int C, cudaStream_t stream) {
    check(N >= 0 && C > 0, "embedding_forward: bad sizes N=" + std::to_string(N) + " C=" + std::to_string(C));
    if (N == 0) return;
    check(out && tokens && wte, "embedding_forward: null pointer");
    const int threads = 128;
    if (C % 8 == 0 && aligned(out, 16) && aligned(wte, 16)) {
        LAUNCH_KERNEL(embedding_forward_kernel<8>, N, threads, 0, stream, out, tokens, wte, C);
    } else {
        LAUNCH_KERNEL(embedding_forward_kernel<1>, N, threads, 0, stream, out, tokens, wte, C);
    }
}

void embedding_backward(float* dwte, const bf16* dout, const int* tokens, int N, int C, cudaStream_t stream) {
    check(N >= 0 && C > 0, "embedding_backward: bad sizes N=" + std::to_string(N) + " C=" + std::to_string(C));
    if (N == 0) return;
    check(dwte && dout && tokens, "embedding_backward: null pointer");
    check(C <= 65535 * 128, "embedding_backward: C too large");

    // Scratch, stream-ordered: positions in, sorted tokens and positions out, CUB's temp storage.
    int *pos = nullptr, *sorted_tok = nullptr, *sorted_pos = nullptr;
    void* temp = nullptr;
    size_t temp_bytes = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, tokens, sorted_tok, pos, sorted_pos, N, 0,
                                               32, stream));
    CUDA_CHECK(cudaMallocAsync(&pos, sizeof(int) * N, stream));
    CUDA_CHECK(cudaMallocAsync(&sorted_tok, sizeof(int) * N, stream));
    CUDA_CHECK(cudaMallocAsync(&sorted_pos, sizeof(int) * N, stream));
    CUDA_CHECK(cudaMallocAsync(&temp, temp_bytes, stream));

    // Step 1: sort (token, position) pairs by token.
    LAUNCH_KERNEL(iota_kernel, ceil_div(N, 256), 256, 0, stream, pos, N);
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, tokens, sorted_tok, pos, sorted_pos, N, 0, 32,
                                               stream));
    // Steps 2 and 3: chunk sums, then the runs that cross chunks.
    const int nchunks = ceil_div(N, kChunk), threads = 128;
    float* pieces = nullptr;  // head [nchunks, C] then tail [nchunks, C]
    CUDA_CHECK(cudaMallocAsync(&pieces, sizeof(float) * 2 * (size_t)nchunks * C, stream));
    float *head = pieces, *tail = pieces + (size_t)nchunks * C;
    const dim3 grid(nchunks, ceil_div(C, threads));
    LAUNCH_KERNEL(embedding_backward_chunk_kernel, grid, threads, 0, stream, dwte, head, tail, dout, sorted_tok,
                  sorted_pos, N, C);
    LAUNCH_KERNEL(embedding_backward_join_kernel, grid, threads, 0, stream, dwte, head, tail, sorted_tok, N, C);

    CUDA_CHECK(cudaFreeAsync(pieces, stream));
    CUDA_CHECK(cudaFreeAsync(temp, stream));
    CUDA_CHECK(cudaFreeAsync(sorted_pos, stream));
    CUDA_CHECK(cudaFreeAsync(sorted_tok, stream));
    CUDA_CHECK(cudaFreeAsync(pos, stream));
}

}  // namespace rusca::cuda
