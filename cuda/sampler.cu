// sampler.cu: the GPU token sampler, twin of host/cpu/sampler.h (whose header states the rules:
// temperature -> min-p -> top-k -> top-p in vLLM's order, ties to the lower index, inverse-CDF draw
// walking kept tokens in ascending index, greedy at T = 0, logprob of the unfiltered distribution).
//
// Why it is built this way:
//  - One block per row; the block makes a few passes over the row (max, sums, draw). A row of a
//    151936-token vocabulary is 600 KB and stays in L2 between passes.
//  - Probabilities and every sum are computed in DOUBLE, with the very expression of the CPU twin,
//    e_i = exp((l_i - max) / T) (= p_i / max_j p_j). With float probabilities the total of a
//    152k-token row is off by ~1e-7 of itself, which is larger than a typical token's share
//    (~7e-6), so about one draw in a hundred would pick a neighbour of the CPU's token. In double
//    the GPU draws the CPU's token unless u * total lands within ~1e-15 of a boundary. All rules
//    are scale-free, so the GPU keeps e_i unnormalized (the max is exactly 1; min-p is e_i >= min_p).
//  - Top-k / top-p need the kept tokens in descending probability, ties to the lower index. Each
//    kept token gets a unique 64-bit order key, (high bits of e_i's double + 1) << index_bits |
//    (2^index_bits - 1 - index), so ANY correct descending sort gives the one order the CPU uses.
//    (Near-ties closer than ~2^-34 relative go to the lower index where the CPU compares full
//    doubles; 2^-34 for V <= 2^18, coarser by 2x per further index bit.) Rows with V <= 4096
//    sort in shared memory (cub::BlockRadixSort) inside one kernel; longer rows write their kept
//    keys to scratch and cub::DeviceSegmentedRadixSort sorts all rows' segments at once.
//  - After sorting, the cut is the key of the last kept token: a token survives iff it passes
//    min-p and its key is >= the cut. The draw then walks the row in index order with that test.
//  - Deterministic: fixed thread-to-token mapping and reduction trees; no atomics.
//  - Cost: without top-k/top-p a row costs one float pass (max) and ~1.5 passes of double exp
//    (sums, then the draw walk, which stops at the drawn token). Double exp is the bottleneck at
//    large V (H100 fp64 runs at half the fp32 rate); splitting a row over several blocks is the
//    next step if the sampler shows up in decode profiles.
//
// Scratch of the sorted path (V > 4096 with top-k or top-p): R = min(B, max(1, 2^24 / V)) rows are
// sorted at a time, needing 2 * R * V keys of 8 bytes (<= 256 MiB; 19.5 MB for B = 8, V = 151936)
// plus 16 bytes per row and CUB's temporary storage.
#include <cub/block/block_radix_sort.cuh>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>

#include <algorithm>
#include <climits>
#include <string>

#include "cuda/common.cuh"
#include "cuda/launch.cuh"
#include "cuda/sampler.cuh"
#include "host/error.h"

