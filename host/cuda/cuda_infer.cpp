// cuda_infer.cpp: the CUDA inference engine (host/cuda/cuda_infer.h), the GPU twin of CpuInference,
// generate() and Judge. The graph is the CPU one (host/cpu/infer.cpp), op for op, calling each op's
// CUDA launcher (cuda/<family>.cuh); bf16 weights, activations and KV cache, fp32 math inside every
// kernel, fp32 logits for the sampler. No kernels live here: this file is plain C++ (g++).
//
// Memory (sized per call, grow-only, so one engine serves many calls):
//   weights    one bf16 allocation, every tensor 256-byte aligned (cuBLASLt picks faster kernels).
//   KV pool    one bf16 allocation of 2L planes (layer l: plane 2l = K, plane 2l+1 = V), each
//              [plane_rows, Hkv, D]. A call's rows: the prefill of every distinct prefix, then (generate)
//              one slot of max_new_tokens rows per rollout. Row offsets are the same in every plane.
//   activations for the largest batch of rows the call feeds at once (a prefill chunk, or all
//              rollouts in a decode step), carved from one allocation.
//
// Prefill ("feeding" rows): the tokens of many sequences are concatenated into one batch of rows, so
// every matmul, norm and RoPE runs once for all of them; each sequence's keys/values go straight to
// its pool rows. Attention runs once per run of equal-length sequences (sequences are ordered by
// length, longest first, so such runs are contiguous): the training flash-attention kernel
// (cuda/attention.cuh) when a sequence has no prefix and D is 64 or 128, otherwise
// kv_attention_forward_batched over (prefix segment, own rows). The judge's criterion suffixes are
// fed the same way with the response's prefill as their prefix segment.
//
// Decode: every active rollout feeds its last token. Rollout in batch row b owns slot b of the
// pool (rows own_base + b * max_new ...). A CUDA graph bakes in every pointer, but the row a decode
// step writes moves by one each step. The trick that makes the step capturable: the NEWEST token's
// key/value always sits in row 0 of the slot. Before each step (outside the graph) one 3-D copy
// moves row 0 of every slot, in every plane, to row j (the next free row); the graph then writes the
// new token's K/V into row 0. A decode query sees all of its own rows, and attention does not depend
// on the order of the keys (RoPE is applied before caching), so the permuted rows give the same
// result up to fp32 summation order. Everything else that changes per step (positions, lengths,
// tokens, RNG counters) is in small device arrays re-uploaded before each step. Finished rollouts
// leave at once: the last active slot is copied into the hole (one 3-D copy), so the batch stays
// dense and the next step runs with the smaller batch. A graph is captured per batch size, lazily,
// on the second consecutive step at that size (the first, plain step warms cuBLASLt's algorithm
// cache and loads the kernels), and all graphs are dropped at the end of the call.
#ifdef RUSCA_CUDA
#include "cuda_infer.h"

#include <nvtx3/nvToolsExt.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>

#include "cuda/attention.cuh"     // attention_forward (flash, causal): prefill without a prefix
#include "cuda/common.cuh"        // CUDA_CHECK
#include "cuda/device_buffer.h"   // DeviceBuffer
#include "cuda/embedding.cuh"     // embedding_forward (also a device-indexed row gather)
#include "cuda/kv_attention.cuh"  // kv_attention_forward_batched: decode and suffixes over a prefix
#include "cuda/matmul.cuh"        // linear_forward, gemm (LM head to fp32, V straight into the pool)
#include "cuda/rmsnorm.cuh"       // rmsnorm_forward, fused_residual_rmsnorm_forward
#include "cuda/rope.cuh"          // rope_forward
#include "cuda/sampler.cuh"       // sample_batch_with_workspace (+ its workspace size)
#include "cuda/swiglu.cuh"        // swiglu_forward
#include "host/error.h"
#include "host/gpu.h"
#include "host/params.h"
#include "host/safetensors.h"  // f32_to_bf16, bf16_to_f32

namespace rusca {

namespace {

using bf16 = __nv_bfloat16;
using Clock = std::chrono::steady_clock;

constexpr int kLogitRows = 512;  // LM head + sampling in chunks of rows: [512, V] fp32 logits at most
constexpr int kMaxGraphs = 64;   // decode graphs kept per call (one per batch size)

// NVTX range for the profiler timeline, closed at the end of the scope.
struct Range {
    explicit Range(const char* name) { nvtxRangePushA(name); }
    ~Range() { nvtxRangePop(); }
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }
bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

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

// One layer's weights on the device (nullptr: absent in this family).
struct LayerW {
    const bf16 *ln1, *wq, *bq, *wk, *bk, *wv, *bv, *q_norm, *k_norm, *wo, *ln2, *w_gate, *w_up, *w_down;
};

// Activations for up to `rows` rows fed at once.
struct Acts {
    int rows = 0;
    bf16 *x = nullptr, *ln = nullptr, *q = nullptr, *k = nullptr, *att = nullptr, *proj = nullptr;
    bf16 *gate = nullptr, *up = nullptr;
    float *rstd = nullptr, *lse = nullptr;
    int *tok = nullptr, *pos = nullptr;
};

void carve_acts(Arena& a, Acts& s, const ModelConfig& c, size_t N) {
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
std::vector<std::pair<int, int>> chunk_ranges(const std::vector<int>& lens, long long max_rows) {
    std::vector<std::pair<int, int>> out;
    for (int b = 0; b < int(lens.size());) {
        long long rows = lens[b];
        int e = b + 1;
        while (e < int(lens.size()) && rows + lens[e] <= max_rows) rows += lens[e++];
        out.push_back({b, e});
        b = e;
    }
    return out;
}

Verdict make_verdict(double margin) { return {margin > 0, float(1.0 / (1.0 + std::exp(-margin))), float(margin)}; }

}  // namespace

// ---------------------------------------------------------------------------------------------------

struct CudaEngine::Impl {
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
    std::vector<LayerW> layers;

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

