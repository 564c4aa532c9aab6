// cuda_model.cpp: the CUDA training backend behind the Model interface. The same graph as the CPU
// reference (host/cpu/cpu_model.cpp), op for op, calling each op's CUDA twin (cuda/<family>.cuh):
//
//   bf16 weights, activations and activation gradients; fp32 master weights, weight gradients and
//   AdamW moments; fp32 math everywhere. The pre-norm residual adds are fused with the next RMSNorm.
//   The LM head + cross-entropy never holds the whole batch's logits (cuda/cross_entropy.cuh).
//
// Memory: one device allocation for everything per parameter (bf16 weights, fp32 master, grads,
// m, v) and one for the activations of the current (B, T), carved into named pointers.
// The CPU backend and this one are compared in tests/test_cuda_model.cpp.
#ifdef RUSCA_CUDA
#include <nvtx3/nvToolsExt.h>

#include <cmath>
#include <vector>

#include "cuda/adamw.cuh"
#include "cuda/attention.cuh"
#include "cuda/common.cuh"
#include "cuda/cross_entropy.cuh"
#include "cuda/device_buffer.h"
#include "cuda/embedding.cuh"
#include "cuda/grpo_loss.cuh"
#include "cuda/matmul.cuh"
#include "cuda/rmsnorm.cuh"
#include "cuda/rope.cuh"
#include "cuda/swiglu.cuh"
#include "host/cpu/ops.h"  // linear_forward (logits() on the host)
#include "host/error.h"
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
        const size_t n = layout.total;
        // A frozen model (the RL reference) holds only what its forward reads.
        params_arena_.reset(Arena::padded(n * sizeof(bf16)) + (frozen ? 0 : 4 * Arena::padded(n * sizeof(float))));
        w_ = params_arena_.take<bf16>(n);
        if (frozen) return;
        master_ = params_arena_.take<float>(n);
        grads_ = params_arena_.take<float>(n);
        m_ = params_arena_.take<float>(n);
        v_ = params_arena_.take<float>(n);
        CUDA_CHECK(cudaMemset(m_, 0, n * sizeof(float)));
        CUDA_CHECK(cudaMemset(v_, 0, n * sizeof(float)));
        CUDA_CHECK(cudaMemset(grads_, 0, n * sizeof(float)));
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
    void upload_params() override {
        const size_t n = layout.total;
        std::vector<uint16_t> w(n);
        for (size_t i = 0; i < n; i++) w[i] = f32_to_bf16(host_params_[i]);
        if (!frozen_) CUDA_CHECK(cudaMemcpy(master_, host_params_.data(), n * sizeof(float), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(w_, w.data(), n * sizeof(uint16_t), cudaMemcpyHostToDevice));
    }
    void download_params() override {
        if (frozen_) return;  // the host copy is what was uploaded
        CUDA_CHECK(cudaMemcpy(host_params_.data(), master_, layout.total * sizeof(float), cudaMemcpyDeviceToHost));
    }
    void upload_optimizer(const AdamW& adam) override {
        CUDA_CHECK(cudaMemcpy(m_, adam.m.data(), layout.total * sizeof(float), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(v_, adam.v.data(), layout.total * sizeof(float), cudaMemcpyHostToDevice));
    }
    void download_optimizer(AdamW& adam) override {
        CUDA_CHECK(cudaMemcpy(adam.m.data(), m_, layout.total * sizeof(float), cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(adam.v.data(), v_, layout.total * sizeof(float), cudaMemcpyDeviceToHost));
    }
    void zero_grad() override {
        check(!frozen_, "a frozen model has no gradients (a rusca bug)");
        CUDA_CHECK(cudaMemsetAsync(grads_, 0, layout.total * sizeof(float), stream_));
    }
    long counted_tokens() const override { return counted_; }

    std::vector<float> logits() const override;
    const float* forward_hidden(const int* tokens, int B, int T) override;
    void backward_hidden(const float* dhidden) override;
    std::vector<float> token_logprobs(const GrpoBatch& b, double temperature) override;
    cpu::GrpoLossStats grpo_loss_backward(const GrpoBatch& b, const cpu::GrpoLossConfig& cfg) override;

    float forward(const int* tokens, const int* targets, int B, int T) override;
    float forward_backward(const int* tokens, const int* targets, int B, int T) override;
    void backward() override;
    float optimizer_step(AdamW& adam, float lr) override;

private:
    const bf16* W(size_t offset) const { return offset == kAbsent ? nullptr : w_ + offset; }
    float* G(size_t offset) { return offset == kAbsent ? nullptr : grads_ + offset; }
    void resize(int B, int T);
    void trunk_forward(const int* tokens, int B, int T);
    void set_targets(const int* targets);
    float lm_head_loss(bool with_grads);
    void trunk_backward();
    void upload_grpo_targets(const GrpoBatch& b);
    void layer_forward(int l);
    void layer_backward(int l);
    void zero(void* p, size_t bytes) { CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_)); }

    const bool frozen_;
    cudaStream_t stream_ = nullptr;
    Arena params_arena_, acts_arena_;
    bf16* w_ = nullptr;  // bf16 weights the kernels read
    float *master_ = nullptr, *grads_ = nullptr, *m_ = nullptr, *v_ = nullptr;
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

// Layer l reads acts_[l].res_in and .ln1 (written by the previous layer's fused residual + norm)
// and writes the next layer's (or the final norm's) residual and normed input.
void CudaModel::layer_forward(int l) {
    Range range("layer_forward");
    using namespace cuda;
    const ModelConfig& c = config;
    const LayerParams& w = layout.layers[l];
    LayerActs& a = acts_[l];
    const int N = B_ * T_, C = c.hidden_size, F = c.intermediate_size, D = c.head_dim;
    const int Q = c.q_dim(), KV = c.kv_dim(), Hq = c.num_heads, Hkv = c.num_kv_heads;
    const float eps = c.rms_norm_eps;

    linear_forward(a.q_lin, a.ln1, W(w.wq), W(w.bq), N, C, Q, stream_);
    linear_forward(a.k_lin, a.ln1, W(w.wk), W(w.bk), N, C, KV, stream_);
    linear_forward(a.v, a.ln1, W(w.wv), W(w.bv), N, C, KV, stream_);
    const bf16* q_in = a.q_lin;
    const bf16* k_in = a.k_lin;
    if (c.qk_norm) {  // Qwen3: per-head RMSNorm of q and k before RoPE
        rmsnorm_forward(q_pre_, a.rstd_q, a.q_lin, W(w.q_norm), N * Hq, D, eps, stream_);
        rmsnorm_forward(k_pre_, a.rstd_k, a.k_lin, W(w.k_norm), N * Hkv, D, eps, stream_);
        q_in = q_pre_, k_in = k_pre_;
    }
    rope_forward(a.q, q_in, pos_, N, Hq, D, c.rope_theta, stream_);
    rope_forward(a.k, k_in, pos_, N, Hkv, D, c.rope_theta, stream_);
    attention_forward(a.att, a.lse, a.q, a.k, a.v, B_, T_, Hq, Hkv, D, stream_);
    linear_forward(proj_, a.att, W(w.wo), nullptr, N, Q, C, stream_);
    fused_residual_rmsnorm_forward(a.res_mid, a.ln2, a.rstd2, a.res_in, proj_, W(w.ln2), N, C, eps, stream_);

    linear_forward(a.gate, a.ln2, W(w.w_gate), nullptr, N, C, F, stream_);
    linear_forward(a.up, a.ln2, W(w.w_up), nullptr, N, C, F, stream_);
    swiglu_forward(a.act, a.gate, a.up, size_t(N) * F, stream_);
    linear_forward(proj_, a.act, W(w.w_down), nullptr, N, F, C, stream_);
    const bool last = l + 1 == c.num_layers;
    bf16* next_res = last ? res_out_ : acts_[l + 1].res_in;
    bf16* next_ln = last ? lnf_ : acts_[l + 1].ln1;
    float* next_rstd = last ? rstdf_ : acts_[l + 1].rstd1;
    const bf16* next_w = W(last ? layout.final_norm : layout.layers[l + 1].ln1);
    fused_residual_rmsnorm_forward(next_res, next_ln, next_rstd, a.res_mid, proj_, next_w, N, C, eps, stream_);
}

// Embedding, every layer and the final norm: lnf_ holds the hidden states of tokens [B, T].
void CudaModel::trunk_forward(const int* tokens, int B, int T) {
    const ModelConfig& c = config;
    check(B > 0 && T > 0, "forward: batch and sequence length must be positive");
    check(T <= c.max_position_embeddings, "forward: sequence length " + std::to_string(T) +
                                              " exceeds max_position_embeddings " +
                                              std::to_string(c.max_position_embeddings));
    const int N = B * T, C = c.hidden_size, V = c.vocab_size;
    for (int n = 0; n < N; n++)
        check(tokens[n] >= 0 && tokens[n] < V, "forward: token id " + std::to_string(tokens[n]) + " at position " +
                                                   std::to_string(n) + " is outside the vocabulary");
    resize(B, T);
    CUDA_CHECK(cudaMemcpyAsync(tokens_, tokens, N * sizeof(int), cudaMemcpyHostToDevice, stream_));
    cuda::embedding_forward(acts_[0].res_in, tokens_, W(layout.embed), N, C, stream_);
    cuda::rmsnorm_forward(acts_[0].ln1, acts_[0].rstd1, acts_[0].res_in, W(layout.layers[0].ln1), N, C,
                          c.rms_norm_eps, stream_);
    for (int l = 0; l < c.num_layers; l++) layer_forward(l);
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

// Backward of one layer: dres_ holds d(layer output) on entry and d(layer input) on exit.
void CudaModel::layer_backward(int l) {
    Range range("layer_backward");
    using namespace cuda;
    const ModelConfig& c = config;
    const LayerParams& w = layout.layers[l];
    LayerActs& a = acts_[l];
    const size_t N = size_t(B_) * T_, C = c.hidden_size, F = c.intermediate_size, D = c.head_dim;
    const size_t Q = c.q_dim(), KV = c.kv_dim(), Hq = c.num_heads, Hkv = c.num_kv_heads;
    const int n = int(N);

    // out = res_mid + (silu(ln2 Wg^T) * ln2 Wu^T) Wd^T
    zero(dact_, N * F * 2), zero(dgate_, N * F * 2), zero(dup_, N * F * 2), zero(dln_, N * C * 2);
    linear_backward(dact_, G(w.w_down), nullptr, dres_, a.act, W(w.w_down), n, int(F), int(C), stream_);
    swiglu_backward(dgate_, dup_, dact_, a.gate, a.up, N * F, stream_);
    linear_backward(dln_, G(w.w_gate), nullptr, dgate_, a.ln2, W(w.w_gate), n, int(C), int(F), stream_);
    linear_backward(dln_, G(w.w_up), nullptr, dup_, a.ln2, W(w.w_up), n, int(C), int(F), stream_);
    rmsnorm_backward(dres_, G(w.ln2), dln_, a.res_mid, W(w.ln2), a.rstd2, n, int(C), stream_);

    // res_mid = res_in + attention(...) Wo^T
    zero(datt_, N * Q * 2), zero(dq_, N * Q * 2), zero(dk_, N * KV * 2), zero(dv_, N * KV * 2);
    zero(dq_pre_, N * Q * 2), zero(dk_pre_, N * KV * 2), zero(dln_, N * C * 2);
    linear_backward(datt_, G(w.wo), nullptr, dres_, a.att, W(w.wo), n, int(Q), int(C), stream_);
    attention_backward(dq_, dk_, dv_, datt_, a.q, a.k, a.v, a.att, a.lse, delta_, B_, T_, int(Hq), int(Hkv), int(D),
                       stream_);
    rope_backward(dq_pre_, dq_, pos_, n, int(Hq), int(D), c.rope_theta, stream_);
    rope_backward(dk_pre_, dk_, pos_, n, int(Hkv), int(D), c.rope_theta, stream_);
    bf16* dq_lin = dq_pre_;
    bf16* dk_lin = dk_pre_;
    if (c.qk_norm) {  // dq_ / dk_ are free again: they receive d(q_lin) / d(k_lin)
        zero(dq_, N * Q * 2), zero(dk_, N * KV * 2);
        rmsnorm_backward(dq_, G(w.q_norm), dq_pre_, a.q_lin, W(w.q_norm), a.rstd_q, int(N * Hq), int(D), stream_);
        rmsnorm_backward(dk_, G(w.k_norm), dk_pre_, a.k_lin, W(w.k_norm), a.rstd_k, int(N * Hkv), int(D), stream_);
        dq_lin = dq_, dk_lin = dk_;
    }
    linear_backward(dln_, G(w.wq), G(w.bq), dq_lin, a.ln1, W(w.wq), n, int(C), int(Q), stream_);
    linear_backward(dln_, G(w.wk), G(w.bk), dk_lin, a.ln1, W(w.wk), n, int(C), int(KV), stream_);
    linear_backward(dln_, G(w.wv), G(w.bv), dv_, a.ln1, W(w.wv), n, int(C), int(KV), stream_);
    rmsnorm_backward(dres_, G(w.ln1), dln_, a.res_in, W(w.ln1), a.rstd1, n, int(C), stream_);
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
    const ModelConfig& c = config;
    const int N = B_ * T_, C = c.hidden_size;
    zero(dres_, size_t(N) * C * 2);
    cuda::rmsnorm_backward(dres_, G(layout.final_norm), dln_, res_out_, W(layout.final_norm), rstdf_, N, C, stream_);
    for (int l = c.num_layers - 1; l >= 0; l--) layer_backward(l);
    cuda::embedding_backward(G(layout.embed), dres_, tokens_, N, C, stream_);
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

std::vector<float> CudaModel::token_logprobs(const GrpoBatch& b, double temperature) {
    Range range("token_logprobs");
    trunk_forward(b.tokens.data(), b.B, b.T);
    upload_grpo_targets(b);
    const int N = b.B * b.T;
    cuda::grpo_logprobs(losses_, nullptr, lnf_, W(layout.lm_head), targets_, N, config.hidden_size,
                        config.vocab_size, temperature, 0, 0, stream_);
    std::vector<float> logp(N);
    CUDA_CHECK(cudaMemcpyAsync(logp.data(), losses_, N * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    return logp;
}

cpu::GrpoLossStats CudaModel::grpo_loss_backward(const GrpoBatch& b, const cpu::GrpoLossConfig& cfg) {
    Range range("grpo_loss_backward");
    check(!frozen_, "a frozen model cannot be trained (a rusca bug)");
    trunk_forward(b.tokens.data(), b.B, b.T);
    upload_grpo_targets(b);
    const size_t N = size_t(b.B) * b.T;
    const bool ref = cfg.beta > 0;
    check(b.adv.size() == N && b.old_logp.size() == N && b.mask.size() == N && b.seq.size() == N &&
              (!ref || b.ref_logp.size() == N),
          "GRPO batch: arrays must hold B*T rows (a rusca bug)");
    float* f = ensure_size(grpo_f_, 4 * N);
    int* seq = ensure_size(grpo_seq_, N);
    CUDA_CHECK(cudaMemcpyAsync(f, b.adv.data(), N * sizeof(float), cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaMemcpyAsync(f + N, b.old_logp.data(), N * sizeof(float), cudaMemcpyHostToDevice, stream_));
    if (ref) CUDA_CHECK(cudaMemcpyAsync(f + 2 * N, b.ref_logp.data(), N * sizeof(float), cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaMemcpyAsync(f + 3 * N, b.mask.data(), N * sizeof(float), cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaMemcpyAsync(seq, b.seq.data(), N * sizeof(int), cudaMemcpyHostToDevice, stream_));
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
    const size_t n = layout.total;
    const float norm = float(std::sqrt(cuda::sum_squares(grads_, n, stream_)));
    if (!std::isfinite(norm)) return norm;  // nothing updated, as AdamW::step
    if (adam.cfg.grad_clip > 0) {
        const float coef = adam.cfg.grad_clip / (norm + 1e-6f);
        if (coef < 1.0f) cuda::scale(grads_, n, coef, stream_);
    }
    adam.t++;
    for (const ParamInfo& p : layout.tensors)
        cuda::adamw_update(master_ + p.offset, grads_ + p.offset, m_ + p.offset, v_ + p.offset, p.numel, lr,
                           adam.cfg.beta1, adam.cfg.beta2, adam.cfg.eps, p.decay ? adam.cfg.weight_decay : 0.0f, adam.t,
                           w_ + p.offset, stream_);
    return norm;
}

}  // namespace

std::unique_ptr<Model> make_cuda_model(const ModelConfig& c, bool frozen) {
    return std::make_unique<CudaModel>(c, frozen);
}

}  // namespace rusca
#endif  // RUSCA_CUDA