namespace rusca::cuda {
namespace {

constexpr int kThreads = 512;                             // one block per row
constexpr int kItems = 4;                                 // consecutive tokens per thread in ordered passes
constexpr int kSortItems = 8;                             // BlockRadixSort keys per thread
constexpr int kBlockSortTile = kThreads * kSortItems;     // rows up to this size sort in shared memory
constexpr long long kSortChunkKeys = 1ll << 24;           // keys sorted per DeviceSegmentedRadixSort call
constexpr int kKeyBits = 63;                              // order keys are < 2^63

// The sampling parameters as the kernels use them (see make_config).
struct RowConfig {
    double temperature;  // T (1 when greedy: the logprob is then of the raw logits)
    double min_p;        // keep e_i >= min_p (0 keeps all)
    int top_k;           // 0 = off (the launcher turns top_k >= V off)
    double top_p;        // 1 = off
    bool greedy;
    int index_bits;      // bits that hold a token index in an order key
};

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

// ---- counter_uniform: host/cpu/sampler.cpp, line for line (integer hashing, then one exact
// ---- multiply by 2^-53 in double, so the device gives the identical bits).
__device__ __forceinline__ uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

__device__ __forceinline__ double counter_uniform(uint64_t seed, uint64_t seq, uint64_t step) {
    constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ull;
    uint64_t h = mix64(seed + kGolden);
    h = mix64((h ^ seq) + kGolden);
    h = mix64((h ^ step) + kGolden);
    return double(h >> 11) * 0x1.0p-53;
}

// e_i = exp((l_i - max) / T) in double: the CPU twin's expression (no contraction is possible in
// it, and double division is IEEE-exact on the GPU), so both sides compute the same number up to
// the last bit of exp.
__device__ __forceinline__ double scaled_exp(float logit, double maxv, double T) {
    return exp((double(logit) - maxv) / T);
}

// Unique order key of a kept token; sorted DESCENDING it puts larger e first, then the lower
// index. e in (0, 1] has a double bit pattern < 2^62 that orders like e; its high (62 - index_bits)
// bits, plus 1 so that a kept key is never 0 (the "dropped" sentinel of the shared-memory sort),
// sit above the INVERTED index (mask - i), so that of two equal e the lower index has the larger key.
__device__ __forceinline__ uint64_t order_key(double e, int i, int index_bits) {
    const uint64_t bits = uint64_t(__double_as_longlong(e)), mask = (1ull << index_bits) - 1;
    return (((bits >> index_bits) + 1) << index_bits) | (mask - uint64_t(i));
}

__device__ __forceinline__ int key_index(uint64_t key, int index_bits) {
    const uint64_t mask = (1ull << index_bits) - 1;
    return int(mask - (key & mask));
}

// ---- block-wide helpers (kThreads threads); each returns its result to every thread ----
struct ValIdx {
    float v;
    int i;
};
struct ArgMaxOp {  // larger value wins; equal values go to the lower index (CPU argmax)
    __device__ ValIdx operator()(const ValIdx& a, const ValIdx& b) const {
        return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
    }
};
struct SumOp {
    template <typename T>
    __device__ T operator()(const T& a, const T& b) const { return a + b; }
};
struct MinOp {
    __device__ int operator()(int a, int b) const { return a < b ? a : b; }
};
struct MaxOp {
    __device__ int operator()(int a, int b) const { return a > b ? a : b; }
};

template <typename T, typename Op>
__device__ T block_all_reduce(T x, Op op) {
    using Reduce = cub::BlockReduce<T, kThreads>;
    __shared__ typename Reduce::TempStorage tmp;
    __shared__ T result;
    __syncthreads();  // the previous call's readers of `result` / users of `tmp` are done
    const T r = Reduce(tmp).Reduce(x, op);
    if (threadIdx.x == 0) result = r;
    __syncthreads();
    return result;
}

// Exclusive prefix sum of one double per thread (thread order) and the block's total.
__device__ void block_exclusive_sum(double x, double& before, double& total) {
    using Scan = cub::BlockScan<double, kThreads>;
    __shared__ typename Scan::TempStorage tmp;
    __syncthreads();
    Scan(tmp).ExclusiveSum(x, before, total);
}

// ---- passes over one row ----

// Max logit and its lowest index (the greedy token).
// NaN as the CPU twin's sequential scan treats it: a NaN at index 0 is never beaten (nothing compares
// greater than it), a NaN elsewhere never wins.
template <typename Logit>
__device__ ValIdx row_argmax(const Logit* row, int V) {
    ValIdx best{-INFINITY, INT_MAX};
    for (int i = threadIdx.x; i < V; i += kThreads) {
        const float x = to_float(row[i]);
        if (!isnan(x)) best = ArgMaxOp()(best, ValIdx{x, i});
    }
    best = block_all_reduce(best, ArgMaxOp());
    const float first = to_float(row[0]);
    return isnan(first) ? ValIdx{first, 0} : best;
}

// A row whose normalizer is not finite (a NaN logit, a +inf logit, or all -inf) has no distribution:
// every probability of the CPU twin is NaN and its draw returns the last token. So does ours.
__device__ __forceinline__ bool no_distribution(double sum_all) { return !isfinite(sum_all); }

struct Sums {
    double all;   // sum of e over the row: the unfiltered normalizer (logprob)
    double kept;  // sum of e over min-p survivors: the draw's total when no sort is needed
    __device__ Sums operator+(const Sums& o) const { return Sums{all + o.all, kept + o.kept}; }
};

template <typename Logit>
__device__ Sums row_sums(const Logit* row, int V, double maxv, const RowConfig& c) {
    Sums s{0.0, 0.0};
    for (int i = threadIdx.x; i < V; i += kThreads) {
        const double e = scaled_exp(to_float(row[i]), maxv, c.temperature);
        s.all += e;
        if (e > 0.0 && e >= c.min_p) s.kept += e;
    }
    return block_all_reduce(s, SumOp());
}

// e_i if token i survives every filter, else 0: min-p, then (when cut_on) order key >= cut.
template <typename Logit>
struct KeptProb {
    const Logit* row;
    double maxv, temperature, min_p;
    bool cut_on;
    uint64_t cut;
    int index_bits;
    __device__ double operator()(int i) const {
        const double e = scaled_exp(to_float(row[i]), maxv, temperature);
        if (!(e > 0.0) || e < min_p) return 0.0;
        if (cut_on && order_key(e, i, index_bits) < cut) return 0.0;
        return e;
    }
};

template <typename Kept>
__device__ double kept_total(int V, const Kept& kept) {
    double s = 0.0;
    for (int i = threadIdx.x; i < V; i += kThreads) s += kept(i);
    return block_all_reduce(s, SumOp());
}

// The inverse-CDF draw: the first token, in ascending index, whose running kept mass exceeds
// target = u * total. The row is walked in tiles of kThreads * kItems tokens; thread t owns kItems
// consecutive tokens of a tile, so thread order is index order. A block scan gives each thread the
// mass before its tokens; the lowest thread whose run crosses the target walks its own tokens.
// If rounding lets the whole walk finish, the last kept token (CPU rule).
template <typename Kept>
__device__ int draw_walk(int V, double target, const Kept& kept) {
    __shared__ int found;
    double before_tile = 0.0;  // kept mass of earlier tiles; the same in every thread
    int last_kept = -1;
    for (int base = 0; base < V; base += kThreads * kItems) {
        const int first = base + threadIdx.x * kItems;
        double e[kItems], mine = 0.0;
#pragma unroll
        for (int j = 0; j < kItems; j++) {
            e[j] = first + j < V ? kept(first + j) : 0.0;
            mine += e[j];
            if (e[j] > 0.0) last_kept = first + j;
        }
        double before_me, tile_mass;
        block_exclusive_sum(mine, before_me, tile_mass);
        const double start = before_tile + before_me;
        const int crosser =
            block_all_reduce((mine > 0.0 && start + mine > target) ? int(threadIdx.x) : INT_MAX, MinOp());
        if (crosser != INT_MAX) {  // uniform across the block
            if (int(threadIdx.x) == crosser) {
                double cum = start;
                int token = -1, last = -1;
#pragma unroll
                for (int j = 0; j < kItems; j++) {
                    if (token < 0 && e[j] > 0.0) {
                        cum += e[j];
                        last = first + j;
                        if (cum > target) token = first + j;
                    }
                }
                found = token >= 0 ? token : last;  // `last`: the sequential sum fell short by rounding
            }
            __syncthreads();
            const int token = found;
            __syncthreads();  // before a later call may write `found` again
            return token;
        }
        before_tile += tile_mass;
    }
    return block_all_reduce(last_kept, MaxOp());
}

// sorted[0, n): order keys of the min-p survivors, most probable first. Applies top-k, then top-p
// (position r stays iff the mass at positions < r is < top_p * mass of the top-k), and returns the
// key of the last survivor: the cut. n >= 1 (the max token, e = 1, always passes min-p).
template <typename Logit>
__device__ uint64_t select_cut(const uint64_t* sorted, int n, const Logit* row, double maxv, const RowConfig& c) {
    const int k = c.top_k > 0 && c.top_k < n ? c.top_k : n;
    if (!(c.top_p < 1.0)) return sorted[k - 1];
    auto e_at = [&](int r) {
        return scaled_exp(to_float(row[key_index(sorted[r], c.index_bits)]), maxv, c.temperature);
    };
    double mine = 0.0;
    for (int r = threadIdx.x; r < k; r += kThreads) mine += e_at(r);
    const double limit = c.top_p * block_all_reduce(mine, SumOp());
    // First position whose preceding mass reaches the limit; positions [0, it) are kept.
    double before_tile = 0.0;
    for (int base = 0; base < k; base += kThreads * kItems) {
        const int first = base + threadIdx.x * kItems;
        double e[kItems], sum = 0.0;
#pragma unroll
        for (int j = 0; j < kItems; j++) sum += e[j] = first + j < k ? e_at(first + j) : 0.0;
        double before_me, tile_mass;
        block_exclusive_sum(sum, before_me, tile_mass);
        double before = before_tile + before_me;
        int hit = INT_MAX;
#pragma unroll
        for (int j = 0; j < kItems; j++) {
            if (hit == INT_MAX && first + j < k && before >= limit) hit = first + j;
            before += e[j];
        }
        hit = block_all_reduce(hit, MinOp());
        if (hit != INT_MAX) return sorted[max(hit, 1) - 1];  // hit >= 1: nothing precedes position 0
        before_tile += tile_mass;
    }
    return sorted[k - 1];
}

template <typename Logit>
__device__ float row_logprob(const Logit* row, int token, double maxv, double sum_all, double T) {
    return float((double(to_float(row[token])) - maxv) / T - log(sum_all));
}

// ---- kernels: grid = rows, block = kThreads ----

// No sort needed: greedy, or only temperature and min-p.
template <typename Logit>
__global__ void __launch_bounds__(kThreads)
    sample_plain_kernel(int* tokens, float* logprobs, const Logit* logits, int V, RowConfig c, uint64_t seed,
                        const uint64_t* seq_ids, const int* steps) {
    const int b = blockIdx.x;
    const Logit* row = logits + size_t(b) * V;
    const ValIdx top = row_argmax(row, V);
    const double maxv = top.v;
    Sums sums{0.0, 0.0};
    if (!c.greedy || logprobs) sums = row_sums(row, V, maxv, c);
    int token = top.i;
    if (!c.greedy && no_distribution(sums.all)) {
        token = V - 1;
    } else if (!c.greedy) {
        const double u = counter_uniform(seed, seq_ids[b], uint64_t(steps[b]));
        const KeptProb<Logit> kept{row, maxv, c.temperature, c.min_p, false, 0, c.index_bits};
        token = draw_walk(V, u * sums.kept, kept);
    }
    if (threadIdx.x == 0) {
        tokens[b] = token;
        if (logprobs) logprobs[b] = row_logprob(row, token, maxv, sums.all, c.temperature);
    }
}

// Top-k / top-p with V <= kBlockSortTile: the whole row sorts in shared memory.
template <typename Logit>
__global__ void __launch_bounds__(kThreads)
    sample_block_sort_kernel(int* tokens, float* logprobs, const Logit* logits, int V, RowConfig c,
                             uint64_t seed, const uint64_t* seq_ids, const int* steps) {
    using Sort = cub::BlockRadixSort<uint64_t, kThreads, kSortItems>;
    __shared__ union {
        typename Sort::TempStorage sort;
        uint64_t sorted[kBlockSortTile];
    } sh;
    const int b = blockIdx.x;
    const Logit* row = logits + size_t(b) * V;
    const double maxv = row_argmax(row, V).v;
    const Sums sums = row_sums(row, V, maxv, c);
    if (no_distribution(sums.all)) {  // uniform across the block
        if (threadIdx.x == 0) {
            tokens[b] = V - 1;
            if (logprobs) logprobs[b] = row_logprob(row, V - 1, maxv, sums.all, c.temperature);
        }
        return;
    }

    uint64_t keys[kSortItems];  // blocked: thread t holds tokens t * kSortItems + j
    int mine = 0;
#pragma unroll
    for (int j = 0; j < kSortItems; j++) {
        const int i = threadIdx.x * kSortItems + j;
        keys[j] = 0;  // dropped (or past V): sorts after every kept key
        if (i < V) {
            const double e = scaled_exp(to_float(row[i]), maxv, c.temperature);
            if (e > 0.0 && e >= c.min_p) keys[j] = order_key(e, i, c.index_bits), mine++;
        }
    }
    const int n = block_all_reduce(mine, SumOp());
    Sort(sh.sort).SortDescending(keys, 0, kKeyBits);
    __syncthreads();  // sh.sort is about to be overwritten by sh.sorted
#pragma unroll
    for (int j = 0; j < kSortItems; j++) sh.sorted[threadIdx.x * kSortItems + j] = keys[j];
    __syncthreads();

    const uint64_t cut = select_cut(sh.sorted, n, row, maxv, c);
    const KeptProb<Logit> kept{row, maxv, c.temperature, c.min_p, true, cut, c.index_bits};
    const double total = kept_total(V, kept);
    const double u = counter_uniform(seed, seq_ids[b], uint64_t(steps[b]));
    const int token = draw_walk(V, u * total, kept);
    if (threadIdx.x == 0) {
        tokens[b] = token;
        if (logprobs) logprobs[b] = row_logprob(row, token, maxv, sums.all, c.temperature);
    }
}

// Long rows, step 1 of 3: max and normalizer, then the min-p survivors' order keys, compacted in
// index order to keys[r * V, r * V + count) (a block scan per tile gives each thread its slot).
// stats[r] = (max logit, sum of e over the row); segment r = [seg_begin[r], seg_end[r]).
template <typename Logit>
__global__ void __launch_bounds__(kThreads)
    sample_prepare_kernel(uint64_t* keys, int* seg_begin, int* seg_end, double2* stats, const Logit* logits,
                          int V, RowConfig c) {
    const int r = blockIdx.x;
    const Logit* row = logits + size_t(r) * V;
    uint64_t* out = keys + size_t(r) * V;
    const double maxv = row_argmax(row, V).v;
    double all = 0.0;
    int written = 0;  // keys written by earlier tiles; the same in every thread
    for (int base = 0; base < V; base += kThreads * kItems) {
        const int first = base + threadIdx.x * kItems;
        uint64_t k[kItems];
        int count = 0;
#pragma unroll
        for (int j = 0; j < kItems; j++) {
            k[j] = 0;
            if (first + j < V) {
                const double e = scaled_exp(to_float(row[first + j]), maxv, c.temperature);
                all += e;
                if (e > 0.0 && e >= c.min_p) k[j] = order_key(e, first + j, c.index_bits), count++;
            }
        }
        double before, tile_count;  // counts are exact in double (< 2^53)
        block_exclusive_sum(double(count), before, tile_count);
        int slot = written + int(before);
#pragma unroll
        for (int j = 0; j < kItems; j++)
            if (k[j] != 0) out[slot++] = k[j];
        written += int(tile_count);
    }
    all = block_all_reduce(all, SumOp());
    if (threadIdx.x == 0) {
        seg_begin[r] = r * V;
        seg_end[r] = r * V + written;
        stats[r] = make_double2(maxv, all);
    }
}

// Long rows, step 3 of 3 (step 2 is the segmented sort): cut, draw, logprob.
template <typename Logit>
__global__ void __launch_bounds__(kThreads)
    sample_finish_kernel(int* tokens, float* logprobs, const uint64_t* sorted, const int* seg_end,
                         const double2* stats, const Logit* logits, int V, RowConfig c, uint64_t seed,
                         const uint64_t* seq_ids, const int* steps) {
    const int r = blockIdx.x;
    const Logit* row = logits + size_t(r) * V;
    const double maxv = stats[r].x;
    const int n = seg_end[r] - r * V;
    if (no_distribution(stats[r].y)) {
        if (threadIdx.x == 0) {
            tokens[r] = V - 1;
            if (logprobs) logprobs[r] = row_logprob(row, V - 1, maxv, stats[r].y, c.temperature);
        }
        return;
    }
    const uint64_t cut = select_cut(sorted + size_t(r) * V, n, row, maxv, c);
    const KeptProb<Logit> kept{row, maxv, c.temperature, c.min_p, true, cut, c.index_bits};
    const double total = kept_total(V, kept);
    const double u = counter_uniform(seed, seq_ids[r], uint64_t(steps[r]));
    const int token = draw_walk(V, u * total, kept);
    if (threadIdx.x == 0) {
        tokens[r] = token;
        if (logprobs) logprobs[r] = row_logprob(row, token, maxv, stats[r].y, c.temperature);
    }
}

__global__ void counter_uniform_kernel(double* u, uint64_t seed, const uint64_t* seq_ids, const uint64_t* steps,
                                       int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) u[i] = counter_uniform(seed, seq_ids[i], steps[i]);
}

// ---- host side ----

RowConfig make_config(const cpu::SamplingParams& p, int V) {
    RowConfig c;
    c.greedy = p.temperature == 0.0f;
    c.temperature = c.greedy ? 1.0 : double(p.temperature);
    c.min_p = double(p.min_p);
    c.top_k = p.top_k > 0 && p.top_k < V ? p.top_k : 0;
    c.top_p = double(p.top_p);
    c.index_bits = 0;
    while ((1ll << c.index_bits) < V) c.index_bits++;  // indices 0 .. V-1 fit
    return c;
}

bool needs_sort(const RowConfig& c) { return !c.greedy && (c.top_k > 0 || c.top_p < 1.0); }
bool needs_scratch(const RowConfig& c, int V) { return needs_sort(c) && V > kBlockSortTile; }

constexpr size_t align256(size_t x) { return (x + 255) & ~size_t(255); }

// Where the sorted path's scratch lives, for chunks of `rows` rows (the last chunk may be shorter).
struct SortScratch {
    int rows = 0;
    size_t keys_a = 0, keys_b = 0, seg_begin = 0, seg_end = 0, stats = 0, cub_tmp = 0, cub_bytes = 0, total = 0;
};

size_t cub_sort_bytes(int rows, int V) {
    size_t bytes = 0;
    cub::DoubleBuffer<uint64_t> keys(nullptr, nullptr);
    CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeysDescending(nullptr, bytes, keys, rows * V, rows,
                                                                 (int*)nullptr, (int*)nullptr, 0,
                                                                 kKeyBits));
    return bytes;
}

