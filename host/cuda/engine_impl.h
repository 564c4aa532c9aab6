// engine_impl.h: the inside of the CUDA inference engine (host/cuda/cuda_infer.h), shared by the
// files that implement it:
//   cuda_engine.cpp    construction, weights, the KV pool and its row copies, the public wrappers
//   cuda_feed.cpp      prefill: many sequences' rows through the graph (host/graph.h) at once
//   cuda_decode.cpp    one decode step through the graph, LM head + sampling, CUDA graph capture
//   cuda_generate.cpp  generate(): prefill every distinct prefix, then decode all rollouts together
//   cuda_judge.cpp     judge(): prefill each response once, its criteria as suffixes over it
// The layer itself is host/graph.h's, the one every backend runs; these files only say where each
// mode's keys, values and attention live (their op tables derive cuda::GraphOps, host/cuda/graph_ops.h).
//
// Memory (sized per call, grow-only, so one engine serves many calls):
//   weights    one bf16 allocation, every tensor 256-byte aligned (cuBLASLt picks faster kernels);
//              or the trainer's bf16 weights, shared.
//   KV pool    one bf16 allocation of 2L planes (layer l: plane 2l = K, plane 2l+1 = V), each
//              [plane_rows, Hkv, D]. A call's rows: the prefill of every distinct prefix, then (generate)
//              one slot of max_new_tokens rows per rollout. Row offsets are the same in every plane.
//   activations for the largest batch of rows the call feeds at once (a prefill chunk, or all
//              rollouts in a decode step), carved from one allocation.
#pragma once
#ifdef RUSCA_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <nvtx3/nvToolsExt.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cuda/device_buffer.h"  // DeviceBuffer
#include "cuda/sampler.cuh"      // cpu::SamplingParams on the device side
#include "cuda_infer.h"
#include "host/graph.h"   // graph::LayerBufs
#include "host/params.h"

namespace rusca {

namespace cuda_engine {

using bf16 = __nv_bfloat16;
using Clock = std::chrono::steady_clock;

constexpr int kLogitRows = 512;  // LM head + sampling in chunks of rows: [512, V] fp32 logits at most
constexpr int kMaxGraphs = 64;   // decode graphs kept per call (one per batch size)

// NVTX range for the profiler timeline, closed at the end of the scope.
struct Range {
    explicit Range(const char* name) { nvtxRangePushA(name); }
    ~Range() { nvtxRangePop(); }
};

inline double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

inline size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Hands out 256-byte aligned pieces of `base`; with base == nullptr it only measures (used = bytes).
struct Arena {
    unsigned char* base = nullptr;
    size_t used = 0;
    template <typename T>
    T* take(size_t n) {
        const size_t at = align_up(used, 256);
        used = at + n * sizeof(T);
        return base ? reinterpret_cast<T*>(base + at) : nullptr;
    }
};

// A device buffer that only grows (a call never shrinks what the previous one allocated).
template <typename T>
T* ensure(cuda::DeviceBuffer<T>& b, size_t n) {
    n = std::max<size_t>(n, 1);
    if (b.size() < n) {
        b = cuda::DeviceBuffer<T>();  // free first: the new buffer may need the space
        b = cuda::DeviceBuffer<T>(n);
    }
    return b.data();
}

// Activations for up to `rows` rows fed at once.
struct Acts {
    int rows = 0;
    bf16 *x = nullptr, *ln = nullptr, *q = nullptr, *k = nullptr, *att = nullptr, *proj = nullptr;
    bf16 *gate = nullptr, *up = nullptr;
    float *rstd = nullptr, *lse = nullptr;
    int *tok = nullptr, *pos = nullptr;
};

// Inference keeps no activations for a backward: every layer of a feed or a decode step reuses the
// same rows, and each op overwrites the input it no longer needs.
inline graph::LayerBufs<bf16, float> layer_bufs(const Acts& a) {
    graph::LayerBufs<bf16, float> b;
    b.res_in = b.res_mid = b.res_out = a.x;
    b.ln1 = b.ln2 = b.ln_out = a.ln;
    b.rstd1 = b.rstd2 = b.rstd_out = b.rstd_q = b.rstd_k = a.rstd;
    b.q_lin = b.q_pre = b.q = a.q;
    b.k_lin = b.k_pre = a.k;
    b.att = a.att, b.proj = a.proj, b.gate = b.act = a.gate, b.up = a.up;
    return b;
}

inline void carve_acts(Arena& a, Acts& s, const ModelConfig& c, size_t N) {
    const size_t C = c.hidden_size, F = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
    const size_t Hq = std::max(c.num_heads, 1);
    s.rows = int(N);
    s.x = a.take<bf16>(N * C), s.ln = a.take<bf16>(N * C), s.proj = a.take<bf16>(N * C);
    s.q = a.take<bf16>(N * Q), s.att = a.take<bf16>(N * Q), s.k = a.take<bf16>(N * KV);
    s.gate = a.take<bf16>(N * F), s.up = a.take<bf16>(N * F);
    s.rstd = a.take<float>(N * Hq), s.lse = a.take<float>(N * Hq);
    s.tok = a.take<int>(N), s.pos = a.take<int>(N);
}

// Sequences fed together as one batch of rows. Sequence i feeds n[i] new tokens (rows in feed order,
// sequence after sequence) after a prefix segment of the pool (prefix_len[i] rows from
// prefix_start[i], may be 0); its own rows are new, so own_len = n. Row r's key/value go to pool row
// dst + r: a feed's rows are contiguous in the pool, in feed order.
struct Feed {
    std::vector<int> tokens, pos;                      // [rows]
    std::vector<int> n, prefix_start, prefix_len;      // [sequences]
    int dst = 0;
    std::vector<int> keep;  // rows whose final-norm hidden state is gathered, in this order

