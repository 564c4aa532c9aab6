// cuda_model.cpp: the CUDA training backend behind the Model interface. The graph is host/graph.h's,
// the one the CPU reference runs, on the CUDA op table (host/cuda/graph_ops.h, cuda/<family>.cuh):
//
//   bf16 weights, activations and activation gradients; fp32 master weights, weight gradients and
//   AdamW moments; fp32 math everywhere. The pre-norm residual adds are fused with the next RMSNorm.
//   The LM head + cross-entropy never holds the whole batch's logits (cuda/cross_entropy.cuh).
//
// Memory: one device allocation for the bf16 weights and fp32 gradients, one each for the fp32
// master weights and AdamW moments (made when training first needs them: until then the host copy
// of the weights is the master), and one for the activations of the current (B, T), carved into
// named pointers. Under ZeRO-1 (shard_optimizer) master and moments are only this rank's slice:
// 18 -> 6 + 12/world bytes per parameter, never the full size first.
// The CPU backend and this one are compared in tests/test_cuda_model.cpp.
#ifdef RUSCA_CUDA
#include <nvtx3/nvToolsExt.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "cuda/adamw.cuh"
#include "cuda/attention.cuh"
#include "cuda/common.cuh"
#include "cuda/cross_entropy.cuh"
#include "cuda/device_buffer.h"
#include "cuda/grpo_loss.cuh"
#include "cuda/matmul.cuh"
#include "host/cpu/ops.h"  // linear_forward (logits() on the host)
#include "graph_ops.h"     // cuda::GraphOps: the op table of host/graph.h
#include "host/error.h"
#include "host/graph.h"
#include "host/memory_plan.h"  // training_activation_bytes
#include "host/model.h"
#include "host/safetensors.h"

namespace rusca {

namespace {

using bf16 = __nv_bfloat16;

// NVTX range for the profiler timeline, closed at the end of the scope.
struct Range {
    explicit Range(const char* name) { nvtxRangePushA(name); }
    ~Range() { nvtxRangePop(); }
};

// `b` with room for at least n elements (grow-only; the old contents are not kept).
template <typename T>
T* ensure_size(cuda::DeviceBuffer<T>& b, size_t n) {
    if (b.size() < n) {
        b = cuda::DeviceBuffer<T>();  // free first: the new buffer may need the space
        b = cuda::DeviceBuffer<T>(n);
    }
    return b.data();
}

// Hands out 256-byte aligned pieces of one device allocation.
class Arena {
public:
    // Grow-only: RL micro-batches change T every call, and a cudaMalloc/cudaFree pair per call would
    // stall the device; the old buffer is freed before the new one is taken (no 2x peak).
    void reset(size_t bytes) {
        if (buf_.size() < bytes) {
            buf_ = cuda::DeviceBuffer<unsigned char>();
            buf_ = cuda::DeviceBuffer<unsigned char>(bytes);
        }
        used_ = 0;
    }
    template <typename T>
    T* take(size_t n) {
        const size_t at = (used_ + 255) / 256 * 256;
        check(at + n * sizeof(T) <= buf_.size(), "cuda arena: out of the space reserved for it (a rusca bug)");
        used_ = at + n * sizeof(T);
        return reinterpret_cast<T*>(buf_.data() + at);
    }
    static size_t padded(size_t bytes) { return (bytes + 255) / 256 * 256; }

private:
    cuda::DeviceBuffer<unsigned char> buf_;
    size_t used_ = 0;
};

// What the forward saves per layer for the backward (device pointers into the activation arena).
struct LayerActs {
    bf16 *res_in, *ln1, *q_lin, *k_lin, *q, *k, *v, *att, *res_mid, *ln2, *gate, *up, *act;
    float *rstd1, *rstd_q, *rstd_k, *lse, *rstd2;
};

// Freed stream-ordered scratch (the fused losses' logits chunks) up to this much stays in the pool
// for the next call; beyond it, memory goes back to the driver at the next synchronization, so a
// one-off large call does not starve later cudaMallocs (the KV pool, another engine).
constexpr uint64_t kPoolKeepBytes = 1ull << 30;

// Elements past the last parameter in the weight and gradient buffers: ZeRO-1's collectives work on
// the flat array zero-padded to world * chunk (fewer than world extra elements), in place.
constexpr size_t kShardPad = 4096;

class CudaModel final : public Model {
public:
    CudaModel(const ModelConfig& c, bool frozen) : Model(c), frozen_(frozen), host_params_(layout.total) {
        int dev = 0;
        cudaMemPool_t pool;
        uint64_t keep = kPoolKeepBytes;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, dev));
        CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
        // Our own non-blocking stream: the legacy default stream would serialize with every engine.
        CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        const size_t n = layout.total, np = n + kShardPad;
        // A frozen model (the RL reference) holds only what its forward reads.
        params_arena_.reset(Arena::padded(np * sizeof(bf16)) + (frozen ? 0 : Arena::padded(np * sizeof(float))));
        w_ = params_arena_.take<bf16>(np);
        CUDA_CHECK(cudaMemset(w_, 0, np * sizeof(bf16)));
        if (frozen) return;
        grads_ = params_arena_.take<float>(np);
        CUDA_CHECK(cudaMemset(grads_, 0, np * sizeof(float)));
        shard_.chunk = shard_.hi = n;
    }
    ~CudaModel() override {
        try {
            cuda::release_matmul_workspace(stream_);
        } catch (const Error&) {  // destructors must not throw; the fault resurfaces at the next call
        }
        cudaStreamDestroy(stream_);
    }