SortScratch sort_scratch(int B, int V) {
    SortScratch s;
    s.rows = int(std::max(1ll, std::min<long long>(B, kSortChunkKeys / V)));
    const size_t keys = size_t(s.rows) * V * sizeof(uint64_t);
    s.keys_a = 0;
    s.keys_b = align256(s.keys_a + keys);
    s.seg_begin = align256(s.keys_b + keys);
    s.seg_end = align256(s.seg_begin + s.rows * sizeof(int));
    s.stats = align256(s.seg_end + s.rows * sizeof(int));
    s.cub_tmp = align256(s.stats + s.rows * sizeof(double2));
    s.cub_bytes = cub_sort_bytes(s.rows, V);
    if (B % s.rows) s.cub_bytes = std::max(s.cub_bytes, cub_sort_bytes(B % s.rows, V));
    s.total = align256(s.cub_tmp + s.cub_bytes);
    return s;
}

void check_args(const void* tokens, const void* logits, int B, int V, const cpu::SamplingParams& p,
                const uint64_t* seq_ids, const int* steps) {
    p.validate();
    check(V > 0, "cuda::sample_batch: vocabulary size must be > 0 (got " + std::to_string(V) + ")");
    check(B >= 0, "cuda::sample_batch: batch size must be >= 0 (got " + std::to_string(B) + ")");
    check(B == 0 || (tokens && logits && seq_ids && steps),
          "cuda::sample_batch: tokens, logits, seq_ids and steps must be device pointers, not null");
}