    void reserve_acts(size_t rows);
    void reserve_pool(size_t rows_per_plane);
    void forward_feed(const Feed& f, bf16* keep_out, bool need_hidden);
    void mlp(int l, int N);
    void decode_forward(int B);
    void lm_head_and_sample(int B, const bf16* h);
    void decode_step(int B);
    bool capture(int B);
    void clear_graphs();
    void copy_planes(int src_row, int dst_row, size_t width_rows, int height, size_t pitch_rows);
    void upload_meta(int B);
};

CudaEngine::Impl::Impl(const ModelConfig& config, CudaEngineOptions options)
    : c(config), layout(config), opt(options), C(config.hidden_size), F(config.intermediate_size),
      D(config.head_dim), Q(config.q_dim()), KV(config.kv_dim()), Hq(config.num_heads), Hkv(config.num_kv_heads),
      L(config.num_layers), V(config.vocab_size) {
    require_gpu("the CUDA inference engine");
    check(opt.prefill_chunk_rows >= 1 && opt.judge_prefix_rows >= 1,
          "CudaEngineOptions: prefill_chunk_rows and judge_prefix_rows must be positive");
    // Non-blocking: the engine's work must not serialize with the trainer's stream.
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
}

// Our own copy: each tensor at a 256-byte boundary of one allocation, converted to bf16 on the host.
void CudaEngine::Impl::upload_weights(const float* host_params) {
    std::map<size_t, size_t> where;  // layout offset -> device element offset
    size_t total = 0;
    for (const ParamInfo& p : layout.tensors) where[p.offset] = total, total = align_up(total + p.numel, 128);
    std::vector<uint16_t> staging(total, 0);
    for (const ParamInfo& p : layout.tensors) {
        uint16_t* dst = staging.data() + where[p.offset];
        const float* src = host_params + p.offset;
#pragma omp parallel for
        for (long long i = 0; i < (long long)p.numel; i++) dst[i] = f32_to_bf16(src[i]);
    }
    weights = cuda::DeviceBuffer<bf16>(total);
    CUDA_CHECK(cudaMemcpy(weights.data(), staging.data(), total * sizeof(uint16_t), cudaMemcpyHostToDevice));
    point_at(weights.data(), where);
}

void CudaEngine::Impl::point_at(const bf16* base, const std::map<size_t, size_t>& where) {
    auto W = [&](size_t offset) -> const bf16* { return offset == kAbsent ? nullptr : base + where.at(offset); };
    embed = W(layout.embed), final_norm = W(layout.final_norm), lm_head = W(layout.lm_head);
    for (const LayerParams& p : layout.layers)
        layers.push_back({W(p.ln1), W(p.wq), W(p.bq), W(p.wk), W(p.bk), W(p.wv), W(p.bv), W(p.q_norm), W(p.k_norm),
                          W(p.wo), W(p.ln2), W(p.w_gate), W(p.w_up), W(p.w_down)});
}

// Borrowed: the tensors sit at their ParamLayout offsets.
void CudaEngine::Impl::share_weights(const bf16* shared) {
    std::map<size_t, size_t> where;
    for (const ParamInfo& p : layout.tensors) where[p.offset] = p.offset;
    point_at(shared, where);
}

CudaEngine::Impl::~Impl() {
    clear_graphs();
    if (!stream) return;
    try {
        cuda::release_matmul_workspace(stream);
    } catch (const Error&) {  // destructors must not throw; the fault resurfaces at the next call
    }
    cudaStreamDestroy(stream);
}

void CudaEngine::Impl::clear_graphs() {
    for (auto& g : graphs) cudaGraphExecDestroy(g.second);
    graphs.clear();
}

void CudaEngine::Impl::reserve_acts(size_t rows) {
    if (acts.rows >= int(rows)) return;
    Arena measure;
    carve_acts(measure, acts, c, rows);
    Arena a{ensure(acts_buf, measure.used), 0};
    carve_acts(a, acts, c, rows);
    ensure(seq_meta, 5 * rows);  // forward_feed: 4 arrays per sequence + keep rows, <= 5 per row
}

void CudaEngine::Impl::reserve_pool(size_t rows_per_plane) {
    const size_t bytes = 2 * size_t(L) * rows_per_plane * KV * sizeof(bf16);
    check(opt.max_kv_pool_bytes == 0 || bytes <= opt.max_kv_pool_bytes,
          "the KV pool needs " + std::to_string(bytes >> 20) + " MiB but the memory plan left it " +
              std::to_string(opt.max_kv_pool_bytes >> 20) + " MiB: lower --prompts-per-step, --group or --max-new-tokens");
    plane_rows = rows_per_plane;
    ensure(pool, 2 * size_t(L) * plane_rows * KV);
    stats.kv_pool_bytes = 2 * size_t(L) * plane_rows * KV * sizeof(bf16);
}

// Copies a block of rows in all 2L planes at once: `height` runs of `width_rows` rows, run y starting
// at row src_row + y * pitch_rows (to dst_row + y * pitch_rows). A 3-D copy of pitched linear memory:
// byte (x, y, z) of a pitched pointer is ptr + z * pitch * ysize + y * pitch + x, so with pitch =
// pitch_rows rows and ysize = plane_rows / pitch_rows, z steps from plane to plane.
void CudaEngine::Impl::copy_planes(int src_row, int dst_row, size_t width_rows, int height, size_t pitch_rows) {
    if (width_rows == 0 || height == 0) return;
    const size_t row_bytes = size_t(KV) * sizeof(bf16), pitch = pitch_rows * row_bytes;
    check(plane_rows % pitch_rows == 0, "copy_planes: the plane is not a whole number of slots (a rusca bug)");
    char* base = reinterpret_cast<char*>(pool.data());
    cudaMemcpy3DParms p = {};
    p.srcPtr = make_cudaPitchedPtr(base + size_t(src_row) * row_bytes, pitch, pitch, plane_rows / pitch_rows);
    p.dstPtr = make_cudaPitchedPtr(base + size_t(dst_row) * row_bytes, pitch, pitch, plane_rows / pitch_rows);
    p.extent = make_cudaExtent(width_rows * row_bytes, size_t(height), size_t(2 * L));
    p.kind = cudaMemcpyDeviceToDevice;
    CUDA_CHECK(cudaMemcpy3DAsync(&p, stream));
}

// The MLP half of layer l on N rows of acts.ln, adding into the residual acts.x, and the next norm
// (layer l + 1's input norm, or the final norm after the last layer) into acts.ln.
void CudaEngine::Impl::mlp(int l, int N) {
    const LayerW& w = layers[l];
    const float eps = c.rms_norm_eps;
    cuda::linear_forward(acts.gate, acts.ln, w.w_gate, nullptr, N, C, F, stream);
    cuda::linear_forward(acts.up, acts.ln, w.w_up, nullptr, N, C, F, stream);
    cuda::swiglu_forward(acts.gate, acts.gate, acts.up, size_t(N) * F, stream);
    cuda::linear_forward(acts.proj, acts.gate, w.w_down, nullptr, N, F, C, stream);
    const bf16* next = l + 1 < L ? layers[l + 1].ln1 : final_norm;
    cuda::fused_residual_rmsnorm_forward(acts.x, acts.ln, acts.rstd, acts.x, acts.proj, next, N, C, eps, stream);
}

// Feeds f's rows through the model, writing their keys/values to the pool. need_hidden: also run the
// rest of the last layer and gather the final-norm hidden states of f.keep into keep_out [keep, C]
// (without it, the last layer stops once its keys/values are written: a judge prefix needs no more).
void CudaEngine::Impl::forward_feed(const Feed& f, bf16* keep_out, bool need_hidden) {
    Range range("forward_feed");
    const int N = int(f.tokens.size()), S = int(f.n.size()), G = int(f.keep.size());
    check(N >= 1 && N <= acts.rows, "forward_feed: batch of rows out of the reserved size (a rusca bug)");
    const float eps = c.rms_norm_eps;
    // Per-sequence arrays: prefix_start, prefix_len, own_start, own_len [S], then keep [G].
    std::vector<int> m(size_t(4) * S + G);
    for (int i = 0, row = 0; i < S; row += f.n[i], i++) {
        m[i] = f.prefix_start[i], m[S + i] = f.prefix_len[i], m[2 * S + i] = f.dst + row, m[3 * S + i] = f.n[i];
    }
    std::copy(f.keep.begin(), f.keep.end(), m.begin() + 4 * S);
    check(m.size() <= seq_meta.size(), "forward_feed: metadata out of the reserved size (a rusca bug)");
    int* dm = seq_meta.data();
    CUDA_CHECK(cudaMemcpyAsync(dm, m.data(), m.size() * sizeof(int), cudaMemcpyHostToDevice, stream));
    CUDA_CHECK(cudaMemcpyAsync(acts.tok, f.tokens.data(), N * sizeof(int), cudaMemcpyHostToDevice, stream));
    CUDA_CHECK(cudaMemcpyAsync(acts.pos, f.pos.data(), N * sizeof(int), cudaMemcpyHostToDevice, stream));
    stats.prefill_tokens += N;

    cuda::embedding_forward(acts.x, acts.tok, embed, N, C, stream);
    cuda::rmsnorm_forward(acts.ln, acts.rstd, acts.x, layers[0].ln1, N, C, eps, stream);
    for (int l = 0; l < L; l++) {
        const LayerW& w = layers[l];
        bf16 *pk = pool_k(l), *pv = pool_v(l);
        cuda::linear_forward(acts.q, acts.ln, w.wq, w.bq, N, C, Q, stream);
        cuda::linear_forward(acts.k, acts.ln, w.wk, w.bk, N, C, KV, stream);
        cuda::linear_forward(pv + size_t(f.dst) * KV, acts.ln, w.wv, w.bv, N, C, KV, stream);
        if (c.qk_norm) {  // Qwen3: per-head RMSNorm of q and k before RoPE
            cuda::rmsnorm_forward(acts.q, acts.rstd, acts.q, w.q_norm, N * Hq, D, eps, stream);
            cuda::rmsnorm_forward(acts.k, acts.rstd, acts.k, w.k_norm, N * Hkv, D, eps, stream);
        }
        cuda::rope_forward(acts.q, acts.q, acts.pos, N, Hq, D, c.rope_theta, stream);
        cuda::rope_forward(pk + size_t(f.dst) * KV, acts.k, acts.pos, N, Hkv, D, c.rope_theta, stream);
        if (l == L - 1 && !need_hidden) break;
        // Attention, one call per run of sequences with the same length (and prefix or none).
        for (int i = 0, row = 0; i < S;) {
            const int n = f.n[i], has_prefix = f.prefix_len[i] > 0;
            int e = i, max_prefix = 0;
            while (e < S && f.n[e] == n && (f.prefix_len[e] > 0) == has_prefix)
                max_prefix = std::max(max_prefix, f.prefix_len[e++]);
            const int count = e - i;
            bf16* out = acts.att + size_t(row) * Q;
            const bf16* q = acts.q + size_t(row) * Q;
            const bf16* k = pk + size_t(f.dst + row) * KV;
            const bf16* v = pv + size_t(f.dst + row) * KV;
            const bool flash = opt.flash_prefill && !has_prefix && (D == 64 || D == 128) && count <= 65535 &&
                               aligned16(out) && aligned16(q) && aligned16(k) && aligned16(v);
            if (flash)
                cuda::attention_forward(out, acts.lse, q, k, v, count, n, Hq, Hkv, D, stream);
            else
                cuda::kv_attention_forward_batched(out, q, pk, pv, dm + i, dm + S + i, pk, pv, dm + 2 * S + i,
                                                   dm + 3 * S + i, count, n, max_prefix + n, Hq, Hkv, D, nullptr, 0,
                                                   stream);
            row += count * n, i = e;
        }
        cuda::linear_forward(acts.proj, acts.att, w.wo, nullptr, N, Q, C, stream);
        cuda::fused_residual_rmsnorm_forward(acts.x, acts.ln, acts.rstd, acts.x, acts.proj, w.ln2, N, C, eps, stream);
        mlp(l, N);
    }
    if (need_hidden && G > 0) cuda::embedding_forward(keep_out, dm + 4 * S, acts.ln, G, C, stream);  // row gather
}

// One decode step for batch rows 0..B-1, reading only device arrays (dec_meta, dec_seq) for what
// changes from step to step, so it can be captured in a CUDA graph: embedding of each row's token,
// the layers (new K/V into row 0 of the row's slot), final norm, LM head, sampling.
void CudaEngine::Impl::decode_forward(int B) {
    const float eps = c.rms_norm_eps;
    const size_t row_bytes = size_t(KV) * sizeof(bf16), slot_rows = size_t(max_new);
    cuda::embedding_forward(acts.x, meta(kTok), embed, B, C, stream);
    cuda::rmsnorm_forward(acts.ln, acts.rstd, acts.x, layers[0].ln1, B, C, eps, stream);
    for (int l = 0; l < L; l++) {
        const LayerW& w = layers[l];
        bf16 *pk = pool_k(l), *pv = pool_v(l);
        bf16* row0 = pv + size_t(own_base) * KV;  // row 0 of slot 0; slot b's row 0 is slot_rows rows further
        cuda::linear_forward(acts.q, acts.ln, w.wq, w.bq, B, C, Q, stream);
        cuda::linear_forward(acts.k, acts.ln, w.wk, w.bk, B, C, KV, stream);
        // v = ln Wv^T + bv written straight into row 0 of every slot (output row stride = one slot)
        cuda::gemm(row0, false, int(slot_rows * KV), cuda::MatRef{acts.ln, C, false}, cuda::MatRef{w.wv, C, true},
                   B, KV, C, 1.0f, 0.0f, w.bv, stream);
        if (c.qk_norm) {
            cuda::rmsnorm_forward(acts.q, acts.rstd, acts.q, w.q_norm, B * Hq, D, eps, stream);
            cuda::rmsnorm_forward(acts.k, acts.rstd, acts.k, w.k_norm, B * Hkv, D, eps, stream);
        }
        cuda::rope_forward(acts.q, acts.q, meta(kPos), B, Hq, D, c.rope_theta, stream);
        cuda::rope_forward(acts.k, acts.k, meta(kPos), B, Hkv, D, c.rope_theta, stream);
        CUDA_CHECK(cudaMemcpy2DAsync(pk + size_t(own_base) * KV, slot_rows * row_bytes, acts.k, row_bytes, row_bytes,
                                     size_t(B), cudaMemcpyDeviceToDevice, stream));
        cuda::kv_attention_forward_batched(acts.att, acts.q, pk, pv, meta(kPrefixStart), meta(kPrefixLen), pk, pv,
                                           meta(kOwnStart), meta(kOwnLen), B, 1, dec_max_len, Hq, Hkv, D,
                                           attn_ws_bytes ? attn_ws.data() : nullptr, attn_ws_bytes, stream);
        cuda::linear_forward(acts.proj, acts.att, w.wo, nullptr, B, Q, C, stream);
        cuda::fused_residual_rmsnorm_forward(acts.x, acts.ln, acts.rstd, acts.x, acts.proj, w.ln2, B, C, eps, stream);
        mlp(l, B);
    }
    lm_head_and_sample(B, acts.ln);
}

// logits = h Wlm^T in fp32, then one token per row into dec_tok / dec_lp, with counters
// (seed, dec_seq[b], step[b]); in chunks of kLogitRows rows.
void CudaEngine::Impl::lm_head_and_sample(int B, const bf16* h) {
    for (int r0 = 0; r0 < B; r0 += kLogitRows) {
        const int rows = std::min(kLogitRows, B - r0);
        cuda::gemm(logits.data(), true, V, cuda::MatRef{h + size_t(r0) * C, C, false}, cuda::MatRef{lm_head, C, true},
                   rows, V, C, 1.0f, 0.0f, nullptr, stream);
        if (trace) {  // test hook (never inside a graph)
            std::vector<float> host(size_t(rows) * V);
            CUDA_CHECK(cudaMemcpyAsync(host.data(), logits.data(), host.size() * sizeof(float), cudaMemcpyDeviceToHost,
                                       stream));
            CUDA_CHECK(cudaStreamSynchronize(stream));
            for (int b = 0; b < rows; b++)
                (*trace)[batch_rollouts[r0 + b]].emplace_back(host.begin() + size_t(b) * V,
                                                               host.begin() + size_t(b + 1) * V);
        }
        cuda::sample_batch_with_workspace(dec_tok.data() + r0, dec_lp.data() + r0, logits.data(), rows, V, sampling,
                                          seed, dec_seq.data() + r0, meta(kStep) + r0,
                                          sample_ws_bytes ? sample_ws.data() : nullptr, sample_ws_bytes, stream);
    }
}

void CudaEngine::Impl::upload_meta(int B) {
    CUDA_CHECK(cudaMemcpyAsync(dec_meta.data(), meta_h.data(), meta_h.size() * sizeof(int), cudaMemcpyHostToDevice,
                               stream));
    CUDA_CHECK(cudaMemcpyAsync(dec_seq.data(), seq_h.data(), size_t(B) * sizeof(uint64_t), cudaMemcpyHostToDevice,
                               stream));
}

// Captures decode_forward(B) into a graph. On any failure the capture is ended, the error cleared,
// graphs are switched off for this call (a warning says so) and false is returned: the caller runs
// the step with plain launches, which gives the same result.
bool CudaEngine::Impl::capture(int B) {
    cudaGraph_t graph = nullptr;
    std::string error;
    CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    try {
        decode_forward(B);
    } catch (const std::exception& e) {
        error = e.what();
    }
    cudaError_t err = cudaStreamEndCapture(stream, &graph);
    if (error.empty() && err != cudaSuccess) error = cudaGetErrorString(err);
    cudaGraphExec_t exec = nullptr;
    if (error.empty()) {
        err = cudaGraphInstantiate(&exec, graph, 0);
        if (err != cudaSuccess) error = cudaGetErrorString(err), exec = nullptr;
    }
    if (graph) cudaGraphDestroy(graph);
    if (!error.empty()) {
        cudaGetLastError();  // capture errors are not sticky; clear the last-error slot
        std::fprintf(stderr, "rusca: warning: CUDA graph capture of the decode step failed (%s); decoding without "
                     "graphs\n", error.c_str());
        graphs_broken = true, stats.graphs_failed = true;
        return false;
    }
    graphs[B] = exec;
    stats.graphs_captured++;
    return true;
}

// One decode step (metadata already uploaded): the graph for B if there is one, else capture one
// when the previous step ran plain launches at this same B (everything is warm), else plain launches.
void CudaEngine::Impl::decode_step(int B) {
    Range range("decode_step");
    const bool graphs_on = opt.cuda_graphs && !trace && !graphs_broken;
    auto it = graphs.find(B);
    if (graphs_on && it == graphs.end() && prev_eager_B == B && int(graphs.size()) < kMaxGraphs && capture(B))
        it = graphs.find(B);
    if (graphs_on && it != graphs.end()) {
        CUDA_CHECK(cudaGraphLaunch(it->second, stream));
        stats.graph_launches++;
        return;
    }
    decode_forward(B);
    stats.eager_steps++;
    prev_eager_B = B;
}

std::vector<std::vector<Completion>> CudaEngine::Impl::generate(const std::vector<PromptGroup>& groups,
                                                               const GenerateOptions& gopt) {
    Range range("CudaEngine::generate");
    gopt.sampling.validate();
    check(gopt.max_new_tokens > 0, "max_new_tokens must be positive");
    check(gopt.rollout_base.empty() || gopt.rollout_base.size() == groups.size(), "rollout_base: one id per group");
    stats = CudaEngineStats{};
    const auto t_start = Clock::now();

    // Rollouts and their distinct full prefixes (prefix + prompt), one prefill each, as generate().
    std::map<std::vector<int>, int> index;
    std::vector<std::vector<int>> distinct;
    std::vector<int> roll_prefix;                 // [R] -> distinct
    std::vector<std::pair<int, int>> roll_where;  // [R] -> (group, rollout)
    for (size_t g = 0; g < groups.size(); g++) {
        check(!groups[g].prompt.empty(), "prompt " + std::to_string(g) + " has no tokens");
        for (size_t i = 0; i < groups[g].prefixes.size(); i++) {
            std::vector<int> full = groups[g].prefixes[i];
            full.insert(full.end(), groups[g].prompt.begin(), groups[g].prompt.end());
            for (int t : full)
                check(t >= 0 && t < V, "prompt " + std::to_string(g) + ": token id " + std::to_string(t) +
                                           " is outside the vocabulary");
            check(full.size() + size_t(gopt.max_new_tokens) <= size_t(c.max_position_embeddings),
                  "prompt " + std::to_string(g) + ": " + std::to_string(full.size()) + " prompt tokens + " +
                      std::to_string(gopt.max_new_tokens) + " new tokens exceed max_position_embeddings " +
                      std::to_string(c.max_position_embeddings));
            auto it = index.find(full);
            if (it == index.end()) it = index.emplace(full, int(distinct.size())).first, distinct.push_back(full);
            roll_prefix.push_back(it->second);
            roll_where.push_back({int(g), int(i)});
        }
    }
    std::vector<std::vector<Completion>> out(groups.size());
    for (size_t g = 0; g < groups.size(); g++) out[g].resize(groups[g].prefixes.size());
    const int R = int(roll_prefix.size()), P = int(distinct.size());
    if (R == 0) return out;
    auto completion = [&](int r) -> Completion& { return out[roll_where[r].first][roll_where[r].second]; };
    if (trace) trace->assign(R, {});

    // Pool layout: the distinct prefixes, longest first (equal lengths adjacent: one attention call
    // each), then one slot of max_new rows per rollout.
    max_new = gopt.max_new_tokens;
    std::vector<int> order(P), slot_of(P), prefix_row(P), lens;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return distinct[a].size() > distinct[b].size(); });
    long long rows = 0;
    int longest = 0;
    for (int k = 0; k < P; k++) {
        const int p = order[k], len = int(distinct[p].size());
        slot_of[p] = k, prefix_row[p] = int(rows), lens.push_back(len);
        rows += len, longest = std::max(longest, len);
    }
    check(rows + (long long)R * max_new + max_new <= INT_MAX, "generate: too many tokens for one call");
    own_base = int(rows);
    reserve_pool(align_up(size_t(own_base) + size_t(R) * max_new, size_t(max_new)));
    const std::vector<std::pair<int, int>> chunks = chunk_ranges(lens, opt.prefill_chunk_rows);
    long long chunk_max = 0;
    for (auto [b, e] : chunks)
        chunk_max = std::max(chunk_max, std::accumulate(lens.begin() + b, lens.begin() + e, 0LL));
    reserve_acts(size_t(std::max<long long>(chunk_max, R)));
    bf16* prefix_last = ensure(hidden, size_t(P) * C);  // final hidden of each prefix's last token, by k