    const char* device() const override { return "cuda"; }
    void synchronize() override { CUDA_CHECK(cudaStreamSynchronize(stream_)); }
    float* params() override { return host_params_.data(); }
    const void* device_weights() const override { return w_; }
    float* grads() override {
        check(!frozen_, "a frozen model has no gradients (a rusca bug)");
        host_grads_.resize(layout.total);
        CUDA_CHECK(cudaMemcpy(host_grads_.data(), grads_, layout.total * sizeof(float), cudaMemcpyDeviceToHost));
        return host_grads_.data();
    }
    // The master weights and moments are the shard's [lo, hi) (all of them unless sharded).
    void upload_params() override {
        const size_t n = layout.total;
        std::vector<uint16_t> w(n);
        for (size_t i = 0; i < n; i++) w[i] = f32_to_bf16(host_params_[i]);
        if (master_)
            CUDA_CHECK(cudaMemcpy(master_, host_params_.data() + shard_.lo, shard_size() * sizeof(float),
                                  cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(w_, w.data(), n * sizeof(uint16_t), cudaMemcpyHostToDevice));
    }
    void download_params() override {
        if (!master_) return;  // not trained yet: the host copy is what was uploaded
        CUDA_CHECK(cudaMemcpy(host_params_.data() + shard_.lo, master_, shard_size() * sizeof(float),
                              cudaMemcpyDeviceToHost));
    }
    void upload_optimizer(const AdamW& adam) override {
        check(adam.m.size() == shard_size() && adam.v.size() == shard_size(),
              "upload_optimizer: moments of another size than this model's shard (a rusca bug)");
        moments();
        CUDA_CHECK(cudaMemcpy(m_, adam.m.data(), shard_size() * sizeof(float), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(v_, adam.v.data(), shard_size() * sizeof(float), cudaMemcpyHostToDevice));
    }
    void download_optimizer(AdamW& adam) override {
        adam.m.resize(shard_size()), adam.v.resize(shard_size());
        if (!m_) {  // no step or restore yet: the moments are zero
            std::fill(adam.m.begin(), adam.m.end(), 0.0f), std::fill(adam.v.begin(), adam.v.end(), 0.0f);
            return;
        }
        CUDA_CHECK(cudaMemcpy(adam.m.data(), m_, shard_size() * sizeof(float), cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(adam.v.data(), v_, shard_size() * sizeof(float), cudaMemcpyDeviceToHost));
    }
    bool shard_optimizer(const ParamShard& shard, const AdamW& adam) override;
    float sharded_step(Comm* device_comm, Comm& host_comm, float scale, AdamW& adam, float lr) override;
    void zero_grad() override {
        check(!frozen_, "a frozen model has no gradients (a rusca bug)");
        CUDA_CHECK(cudaMemsetAsync(grads_, 0, (layout.total + kShardPad) * sizeof(float), stream_));
    }
    long counted_tokens() const override { return counted_; }

    std::vector<float> logits() const override;
    const float* forward_hidden(const int* tokens, int B, int T) override;
    void backward_hidden(const float* dhidden) override;
    std::vector<float> token_logprobs(const GrpoBatch& b, double temperature) override;
    void keep_logprobs(GrpoBatch& b, double temperature, LogpKind kind) override;
    cpu::GrpoLossStats grpo_loss_backward(const GrpoBatch& b, const cpu::GrpoLossConfig& cfg) override;

    float forward(const int* tokens, const int* targets, int B, int T) override;
    float forward_backward(const int* tokens, const int* targets, int B, int T) override;
    void backward() override;
    float optimizer_step(AdamW& adam, float lr) override;
    bool all_reduce_grads(Comm& device_comm, float scale) override {
        check(!frozen_, "a frozen model has no gradients (a rusca bug)");
        if (scale != 1.0f) cuda::scale(grads_, layout.total, scale, stream_);
        // The communicator runs on its own stream: the backward and the scaling queued on ours must
        // be done before it reads the gradients. It synchronizes its stream before returning, so
        // optimizer_step() (on ours) reads the sums.
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        device_comm.all_reduce(grads_, layout.total, ReduceOp::Sum);
        return true;
    }

private:
    const bf16* W(size_t offset) const { return offset == kAbsent ? nullptr : w_ + offset; }
    float* G(size_t offset) { return offset == kAbsent ? nullptr : grads_ + offset; }
    void resize(int B, int T);
    void trunk_forward(const int* tokens, int B, int T);
    void set_targets(const int* targets);
    float lm_head_loss(bool with_grads);
    void trunk_backward();
    void upload_grpo_targets(const GrpoBatch& b);
    void logprobs_to(float* out, const GrpoBatch& b, double temperature);
    class Ops;  // the op table host/graph.h runs on: the CUDA ops over these buffers
    void zero(void* p, size_t bytes) { CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_)); }
    size_t shard_size() const { return shard_.hi - shard_.lo; }
    // The master weights (from the host copy) and the AdamW moments (zero), made on first use: a
    // model that is never trained holds neither.
    void master() {
        if (master_) return;
        master_ = ensure_size(master_buf_, std::max<size_t>(shard_size(), 1));  // a last rank's shard may be empty
        CUDA_CHECK(cudaMemcpy(master_, host_params_.data() + shard_.lo, shard_size() * sizeof(float),
                              cudaMemcpyHostToDevice));
    }
    void moments() {
        if (m_) return;
        const size_t n = std::max<size_t>(shard_size(), 1);
        m_ = ensure_size(m_buf_, n), v_ = ensure_size(v_buf_, n);
        CUDA_CHECK(cudaMemset(m_, 0, shard_size() * sizeof(float)));
        CUDA_CHECK(cudaMemset(v_, 0, shard_size() * sizeof(float)));
    }
    // Clip + AdamW over the parameters [shard_.lo, shard_.hi) from their gradients at `g` (grads_ +
    // lo: where optimizer_step and the reduce-scatter leave them), given the global norm; tensor by
    // tensor where the shard cuts them (weight decay is per tensor). Writes the bf16 weights too.
    void adamw_shard(const float* g, float norm, AdamW& adam, float lr);
    const bool frozen_;
    cudaStream_t stream_ = nullptr;
    Arena params_arena_, acts_arena_;
    bf16* w_ = nullptr;         // bf16 weights the kernels read (+ kShardPad)
    float* grads_ = nullptr;    // fp32 weight gradients (+ kShardPad)
    ParamShard shard_;          // whose master weights and moments this model keeps: all, or ZeRO-1's slice
    cuda::DeviceBuffer<float> master_buf_, m_buf_, v_buf_;
    float *master_ = nullptr, *m_ = nullptr, *v_ = nullptr;  // fp32, shard_size() each
    std::vector<float> host_params_, host_grads_, host_hidden_;
    cuda::DeviceBuffer<float> grpo_f_;  // adv, old_logp, ref_logp, mask [4, N] of the last GRPO batch
    cuda::DeviceBuffer<int> grpo_seq_;  // seq [N]

    int B_ = 0, T_ = 0;
    long counted_ = 0;
    std::vector<int> host_targets_;
    int *tokens_ = nullptr, *targets_ = nullptr, *pos_ = nullptr;
    std::vector<LayerActs> acts_;
    bf16 *res_out_ = nullptr, *lnf_ = nullptr;
    float *rstdf_ = nullptr, *losses_ = nullptr, *dloss_ = nullptr, *delta_ = nullptr;
    // scratch, reused by every layer
    bf16 *proj_, *q_pre_, *k_pre_, *dres_, *dln_, *datt_, *dq_, *dk_, *dv_, *dq_pre_, *dk_pre_, *dact_, *dgate_, *dup_;
};

// Training mode of the graph (host/graph.h): every layer keeps its activations in acts_ for the
// backward; keys and values are the layer's saved k / v; causal flash attention over the [B, T] grid.
class CudaModel::Ops : public cuda::GraphOps {
public:
    explicit Ops(CudaModel& m) : cuda::GraphOps(m.config, m.layout, m.stream_, m.tokens_, m.pos_), m_(m) {}
    const bf16* W(size_t offset) const { return m_.W(offset); }
    float* G(size_t offset) const { return m_.G(offset); }