template <typename Logit>
void sample_impl(int* tokens, float* logprobs, const Logit* logits, int B, int V, const cpu::SamplingParams& p,
                 uint64_t seed, const uint64_t* seq_ids, const int* steps, void* workspace, size_t workspace_bytes,
                 bool may_allocate, cudaStream_t stream) {
    check_args(tokens, logits, B, V, p, seq_ids, steps);
    if (B == 0) return;
    const RowConfig c = make_config(p, V);
    if (!needs_sort(c)) {
        LAUNCH_KERNEL(sample_plain_kernel<Logit>, B, kThreads, 0, stream, tokens, logprobs, logits, V, c, seed, seq_ids,
                      steps);
        return;
    }
    if (V <= kBlockSortTile) {
        LAUNCH_KERNEL(sample_block_sort_kernel<Logit>, B, kThreads, 0, stream, tokens, logprobs, logits, V, c, seed,
                      seq_ids, steps);
        return;
    }
    const SortScratch s = sort_scratch(B, V);
    bool owned = false;
    if (!workspace && may_allocate) {
        CUDA_CHECK(cudaMallocAsync(&workspace, s.total, stream));
        owned = true;
    } else {
        check(workspace && workspace_bytes >= s.total,
              "cuda::sample_batch: workspace of " + std::to_string(workspace_bytes) + " bytes is too small (" +
                  std::to_string(s.total) + " needed: see sample_batch_workspace_bytes)");
    }
    char* ws = static_cast<char*>(workspace);
    uint64_t* keys_a = reinterpret_cast<uint64_t*>(ws + s.keys_a);
    uint64_t* keys_b = reinterpret_cast<uint64_t*>(ws + s.keys_b);
    int* seg_begin = reinterpret_cast<int*>(ws + s.seg_begin);
    int* seg_end = reinterpret_cast<int*>(ws + s.seg_end);
    double2* stats = reinterpret_cast<double2*>(ws + s.stats);
    for (int row0 = 0; row0 < B; row0 += s.rows) {
        const int R = std::min(s.rows, B - row0);
        const Logit* chunk = logits + size_t(row0) * V;
        LAUNCH_KERNEL(sample_prepare_kernel<Logit>, R, kThreads, 0, stream, keys_a, seg_begin, seg_end, stats, chunk, V,
                      c);
        cub::DoubleBuffer<uint64_t> keys(keys_a, keys_b);
        size_t cub_bytes = s.cub_bytes;
        CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeysDescending(ws + s.cub_tmp, cub_bytes, keys, R * V, R,
                                                                     seg_begin, seg_end, 0, kKeyBits, stream));
        LAUNCH_KERNEL(sample_finish_kernel<Logit>, R, kThreads, 0, stream, tokens + row0,
                      logprobs ? logprobs + row0 : nullptr, keys.Current(), seg_end, stats, chunk, V, c, seed,
                      seq_ids + row0, steps + row0);
    }
    if (owned) CUDA_CHECK(cudaFreeAsync(workspace, stream));
}

}  // namespace