    // Decode state and its buffers, all sized now: nothing may be reallocated once a graph exists.
    Bcap = R, sampling = gopt.sampling, seed = gopt.seed, dec_max_len = longest + max_new;
    meta_h.assign(size_t(kMetaArrays) * Bcap, 0);
    seq_h.assign(size_t(Bcap), 0);
    ensure(dec_meta, meta_h.size()), ensure(dec_seq, size_t(Bcap));
    ensure(dec_tok, size_t(Bcap)), ensure(dec_lp, size_t(Bcap));
    ensure(logits, size_t(std::min(Bcap, kLogitRows)) * V);
    attn_ws_bytes = cuda::kv_attention_workspace_bytes(Bcap, 1, dec_max_len, Hq, D);
    ensure(attn_ws, attn_ws_bytes);
    sample_ws_bytes = 0;
    for (int b = 1; b <= std::min(Bcap, kLogitRows); b++)
        sample_ws_bytes = std::max(sample_ws_bytes, cuda::sample_batch_workspace_bytes(b, V, sampling));
    ensure(sample_ws, sample_ws_bytes);
    clear_graphs();
    graphs_broken = false;
    struct DropGraphs {  // graphs hold this call's pointers and sizes: never reuse them
        Impl* self;
        ~DropGraphs() { self->clear_graphs(); }
    } drop{this};