    Bufs bufs(int l) const {
        LayerActs& a = m_.acts_[l];
        const bool last = l + 1 == int(m_.acts_.size());
        Bufs b;
        b.res_in = a.res_in, b.ln1 = a.ln1, b.rstd1 = a.rstd1, b.q_lin = a.q_lin, b.k_lin = a.k_lin;
        b.q_pre = m_.q_pre_, b.k_pre = m_.k_pre_, b.rstd_q = a.rstd_q, b.rstd_k = a.rstd_k, b.q = a.q;
        b.att = a.att, b.proj = m_.proj_, b.res_mid = a.res_mid, b.ln2 = a.ln2, b.rstd2 = a.rstd2;
        b.gate = a.gate, b.up = a.up, b.act = a.act;
        b.res_out = last ? m_.res_out_ : m_.acts_[l + 1].res_in;
        b.ln_out = last ? m_.lnf_ : m_.acts_[l + 1].ln1;
        b.rstd_out = last ? m_.rstdf_ : m_.acts_[l + 1].rstd1;
        return b;
    }
    graph::GradBufs<bf16> grads() const {
        return {m_.dres_, m_.dln_, m_.datt_, m_.dq_, m_.dk_, m_.dv_, m_.dq_pre_, m_.dk_pre_, m_.dact_, m_.dgate_, m_.dup_};
    }
    void project_v(int l, const bf16* ln, const bf16* Wv, const bf16* bv, int N) const {
        linear(m_.acts_[l].v, ln, Wv, bv, N, c_.hidden_size, c_.kv_dim());
    }
    void rope_k(int l, const bf16* k, int N) const { rope(m_.acts_[l].k, k, N, c_.num_kv_heads); }
    bool attends(int) const { return true; }
    void attention(int l, bf16* out, const bf16* q, int) const {
        const LayerActs& a = m_.acts_[l];
        cuda::attention_forward(out, a.lse, q, a.k, a.v, m_.B_, m_.T_, c_.num_heads, c_.num_kv_heads, c_.head_dim,
                                stream_);
    }
    void attention_backward(int l, bf16* dq, bf16* dk, bf16* dv, const bf16* datt) const {
        const LayerActs& a = m_.acts_[l];
        cuda::attention_backward(dq, dk, dv, datt, a.q, a.k, a.v, a.att, a.lse, m_.delta_, m_.B_, m_.T_, c_.num_heads,
                                 c_.num_kv_heads, c_.head_dim, stream_);
    }

private:
    CudaModel& m_;
};

void CudaModel::resize(int B, int T) {
    if (B == B_ && T == T_) return;
    const ModelConfig& c = config;
    const size_t N = size_t(B) * T, C = c.hidden_size, F = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
    const size_t Hq = c.num_heads, Hkv = c.num_kv_heads, L = c.num_layers;
    acts_arena_.reset(training_activation_bytes(c, B, T));  // the memory plan's figure, padded for alignment
    B_ = B, T_ = T;
    Arena& a = acts_arena_;
    tokens_ = a.take<int>(N), targets_ = a.take<int>(N), pos_ = a.take<int>(N);
    acts_.resize(L);
    for (LayerActs& x : acts_) {
        x.res_in = a.take<bf16>(N * C), x.ln1 = a.take<bf16>(N * C), x.res_mid = a.take<bf16>(N * C);
        x.ln2 = a.take<bf16>(N * C);
        x.q_lin = a.take<bf16>(N * Q), x.q = a.take<bf16>(N * Q), x.att = a.take<bf16>(N * Q);
        x.k_lin = a.take<bf16>(N * KV), x.k = a.take<bf16>(N * KV), x.v = a.take<bf16>(N * KV);
        x.gate = a.take<bf16>(N * F), x.up = a.take<bf16>(N * F), x.act = a.take<bf16>(N * F);
        x.rstd1 = a.take<float>(N), x.rstd2 = a.take<float>(N);
        x.rstd_q = a.take<float>(N * Hq), x.rstd_k = a.take<float>(N * Hkv);
        x.lse = a.take<float>(size_t(B) * Hq * T);
    }
    res_out_ = a.take<bf16>(N * C), lnf_ = a.take<bf16>(N * C);
    rstdf_ = a.take<float>(N), losses_ = a.take<float>(N), dloss_ = a.take<float>(N);
    delta_ = a.take<float>(size_t(B) * Hq * T);
    proj_ = a.take<bf16>(N * C), dres_ = a.take<bf16>(N * C), dln_ = a.take<bf16>(N * C);
    q_pre_ = a.take<bf16>(N * Q), datt_ = a.take<bf16>(N * Q), dq_ = a.take<bf16>(N * Q), dq_pre_ = a.take<bf16>(N * Q);
    k_pre_ = a.take<bf16>(N * KV), dk_ = a.take<bf16>(N * KV), dv_ = a.take<bf16>(N * KV), dk_pre_ = a.take<bf16>(N * KV);
    dact_ = a.take<bf16>(N * F), dgate_ = a.take<bf16>(N * F), dup_ = a.take<bf16>(N * F);
    std::vector<int> pos(N);
    for (size_t n = 0; n < N; n++) pos[n] = int(n % T);
    CUDA_CHECK(cudaMemcpy(pos_, pos.data(), N * sizeof(int), cudaMemcpyHostToDevice));
}

// Embedding, every layer and the final norm: lnf_ holds the hidden states of tokens [B, T].
void CudaModel::trunk_forward(const int* tokens, int B, int T) {
    const ModelConfig& c = config;
    check(B > 0 && T > 0, "forward: batch and sequence length must be positive");
    check(T <= c.max_position_embeddings, "forward: sequence length " + std::to_string(T) +
                                              " exceeds max_position_embeddings " +
                                              std::to_string(c.max_position_embeddings));
    const int N = B * T, V = c.vocab_size;
    for (int n = 0; n < N; n++)
        check(tokens[n] >= 0 && tokens[n] < V, "forward: token id " + std::to_string(tokens[n]) + " at position " +
                                                   std::to_string(n) + " is outside the vocabulary");
    resize(B, T);
    CUDA_CHECK(cudaMemcpyAsync(tokens_, tokens, N * sizeof(int), cudaMemcpyHostToDevice, stream_));
    Ops ops(*this);
    graph::trunk_forward(ops, N);
}

float CudaModel::forward(const int* tokens, const int* targets, int B, int T) {
    Range range("forward");
    trunk_forward(tokens, B, T);
    set_targets(targets);
    if (!targets || counted_ == 0) return 0.0f;
    return lm_head_loss(false);
}

// One pass of the fused LM head both ways: three vocabulary GEMMs (logits, d hidden, d lm_head)
// instead of forward()'s one plus backward()'s three.
float CudaModel::forward_backward(const int* tokens, const int* targets, int B, int T) {
    Range range("forward_backward");
    trunk_forward(tokens, B, T);
    set_targets(targets);
    if (!targets || counted_ == 0) return 0.0f;  // nothing counted: every gradient is zero
    const float loss = lm_head_loss(true);
    if (std::isfinite(loss)) trunk_backward();
    return loss;
}

// targets_ (and counted_, dloss_) for the rows of the last trunk_forward; nullptr: none counted.
void CudaModel::set_targets(const int* targets) {
    const int N = B_ * T_, V = config.vocab_size;
    host_targets_.assign(N, -1);
    if (targets) host_targets_.assign(targets, targets + N);
    counted_ = 0;
    for (int n = 0; n < N; n++) {
        check(host_targets_[n] < V, "forward: target id " + std::to_string(host_targets_[n]) + " at position " +
                                        std::to_string(n) + " is outside the vocabulary");
        counted_ += host_targets_[n] >= 0;
    }
    CUDA_CHECK(cudaMemcpyAsync(targets_, host_targets_.data(), N * sizeof(int), cudaMemcpyHostToDevice, stream_));
    if (counted_ == 0) return;
    // loss = mean over counted positions; each counted position's loss has weight 1 / counted.
    std::vector<float> dloss(N);
    for (int n = 0; n < N; n++) dloss[n] = host_targets_[n] >= 0 ? 1.0f / float(counted_) : 0.0f;
    CUDA_CHECK(cudaMemcpyAsync(dloss_, dloss.data(), N * sizeof(float), cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // the host vectors are read by the copies
}

// The mean cross-entropy of the counted rows through the fused LM head; with_grads also adds
// d(lm_head) and writes d(final hidden) into dln_ for trunk_backward().
float CudaModel::lm_head_loss(bool with_grads) {
    const int N = B_ * T_, C = config.hidden_size, V = config.vocab_size;
    if (with_grads) zero(dln_, size_t(N) * C * 2);
    cuda::lm_head_cross_entropy(losses_, with_grads ? dln_ : nullptr, with_grads ? G(layout.lm_head) : nullptr, lnf_,
                                W(layout.lm_head), targets_, dloss_, N, C, V, 0, stream_);
    std::vector<float> losses(N);
    CUDA_CHECK(cudaMemcpyAsync(losses.data(), losses_, N * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    double sum = 0;
    for (int n = 0; n < N; n++)
        if (host_targets_[n] >= 0) sum += losses[n];
    return float(sum / double(counted_));
}

void CudaModel::backward() {
    Range range("backward");
    check(B_ > 0, "backward called before forward");
    if (counted_ == 0) return;  // nothing counted: every gradient is zero
    // The fused LM head recomputes its logits chunk by chunk and adds d(lm_head) and d(lnf)
    // (forward_backward() saves this recomputation).
    lm_head_loss(true);
    trunk_backward();
}

// From d(final hidden) in dln_ down to the embedding: adds every gradient but the LM head's.
void CudaModel::trunk_backward() {
    Ops ops(*this);
    graph::trunk_backward(ops, dln_, B_ * T_);
}

// Training never materializes logits on the device (the fused LM-head losses). For inspection
// (`rusca forward`), the last forward's final hidden states meet the bf16 LM head it used on the
// host, in fp32.
std::vector<float> CudaModel::logits() const {
    check(B_ > 0, "logits: no forward yet");
    const size_t N = size_t(B_) * T_, C = config.hidden_size, V = config.vocab_size;
    std::vector<uint16_t> h(N * C), w(V * C);
    CUDA_CHECK(cudaMemcpyAsync(h.data(), lnf_, h.size() * sizeof(uint16_t), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaMemcpyAsync(w.data(), W(layout.lm_head), w.size() * sizeof(uint16_t), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::vector<float> hf(h.size()), wf(w.size()), out(N * V);
    for (size_t i = 0; i < h.size(); i++) hf[i] = bf16_to_f32(h[i]);
    for (size_t i = 0; i < w.size(); i++) wf[i] = bf16_to_f32(w[i]);
    cpu::linear_forward(out.data(), hf.data(), wf.data(), (const float*)nullptr, int(N), int(C), int(V));
    return out;
}

const float* CudaModel::forward_hidden(const int* tokens, int B, int T) {
    Range range("forward_hidden");
    trunk_forward(tokens, B, T);
    const size_t n = size_t(B) * T * config.hidden_size;
    std::vector<uint16_t> h(n);
    CUDA_CHECK(cudaMemcpyAsync(h.data(), lnf_, n * sizeof(uint16_t), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    host_hidden_.resize(n);
    for (size_t i = 0; i < n; i++) host_hidden_[i] = bf16_to_f32(h[i]);
    return host_hidden_.data();
}

void CudaModel::backward_hidden(const float* dhidden) {
    Range range("backward_hidden");
    check(B_ > 0, "backward called before forward");
    const size_t n = size_t(B_) * T_ * config.hidden_size;
    std::vector<uint16_t> d(n);
    for (size_t i = 0; i < n; i++) d[i] = f32_to_bf16(dhidden[i]);
    CUDA_CHECK(cudaMemcpyAsync(dln_, d.data(), n * sizeof(uint16_t), cudaMemcpyHostToDevice, stream_));
    trunk_backward();
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // d's host memory is read by the copy
}

// targets_ <- b.target (< 0: no response token at that row).
void CudaModel::upload_grpo_targets(const GrpoBatch& b) {
    const size_t N = size_t(b.B) * b.T;
    check(b.target.size() == N && b.tokens.size() == N, "GRPO batch: arrays must hold B*T rows (a rusca bug)");
    CUDA_CHECK(cudaMemcpyAsync(targets_, b.target.data(), N * sizeof(int), cudaMemcpyHostToDevice, stream_));
}

// log pi(target) of every row of b into out [N] on the device (0 where target < 0); out == nullptr:
// into losses_ (carved by the forward's resize, so only known after it).
void CudaModel::logprobs_to(float* out, const GrpoBatch& b, double temperature) {
    trunk_forward(b.tokens.data(), b.B, b.T);
    upload_grpo_targets(b);
    cuda::grpo_logprobs(out ? out : losses_, nullptr, lnf_, W(layout.lm_head), targets_, b.B * b.T, config.hidden_size,
                        config.vocab_size, temperature, 0, 0, stream_);
}

std::vector<float> CudaModel::token_logprobs(const GrpoBatch& b, double temperature) {
    Range range("token_logprobs");
    logprobs_to(nullptr, b, temperature);
    const int N = b.B * b.T;
    std::vector<float> logp(N);
    CUDA_CHECK(cudaMemcpyAsync(logp.data(), losses_, N * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    return logp;
}

// A GRPO batch's rows on the device, from its old log-probs to its update (GrpoBatch::device):
// adv, old_logp, ref_logp, mask [4, N] and seq [N].
struct GrpoRows {
    explicit GrpoRows(const GrpoBatch& b, cudaStream_t stream) : N(size_t(b.B) * b.T), f(4 * N), seq(N) {
        check(b.adv.size() == N && b.mask.size() == N && b.seq.size() == N,
              "GRPO batch: arrays must hold B*T rows (a rusca bug)");
        CUDA_CHECK(cudaMemcpyAsync(f.data(), b.adv.data(), N * sizeof(float), cudaMemcpyHostToDevice, stream));
        CUDA_CHECK(cudaMemcpyAsync(f.data() + 3 * N, b.mask.data(), N * sizeof(float), cudaMemcpyHostToDevice, stream));
        CUDA_CHECK(cudaMemcpyAsync(seq.data(), b.seq.data(), N * sizeof(int), cudaMemcpyHostToDevice, stream));
    }
    const size_t N;
    cuda::DeviceBuffer<float> f;
    cuda::DeviceBuffer<int> seq;
    bool has_old = false, has_ref = false;
};

// The old (policy) and reference log-probs go straight into the batch's device rows: no host round
// trip. The reference is another CudaModel on its own stream, so each call ends synchronized.
void CudaModel::keep_logprobs(GrpoBatch& b, double temperature, LogpKind kind) {
    Range range("keep_logprobs");
    if (!b.device) b.device = std::make_shared<GrpoRows>(b, stream_);
    GrpoRows& rows = *static_cast<GrpoRows*>(b.device.get());
    check(rows.N == size_t(b.B) * b.T, "GRPO batch: device rows of another shape (a rusca bug)");
    const bool old = kind == LogpKind::kOld;
    logprobs_to(rows.f.data() + (old ? 1 : 2) * rows.N, b, temperature);
    (old ? rows.has_old : rows.has_ref) = true;
    CUDA_CHECK(cudaStreamSynchronize(stream_));
}

cpu::GrpoLossStats CudaModel::grpo_loss_backward(const GrpoBatch& b, const cpu::GrpoLossConfig& cfg) {
    Range range("grpo_loss_backward");
    check(!frozen_, "a frozen model cannot be trained (a rusca bug)");
    trunk_forward(b.tokens.data(), b.B, b.T);
    upload_grpo_targets(b);
    const size_t N = size_t(b.B) * b.T;
    const bool ref = cfg.beta > 0;
    float* f = nullptr;
    int* seq = nullptr;
    if (b.device) {  // kept on the device by keep_logprobs()
        GrpoRows& rows = *static_cast<GrpoRows*>(b.device.get());
        check(rows.N == N && rows.has_old && (!ref || rows.has_ref),
              "GRPO batch: old / reference log-probs not kept on the device (a rusca bug)");
        f = rows.f.data(), seq = rows.seq.data();
    } else {
        check(b.adv.size() == N && b.old_logp.size() == N && b.mask.size() == N && b.seq.size() == N &&
                  (!ref || b.ref_logp.size() == N),
              "GRPO batch: arrays must hold B*T rows (a rusca bug)");
        f = ensure_size(grpo_f_, 4 * N);
        seq = ensure_size(grpo_seq_, N);
        CUDA_CHECK(cudaMemcpyAsync(f, b.adv.data(), N * sizeof(float), cudaMemcpyHostToDevice, stream_));
        CUDA_CHECK(cudaMemcpyAsync(f + N, b.old_logp.data(), N * sizeof(float), cudaMemcpyHostToDevice, stream_));
        if (ref) CUDA_CHECK(cudaMemcpyAsync(f + 2 * N, b.ref_logp.data(), N * sizeof(float), cudaMemcpyHostToDevice, stream_));
        CUDA_CHECK(cudaMemcpyAsync(f + 3 * N, b.mask.data(), N * sizeof(float), cudaMemcpyHostToDevice, stream_));
        CUDA_CHECK(cudaMemcpyAsync(seq, b.seq.data(), N * sizeof(int), cudaMemcpyHostToDevice, stream_));
    }
    zero(dln_, N * config.hidden_size * 2);
    // Synchronous (it validates on the host), so the host arrays above are read before we return.
    cpu::GrpoLossStats st = cuda::grpo_loss(losses_, dln_, G(layout.lm_head), lnf_, W(layout.lm_head), targets_, f,
                                            f + N, ref ? f + 2 * N : nullptr, f + 3 * N, seq, int(N),
                                            config.hidden_size, config.vocab_size, b.S, b.max_len, cfg, stream_);
    if (std::isfinite(st.loss)) trunk_backward();
    return st;
}

float CudaModel::optimizer_step(AdamW& adam, float lr) {
    Range range("optimizer_step");
    check(!frozen_, "a frozen model cannot be trained (a rusca bug)");
    check(shard_.world == 1 && shard_size() == layout.total, "optimizer_step on a sharded optimizer (a rusca bug)");
    const float norm = float(std::sqrt(cuda::sum_squares(grads_, layout.total, stream_)));
    if (std::isfinite(norm)) adamw_shard(grads_, norm, adam, lr);  // else nothing updated, as AdamW::step
    return norm;
}

void CudaModel::adamw_shard(const float* g, float norm, AdamW& adam, float lr) {
    master();
    moments();
    const size_t lo = shard_.lo, hi = shard_.hi;
    if (adam.cfg.grad_clip > 0) {
        const float coef = adam.cfg.grad_clip / (norm + 1e-6f);
        if (coef < 1.0f) cuda::scale(grads_ + lo, hi - lo, coef, stream_);
    }
    adam.t++;
    for (const ParamInfo& p : layout.tensors) {
        const size_t a = std::max(lo, p.offset), b = std::min(hi, p.offset + p.numel);
        if (a >= b) continue;
        cuda::adamw_update(master_ + (a - lo), g + (a - lo), m_ + (a - lo), v_ + (a - lo), b - a, lr, adam.cfg.beta1,
                           adam.cfg.beta2, adam.cfg.eps, p.decay ? adam.cfg.weight_decay : 0.0f, adam.t, w_ + a,
                           stream_);
    }
}

bool CudaModel::shard_optimizer(const ParamShard& shard, const AdamW& adam) {
    check(!frozen_, "a frozen model has no optimizer to shard (a rusca bug)");
    const size_t n = layout.total;
    check(size_t(shard.world) * shard.chunk >= n && size_t(shard.world) * shard.chunk <= n + kShardPad &&
              shard.lo <= shard.hi && shard.hi <= n && adam.m.size() == n && adam.v.size() == n,
          "shard_optimizer: a shard that does not fit this model, or moments already sharded (a rusca bug)");
    // The caller's host copy (params(), as a load or a restore wrote it) is the master: the slice
    // comes from there. Free the full-size buffers first: the point is the memory.
    master_buf_ = cuda::DeviceBuffer<float>(), m_buf_ = cuda::DeviceBuffer<float>(), v_buf_ = cuda::DeviceBuffer<float>();
    master_ = m_ = v_ = nullptr;
    shard_ = shard;
    master();
    moments();
    CUDA_CHECK(cudaMemcpy(m_, adam.m.data() + shard.lo, shard_size() * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(v_, adam.v.data() + shard.lo, shard_size() * sizeof(float), cudaMemcpyHostToDevice));
    return true;
}

float CudaModel::sharded_step(Comm* device_comm, Comm& host_comm, float scale, AdamW& adam, float lr) {
    Range range("sharded_step");
    check(!frozen_ && (device_comm || shard_.world == 1), "sharded_step: no communicator for its ranks (a rusca bug)");
    const size_t own = size_t(shard_.rank) * shard_.chunk;  // this rank's slice in the padded array
    if (scale != 1.0f) cuda::scale(grads_, layout.total, scale, stream_);
    if (device_comm) {
        // The communicator runs on its own stream (and synchronizes it before returning): the
        // backward and scaling queued on ours must be done first. In place: the sums land at own.
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        device_comm->reduce_scatter(grads_, grads_ + own, shard_.chunk);
    }
    // Slice [lo, hi) of the parameters starts at own too, or is empty.
    double sq = shard_size() ? cuda::sum_squares(grads_ + shard_.lo, shard_size(), stream_) : 0.0;
    host_comm.all_reduce(&sq, 1, ReduceOp::Sum);
    const float norm = float(std::sqrt(sq));
    if (!std::isfinite(norm)) return norm;  // every rank saw the same norm: all skip
    adamw_shard(grads_ + shard_.lo, norm, adam, lr);
    if (device_comm) {
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        device_comm->all_gather_bf16(w_ + own, w_, shard_.chunk);
    }
    return norm;
}

}  // namespace

std::unique_ptr<Model> make_cuda_model(const ModelConfig& c, bool frozen) {
    return std::make_unique<CudaModel>(c, frozen);
}

}  // namespace rusca
#endif  // RUSCA_CUDA