void sample_batch(int* tokens, float* logprobs, const float* logits, int B, int V, const cpu::SamplingParams& p,
                  uint64_t seed, const uint64_t* seq_ids, const int* steps, cudaStream_t stream) {
    sample_impl(tokens, logprobs, logits, B, V, p, seed, seq_ids, steps, nullptr, 0, true, stream);
}

void sample_batch(int* tokens, float* logprobs, const __nv_bfloat16* logits, int B, int V,
                  const cpu::SamplingParams& p, uint64_t seed, const uint64_t* seq_ids, const int* steps,
                  cudaStream_t stream) {
    sample_impl(tokens, logprobs, logits, B, V, p, seed, seq_ids, steps, nullptr, 0, true, stream);
}

size_t sample_batch_workspace_bytes(int B, int V, const cpu::SamplingParams& p) {
    p.validate();
    check(V > 0 && B >= 0, "cuda::sample_batch_workspace_bytes: need V > 0 and B >= 0 (got B = " +
                               std::to_string(B) + ", V = " + std::to_string(V) + ")");
    if (B == 0 || !needs_scratch(make_config(p, V), V)) return 0;
    return sort_scratch(B, V).total;
}

void sample_batch_with_workspace(int* tokens, float* logprobs, const float* logits, int B, int V,
                                 const cpu::SamplingParams& p, uint64_t seed, const uint64_t* seq_ids,
                                 const int* steps, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    sample_impl(tokens, logprobs, logits, B, V, p, seed, seq_ids, steps, workspace, workspace_bytes, false, stream);
}

void sample_batch_with_workspace(int* tokens, float* logprobs, const __nv_bfloat16* logits, int B, int V,
                                 const cpu::SamplingParams& p, uint64_t seed, const uint64_t* seq_ids,
                                 const int* steps, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    sample_impl(tokens, logprobs, logits, B, V, p, seed, seq_ids, steps, workspace, workspace_bytes, false, stream);
}

void counter_uniform_batch(double* u, uint64_t seed, const uint64_t* seq_ids, const uint64_t* steps, int n,
                           cudaStream_t stream) {
    check(n >= 0, "cuda::counter_uniform_batch: n must be >= 0 (got " + std::to_string(n) + ")");
    if (n == 0) return;
    check(u && seq_ids && steps, "cuda::counter_uniform_batch: null device pointer");
    LAUNCH_KERNEL(counter_uniform_kernel, ceil_div(n, 256), 256, 0, stream, u, seed, seq_ids, steps, n);
}

}  // namespace rusca::cuda