    // Prefill, chunk by chunk.
    for (auto [b, e] : chunks) {
        Feed f;
        f.dst = prefix_row[order[b]];
        for (int k = b; k < e; k++) f.add(distinct[order[k]].data(), lens[k], 0, 0);
        forward_feed(f, prefix_last + size_t(b) * C, true);
    }

    // Step 0: every rollout samples from its prefix's last hidden state.
    std::vector<int> tok_h(Bcap);
    std::vector<float> lp_h(Bcap);
    std::vector<char> finished(R, 0);
    const std::vector<int>& stops = gopt.stop_tokens;
    auto is_stop = [&](int t) { return std::find(stops.begin(), stops.end(), t) != stops.end(); };
    std::vector<int> active(R);
    std::iota(active.begin(), active.end(), 0);
    auto sample_and_record = [&](int B, int step, bool first) {
        if (first) {
            lm_head_and_sample(B, acts.ln);
        } else {
            decode_step(B);
        }
        CUDA_CHECK(cudaMemcpyAsync(tok_h.data(), dec_tok.data(), B * sizeof(int), cudaMemcpyDeviceToHost, stream));
        CUDA_CHECK(cudaMemcpyAsync(lp_h.data(), dec_lp.data(), B * sizeof(float), cudaMemcpyDeviceToHost, stream));
        CUDA_CHECK(cudaStreamSynchronize(stream));
        for (int b = 0; b < B; b++) {
            const int r = active[b];
            Completion& comp = completion(r);
            comp.tokens.push_back(tok_h[b]), comp.logprobs.push_back(lp_h[b]);
            if (is_stop(tok_h[b])) comp.stopped = true, finished[r] = 1;
            if (step + 1 == max_new) finished[r] = 1;
        }
    };
    for (int b = 0; b < R; b++) {
        meta_at(kTok, b) = slot_of[roll_prefix[b]];  // the gather index: this rollout's prefix row of prefix_last
        meta_at(kStep, b) = 0;
        seq_h[b] = rollout_rng_id(gopt, b, roll_where[b].first, roll_where[b].second);
    }
    batch_rollouts = active;
    upload_meta(R);
    cuda::embedding_forward(acts.ln, meta(kTok), prefix_last, R, C, stream);  // row gather
    sample_and_record(R, 0, true);
    stats.prefill_s = seconds_since(t_start);

