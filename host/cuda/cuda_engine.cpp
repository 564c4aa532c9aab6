// cuda_engine.cpp: the CUDA inference engine's construction, weights (its own bf16 copy or the
// trainer's, shared), KV pool and activation reservations, the pool's row copies, and the public
// CudaEngine (host/cuda/cuda_infer.h) forwarding to its Impl (host/cuda/engine_impl.h).
#ifdef RUSCA_CUDA
#include <string>

#include "cuda/common.cuh"  // CUDA_CHECK
#include "cuda/matmul.cuh"  // release_matmul_workspace
#include "engine_impl.h"
#include "host/error.h"
#include "host/gpu.h"          // require_gpu
#include "host/safetensors.h"  // f32_to_bf16

namespace rusca {

using namespace cuda_engine;

// Consecutive ranges [begin, end) of `lens` whose sum stays within max_rows (a longer single item is
// a range of its own).
std::vector<std::pair<int, int>> cuda_engine::chunk_ranges(const std::vector<int>& lens, long long max_rows) {
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

CudaEngine::Impl::Impl(const ModelConfig& config, CudaEngineOptions options)
    : c(config), layout(config), opt(options), C(config.hidden_size), F(config.intermediate_size),
      D(config.head_dim), Q(config.q_dim()), KV(config.kv_dim()), Hq(config.num_heads), Hkv(config.num_kv_heads),
      L(config.num_layers), V(config.vocab_size) {
    require_gpu("the CUDA inference engine");
    check(opt.prefill_chunk_rows >= 1 && opt.judge_prefix_rows >= 1,
          "CudaEngineOptions: prefill_chunk_rows and judge_prefix_rows must be positive");
    // Non-blocking: the engine's work must not serialize with the trainer's stream.
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    check(opt.max_kv_pool_bytes == 0 || opt.reserve_kv_pool_bytes <= opt.max_kv_pool_bytes,
          "CudaEngineOptions: the KV pool reserve exceeds its cap (a rusca bug)");
    if (opt.reserve_kv_pool_bytes > 0) ensure(pool, opt.reserve_kv_pool_bytes / sizeof(bf16));
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
    for (const auto& [offset, at] : where) tensor[offset] = base + at;
    embed = W(layout.embed), final_norm = W(layout.final_norm), lm_head = W(layout.lm_head);
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

void CudaEngine::Impl::upload_meta(int B) {
    CUDA_CHECK(cudaMemcpyAsync(dec_meta.data(), meta_h.data(), meta_h.size() * sizeof(int), cudaMemcpyHostToDevice,
                               stream));
    CUDA_CHECK(cudaMemcpyAsync(dec_seq.data(), seq_h.data(), size_t(B) * sizeof(uint64_t), cudaMemcpyHostToDevice,
                               stream));
}

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

size_t CudaEngine::kv_pool_capacity_bytes() const { return impl_->pool.size() * sizeof(__nv_bfloat16); }

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