    void add(const int* t, int len, int pstart, int plen) {
        for (int i = 0; i < len; i++) tokens.push_back(t[i]), pos.push_back(plen + i);
        n.push_back(len), prefix_start.push_back(pstart), prefix_len.push_back(plen);
        keep.push_back(int(tokens.size()) - 1);
    }
};

// Consecutive ranges [begin, end) of `lens` whose sum stays within max_rows (a longer single item is
// a range of its own).
std::vector<std::pair<int, int>> chunk_ranges(const std::vector<int>& lens, long long max_rows);

inline Verdict make_verdict(double margin) { return {margin > 0, float(1.0 / (1.0 + std::exp(-margin))), float(margin)}; }

}  // namespace cuda_engine

// The engine's state and the steps of its calls; the public CudaEngine forwards to it.
struct CudaEngine::Impl {
    using bf16 = cuda_engine::bf16;
    using Acts = cuda_engine::Acts;
    using Feed = cuda_engine::Feed;

    Impl(const ModelConfig& config, CudaEngineOptions options);
    ~Impl();
    void upload_weights(const float* host_params);
    void share_weights(const bf16* shared);
    void point_at(const bf16* base, const std::map<size_t, size_t>& where);

    std::vector<std::vector<Completion>> generate(const std::vector<PromptGroup>& groups, const GenerateOptions& opt);
    std::vector<std::vector<Verdict>> judge(const std::vector<JudgeTokens>& items, int yes_id, int no_id);

    // model
    const ModelConfig c;
    const ParamLayout layout;
    const CudaEngineOptions opt;
    const int C, F, D, Q, KV, Hq, Hkv, L, V;
    cudaStream_t stream = nullptr;
    cuda::DeviceBuffer<bf16> weights;  // our own copy (empty when the weights are shared)
    const bf16 *embed = nullptr, *final_norm = nullptr, *lm_head = nullptr;
    std::unordered_map<size_t, const bf16*> tensor;  // ParamLayout offset -> the tensor on the device

    // The device tensor at a ParamLayout offset (nullptr: absent in this family).
    const bf16* W(size_t offset) const { return offset == kAbsent ? nullptr : tensor.at(offset); }

    // per-call buffers (grow-only)
    cuda::DeviceBuffer<bf16> pool;
    size_t plane_rows = 0;
    cuda::DeviceBuffer<unsigned char> acts_buf;
    Acts acts;
    cuda::DeviceBuffer<int> seq_meta;     // feed: prefix_start, prefix_len, own_start, own_len [S] + keep [S]
    cuda::DeviceBuffer<bf16> hidden;      // gathered final hidden rows (prefill last rows, judge answers)
    cuda::DeviceBuffer<float> logits;     // [min(B, kLogitRows), V]
    cuda::DeviceBuffer<int> dec_meta;     // decode: 7 arrays of Bcap ints (see DecodeMeta)
    cuda::DeviceBuffer<uint64_t> dec_seq;  // decode: RNG sequence id per row
    cuda::DeviceBuffer<int> dec_tok;      // sampled tokens [Bcap]
    cuda::DeviceBuffer<float> dec_lp;     // their logprobs [Bcap]
    cuda::DeviceBuffer<unsigned char> attn_ws, sample_ws;
    size_t attn_ws_bytes = 0, sample_ws_bytes = 0;

    // decode state of the current generate() call
    int Bcap = 0, max_new = 0, own_base = 0, dec_max_len = 0;
    cpu::SamplingParams sampling;
    uint64_t seed = 0;
    std::vector<int> meta_h;          // host mirror of dec_meta
    std::vector<uint64_t> seq_h;      // host mirror of dec_seq
    std::vector<int> batch_rollouts;  // rollout r of each batch row (for the logits trace)
    std::map<int, cudaGraphExec_t> graphs;
    bool graphs_broken = false;
    int prev_eager_B = -1;  // batch size of the last step run with plain launches (-1: none yet)

    CudaEngineStats stats;
    std::vector<std::vector<std::vector<float>>>* trace = nullptr;

    bf16* pool_k(int l) { return pool.data() + size_t(2 * l) * plane_rows * KV; }
    bf16* pool_v(int l) { return pool.data() + size_t(2 * l + 1) * plane_rows * KV; }
    int* meta(int array) { return dec_meta.data() + size_t(array) * Bcap; }  // device array of DecodeMeta
    int& meta_at(int array, int b) { return meta_h[size_t(array) * Bcap + b]; }
    enum DecodeMeta { kTok, kPos, kPrefixStart, kPrefixLen, kOwnStart, kOwnLen, kStep, kMetaArrays };

    class FeedOps;    // the graph's prefill mode (cuda_feed.cpp)
    class DecodeOps;  // the graph's decode mode (cuda_decode.cpp)
    void reserve_acts(size_t rows);
    void reserve_pool(size_t rows_per_plane);
    void forward_feed(const Feed& f, bf16* keep_out, bool need_hidden);
    void decode_forward(int B);
    void lm_head_and_sample(int B, const bf16* h);
    void decode_step(int B);
    bool capture(int B);
    void clear_graphs();
    void copy_planes(int src_row, int dst_row, size_t width_rows, int height, size_t pitch_rows);
    void upload_meta(int B);
};

}  // namespace rusca
#endif  // RUSCA_CUDA