    // Decode: feed j writes own row j (via row 0, see the top of the file) and samples step j + 1.
    const auto t_decode = Clock::now();
    prev_eager_B = -1;
    for (int j = 0;; j++) {
        // Compact: the last active slot moves into each finished one (its j filled rows, all planes).
        int n = int(active.size());
        auto pop = [&] {
            while (n > 0 && finished[active[n - 1]]) n--;
        };
        pop();
        for (int b = 0; b < n; b++) {
            if (!finished[active[b]]) continue;
            copy_planes(own_base + (n - 1) * max_new, own_base + b * max_new, size_t(j), 1, size_t(max_new));
            active[b] = active[n - 1], n--;
            pop();
        }
        active.resize(n);
        if (n == 0) break;
        const int B = n;
        // Row 0 (the newest, token j - 1) of every slot moves to row j; this step writes row 0.
        if (j > 0) copy_planes(own_base, own_base + j, 1, B, size_t(max_new));
        for (int b = 0; b < B; b++) {
            const int r = active[b], p = roll_prefix[r], plen = int(distinct[p].size());
            meta_at(kTok, b) = completion(r).tokens.back();
            meta_at(kPos, b) = plen + j;
            meta_at(kPrefixStart, b) = prefix_row[p], meta_at(kPrefixLen, b) = plen;
            meta_at(kOwnStart, b) = own_base + b * max_new, meta_at(kOwnLen, b) = j + 1;
            meta_at(kStep, b) = j + 1;
            seq_h[b] = rollout_rng_id(gopt, r, roll_where[r].first, roll_where[r].second);
        }
        batch_rollouts = active;
        upload_meta(B);
        sample_and_record(B, j + 1, false);
        stats.decode_steps++, stats.decoded_rows += B;
    }
    stats.decode_s = seconds_since(t_decode);
    return out;
}

std::vector<std::vector<Verdict>> CudaEngine::Impl::judge(const std::vector<JudgeTokens>& items, int yes_id,
                                                         int no_id) {
    Range range("CudaEngine::judge");
    check(yes_id >= 0 && yes_id < V && no_id >= 0 && no_id < V, "judge: answer token ids are outside the judge "
                                                                "model's vocabulary");
    check(yes_id != no_id, "judge: the yes and no answer tokens must differ");
    stats = CudaEngineStats{};
    const auto t_start = Clock::now();
    const int I = int(items.size());
    for (int i = 0; i < I; i++) {
        const JudgeTokens& it = items[i];
        check(!it.prefix.empty(), "judge: item " + std::to_string(i) + " has an empty prefix");
        for (int t : it.prefix)
            check(t >= 0 && t < V, "judge: item " + std::to_string(i) + ": token id " + std::to_string(t) +
                                       " is outside the vocabulary");
        for (const std::vector<int>& s : it.suffixes) {
            check(!s.empty(), "judge: item " + std::to_string(i) + " has an empty criterion suffix");
            for (int t : s)
                check(t >= 0 && t < V, "judge: item " + std::to_string(i) + ": token id " + std::to_string(t) +
                                           " is outside the vocabulary");
            check(it.prefix.size() + s.size() <= size_t(c.max_position_embeddings),
                  "judge: item " + std::to_string(i) + ": the judge prompt has " +
                      std::to_string(it.prefix.size() + s.size()) + " tokens, more than the judge's "
                      "max_position_embeddings " + std::to_string(c.max_position_embeddings));
        }
    }
    std::vector<std::vector<Verdict>> out(I);
    for (int i = 0; i < I; i++) out[i].resize(items[i].suffixes.size());

    // w_yes - w_no from the device's own (bf16) LM head: the margin is this model's logit difference.
    std::vector<uint16_t> wy(C), wn(C);
    CUDA_CHECK(cudaMemcpy(wy.data(), lm_head + size_t(yes_id) * C, C * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(wn.data(), lm_head + size_t(no_id) * C, C * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    std::vector<double> w_diff(C);
    for (int k = 0; k < C; k++) w_diff[k] = double(bf16_to_f32(wy[k])) - double(bf16_to_f32(wn[k]));

    // Items longest prefix first, in chunks of at most judge_prefix_rows prefix rows; per item chunk,
    // its suffixes longest first in feeds of at most prefill_chunk_rows rows.
    std::vector<int> order(I), plens(I);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return items[a].prefix.size() > items[b].prefix.size(); });
    for (int k = 0; k < I; k++) plens[k] = int(items[order[k]].prefix.size());
    struct Sfx {
        int item, criterion, len;
    };
    struct ItemChunk {
        int b, e;
        std::vector<std::pair<int, int>> prefix_feeds;  // ranges of k
        std::vector<Sfx> sfx;                           // sorted, longest first
        std::vector<std::pair<int, int>> sfx_feeds;     // ranges of sfx
    };
    std::vector<ItemChunk> chunks;
    long long max_prefix_rows = 0, max_sfx_rows = 0, max_feed_rows = 1;
    size_t max_keep = 1;
    for (auto [b, e] : chunk_ranges(plens, opt.judge_prefix_rows)) {
        ItemChunk ch{b, e, {}, {}, {}};
        std::vector<int> sub(plens.begin() + b, plens.begin() + e), slens;
        for (auto [sb, se] : chunk_ranges(sub, opt.prefill_chunk_rows)) {
            ch.prefix_feeds.push_back({b + sb, b + se});
            max_feed_rows = std::max(max_feed_rows, std::accumulate(sub.begin() + sb, sub.begin() + se, 0LL));
        }
        max_prefix_rows = std::max(max_prefix_rows, std::accumulate(sub.begin(), sub.end(), 0LL));
        for (int k = b; k < e; k++)
            for (size_t s = 0; s < items[order[k]].suffixes.size(); s++)
                ch.sfx.push_back({k, int(s), int(items[order[k]].suffixes[s].size())});
        std::stable_sort(ch.sfx.begin(), ch.sfx.end(), [](const Sfx& x, const Sfx& y) { return x.len > y.len; });
        for (const Sfx& s : ch.sfx) slens.push_back(s.len);
        ch.sfx_feeds = chunk_ranges(slens, opt.prefill_chunk_rows);
        for (auto [sb, se] : ch.sfx_feeds) {
            const long long r = std::accumulate(slens.begin() + sb, slens.begin() + se, 0LL);
            max_sfx_rows = std::max(max_sfx_rows, r), max_feed_rows = std::max(max_feed_rows, r);
            max_keep = std::max(max_keep, size_t(se - sb));
        }
        chunks.push_back(std::move(ch));
    }
    check(max_prefix_rows + max_sfx_rows <= INT_MAX, "judge: too many tokens in one chunk");
    const int sfx_base = int(max_prefix_rows);
    reserve_pool(size_t(max_prefix_rows + max_sfx_rows));
    reserve_acts(size_t(max_feed_rows));
    bf16* keep = ensure(hidden, max_keep * C);
    std::vector<uint16_t> keep_h(max_keep * C);

    for (const ItemChunk& ch : chunks) {
        std::vector<int> row_of(I, 0);  // pool row of item-order k's prefix
        for (int k = ch.b, row = 0; k < ch.e; row += plens[k], k++) row_of[k] = row;
        for (auto [b, e] : ch.prefix_feeds) {
            Feed f;
            f.dst = row_of[b];
            for (int k = b; k < e; k++) f.add(items[order[k]].prefix.data(), plens[k], 0, 0);
            forward_feed(f, nullptr, false);
        }
        for (auto [b, e] : ch.sfx_feeds) {
            Feed f;
            f.dst = sfx_base;
            for (int s = b; s < e; s++) {
                const Sfx& x = ch.sfx[s];
                const std::vector<int>& t = items[order[x.item]].suffixes[x.criterion];
                f.add(t.data(), x.len, row_of[x.item], plens[x.item]);
            }
            forward_feed(f, keep, true);
            const size_t count = size_t(e - b);
            CUDA_CHECK(cudaMemcpyAsync(keep_h.data(), keep, count * C * sizeof(uint16_t), cudaMemcpyDeviceToHost,
                                       stream));
            CUDA_CHECK(cudaStreamSynchronize(stream));
            for (int s = b; s < e; s++) {
                const uint16_t* h = keep_h.data() + size_t(s - b) * C;
                double margin = 0;
                for (int k = 0; k < C; k++) margin += double(bf16_to_f32(h[k])) * w_diff[k];
                out[order[ch.sfx[s].item]][ch.sfx[s].criterion] = make_verdict(margin);
            }
        }
    }
    CUDA_CHECK(cudaStreamSynchronize(stream));
    stats.prefill_s = seconds_since(t_start);
    return out;
}

// ---------------------------------------------------------------------------------------------------

CudaEngine::CudaEngine(const ModelConfig& c, const float* host_params, CudaEngineOptions opt)
    : config(c), impl_(std::make_unique<Impl>(c, opt)) {
    impl_->upload_weights(host_params);
}
CudaEngine::CudaEngine(const ModelConfig& c, SharedWeights shared, CudaEngineOptions opt)
    : config(c), impl_(std::make_unique<Impl>(c, opt)) {
    check(shared.bf16 != nullptr, "CudaEngine: no shared weights given");
    impl_->share_weights(static_cast<const bf16*>(shared.bf16));
}
CudaEngine::~CudaEngine() = default;

std::vector<std::vector<Completion>> CudaEngine::generate(const std::vector<PromptGroup>& groups,
                                                          const GenerateOptions& opt) {
    return impl_->generate(groups, opt);
}

std::vector<std::vector<Verdict>> CudaEngine::judge(const std::vector<JudgeTokens>& items, int yes_id, int no_id) {
    return impl_->judge(items, yes_id, no_id);
}

const CudaEngineStats& CudaEngine::stats() const { return impl_->stats; }

void CudaEngine::trace_logits(std::vector<std::vector<std::vector<float>>>* out) { impl_->trace = out; }

std::vector<std::vector<Verdict>> cuda_judge(CudaEngine& engine, const Judge& judge,
                                             const std::vector<JudgeItem>& items) {
    std::vector<JudgeTokens> tokens(items.size());
    for (size_t i = 0; i < items.size(); i++) {
        tokens[i].prefix = judge.prefix_tokens(items[i]);
        for (const Criterion& c : items[i].example->rubrics) tokens[i].suffixes.push_back(judge.suffix_tokens(c));
    }
    return engine.judge(tokens, judge.yes_id(), judge.no_id());
}

}  // namespace rusca
#endif  // RUSCA_CUDA
