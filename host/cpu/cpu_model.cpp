// cpu_model.cpp: the transformer graph on the CPU reference ops (host/cpu/ops.h), forward then
// the backward written out in reverse, plus the fp32 Model adapter the trainer uses.
#include "cpu_model.h"

#include <algorithm>
#include <cmath>

#include "host/checkpoint.h"
#include "grpo_loss.h"
#include "host/error.h"
#include "host/model.h"
#include "host/rng.h"
#include "ops.h"

namespace rusca {

namespace {
template <typename Real>
void zero(std::vector<Real>& v) {
    std::fill(v.begin(), v.end(), Real(0));
}
template <typename Real>
void add(Real* out, const Real* a, const Real* b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
}  // namespace

template <typename Real>
CpuModel<Real>::CpuModel(const ModelConfig& c)
    : config(c), layout(c), params(layout.total), grads(layout.total) {}

template <typename Real>
void CpuModel<Real>::resize(int B, int T) {
    if (B == B_ && T == T_) return;
    B_ = B, T_ = T;
    const size_t N = size_t(B) * T, C = config.hidden_size, F = config.intermediate_size;
    const size_t Q = config.q_dim(), KV = config.kv_dim();
    const size_t Hq = config.num_heads, Hkv = config.num_kv_heads;
    a_.layers.resize(config.num_layers);
    for (Layer& l : a_.layers) {
        for (auto* v : {&l.res_in, &l.ln1, &l.res_mid, &l.ln2}) v->resize(N * C);
        for (auto* v : {&l.rstd1, &l.rstd2}) v->resize(N);
        for (auto* v : {&l.q_lin, &l.q, &l.att_out}) v->resize(N * Q);
        for (auto* v : {&l.k_lin, &l.k, &l.v}) v->resize(N * KV);
        l.rstd_q.resize(config.qk_norm ? N * Hq : 0);
        l.rstd_k.resize(config.qk_norm ? N * Hkv : 0);
        l.att.resize(size_t(B) * Hq * T * T);
        for (auto* v : {&l.gate, &l.up, &l.act}) v->resize(N * F);
    }
    a_.res_out.resize(N * C), a_.lnf.resize(N * C), a_.rstdf.resize(N);
    d_.res.resize(N * C), d_.ln.resize(N * C);
    for (auto* v : {&d_.att_out, &d_.q, &d_.q_pre}) v->resize(N * Q);
    for (auto* v : {&d_.k, &d_.v, &d_.k_pre}) v->resize(N * KV);
    for (auto* v : {&d_.act, &d_.gate, &d_.up}) v->resize(N * F);
    pos_.resize(N);
    for (size_t n = 0; n < N; n++) pos_[n] = int(n % T);
}

// One decoder layer: x [N, C] -> out [N, C], saving what the backward needs in a_.layers[l].
template <typename Real>
void CpuModel<Real>::layer_forward(int l, const Real* x, Real* out) {
    using namespace cpu;
    const ModelConfig& c = config;
    const LayerParams& w = layout.layers[l];
    Layer& a = a_.layers[l];
    const int N = B_ * T_, C = c.hidden_size, F = c.intermediate_size, D = c.head_dim;
    const int Q = c.q_dim(), KV = c.kv_dim(), Hq = c.num_heads, Hkv = c.num_kv_heads;

    std::copy(x, x + size_t(N) * C, a.res_in.begin());
    rmsnorm_forward(a.ln1.data(), a.rstd1.data(), x, P(w.ln1), N, C, c.rms_norm_eps);
    linear_forward(a.q_lin.data(), a.ln1.data(), P(w.wq), P(w.bq), N, C, Q);
    linear_forward(a.k_lin.data(), a.ln1.data(), P(w.wk), P(w.bk), N, C, KV);
    linear_forward(a.v.data(), a.ln1.data(), P(w.wv), P(w.bv), N, C, KV);
    // RoPE reads the (Qwen3: per-head normalized) projections; q_pre / k_pre hold them.
    std::vector<Real> q_pre(a.q_lin), k_pre(a.k_lin);
    if (c.qk_norm) {
        rmsnorm_forward(q_pre.data(), a.rstd_q.data(), a.q_lin.data(), P(w.q_norm), N * Hq, D, c.rms_norm_eps);
        rmsnorm_forward(k_pre.data(), a.rstd_k.data(), a.k_lin.data(), P(w.k_norm), N * Hkv, D, c.rms_norm_eps);
    }
    rope_forward(a.q.data(), q_pre.data(), pos_.data(), N, Hq, D, c.rope_theta);
    rope_forward(a.k.data(), k_pre.data(), pos_.data(), N, Hkv, D, c.rope_theta);
    attention_forward(a.att_out.data(), a.att.data(), a.q.data(), a.k.data(), a.v.data(), B_, T_, Hq, Hkv, D);
    std::vector<Real> proj(size_t(N) * C);
    linear_forward(proj.data(), a.att_out.data(), P(w.wo), (const Real*)nullptr, N, Q, C);
    add(a.res_mid.data(), x, proj.data(), proj.size());

    rmsnorm_forward(a.ln2.data(), a.rstd2.data(), a.res_mid.data(), P(w.ln2), N, C, c.rms_norm_eps);
    linear_forward(a.gate.data(), a.ln2.data(), P(w.w_gate), (const Real*)nullptr, N, C, F);
    linear_forward(a.up.data(), a.ln2.data(), P(w.w_up), (const Real*)nullptr, N, C, F);
    swiglu_forward(a.act.data(), a.gate.data(), a.up.data(), a.act.size());
    linear_forward(proj.data(), a.act.data(), P(w.w_down), (const Real*)nullptr, N, F, C);
    add(out, a.res_mid.data(), proj.data(), proj.size());
}

template <typename Real>
const std::vector<Real>& CpuModel<Real>::forward_hidden(const int* tokens, int B, int T) {
    using namespace cpu;
    const ModelConfig& c = config;
    check(B > 0 && T > 0, "forward: batch and sequence length must be positive");
    check(T <= c.max_position_embeddings,
          "forward: sequence length " + std::to_string(T) + " exceeds max_position_embeddings " +
              std::to_string(c.max_position_embeddings));
    resize(B, T);
    const int N = B * T, C = c.hidden_size, V = c.vocab_size;
    for (int n = 0; n < N; n++)
        check(tokens[n] >= 0 && tokens[n] < V, "forward: token id " + std::to_string(tokens[n]) +
                                                   " at position " + std::to_string(n) +
                                                   " is outside the vocabulary (size " + std::to_string(V) + ")");
    tokens_.assign(tokens, tokens + N);
    std::vector<Real> h(size_t(N) * C), next(size_t(N) * C);
    embedding_forward(h.data(), tokens, P(layout.embed), N, C);
    for (int l = 0; l < c.num_layers; l++) {
        layer_forward(l, h.data(), next.data());
        std::swap(h, next);
    }
    a_.res_out = h;
    rmsnorm_forward(a_.lnf.data(), a_.rstdf.data(), h.data(), P(layout.final_norm), N, C, c.rms_norm_eps);
    return a_.lnf;
}

template <typename Real>
Real CpuModel<Real>::forward(const int* tokens, const int* targets, int B, int T) {
    using namespace cpu;
    const int N = B * T, C = config.hidden_size, V = config.vocab_size;
    forward_hidden(tokens, B, T);
    a_.logits.resize(size_t(N) * V), a_.losses.resize(N);
    linear_forward(a_.logits.data(), a_.lnf.data(), P(layout.lm_head), (const Real*)nullptr, N, C, V);
    targets_.assign(N, -1);
    counted_ = 0;
    if (!targets) return Real(0);
    targets_.assign(targets, targets + N);
    for (int n = 0; n < N; n++)
        check(targets_[n] < V, "forward: target id " + std::to_string(targets_[n]) + " at position " +
                                   std::to_string(n) + " is outside the vocabulary");
    cross_entropy_forward(a_.losses.data(), a_.logits.data(), targets_.data(), N, V);
    double sum = 0;
    for (int n = 0; n < N; n++)
        if (targets_[n] >= 0) sum += a_.losses[n], counted_++;
    return counted_ ? Real(sum / counted_) : Real(0);
}

// Backward of one layer: d_.res holds d(out) on entry and d(x) on exit.
template <typename Real>
void CpuModel<Real>::layer_backward(int l) {
    using namespace cpu;
    const ModelConfig& c = config;
    const LayerParams& w = layout.layers[l];
    Layer& a = a_.layers[l];
    const int N = B_ * T_, C = c.hidden_size, F = c.intermediate_size, D = c.head_dim;
    const int Q = c.q_dim(), KV = c.kv_dim(), Hq = c.num_heads, Hkv = c.num_kv_heads;
    Grads& d = d_;

    // out = res_mid + (silu(ln2 Wg^T) * ln2 Wu^T) Wd^T: d(res_mid) starts as d(out) (residual).
    zero(d.act), zero(d.gate), zero(d.up), zero(d.ln);
    linear_backward(d.act.data(), G(w.w_down), (Real*)nullptr, d.res.data(), a.act.data(), P(w.w_down), N, F, C);
    swiglu_backward(d.gate.data(), d.up.data(), d.act.data(), a.gate.data(), a.up.data(), d.act.size());
    linear_backward(d.ln.data(), G(w.w_gate), (Real*)nullptr, d.gate.data(), a.ln2.data(), P(w.w_gate), N, C, F);
    linear_backward(d.ln.data(), G(w.w_up), (Real*)nullptr, d.up.data(), a.ln2.data(), P(w.w_up), N, C, F);
    rmsnorm_backward(d.res.data(), G(w.ln2), d.ln.data(), a.res_mid.data(), P(w.ln2), a.rstd2.data(), N, C);

    // res_mid = x + attention(...) Wo^T
    zero(d.att_out), zero(d.q), zero(d.k), zero(d.v), zero(d.q_pre), zero(d.k_pre), zero(d.ln);
    linear_backward(d.att_out.data(), G(w.wo), (Real*)nullptr, d.res.data(), a.att_out.data(), P(w.wo), N, Q, C);
    attention_backward(d.q.data(), d.k.data(), d.v.data(), d.att_out.data(), a.q.data(), a.k.data(), a.v.data(),
                       a.att.data(), B_, T_, Hq, Hkv, D);
    rope_backward(d.q_pre.data(), d.q.data(), pos_.data(), N, Hq, D, c.rope_theta);
    rope_backward(d.k_pre.data(), d.k.data(), pos_.data(), N, Hkv, D, c.rope_theta);
    // Without qk-norm the pre-rope gradient is already d(q_lin); with it, d.q / d.k are free again
    // and receive d(q_lin) / d(k_lin).
    Real* dq_lin = d.q_pre.data();
    Real* dk_lin = d.k_pre.data();
    if (c.qk_norm) {
        zero(d.q), zero(d.k);
        rmsnorm_backward(d.q.data(), G(w.q_norm), d.q_pre.data(), a.q_lin.data(), P(w.q_norm), a.rstd_q.data(),
                         N * Hq, D);
        rmsnorm_backward(d.k.data(), G(w.k_norm), d.k_pre.data(), a.k_lin.data(), P(w.k_norm), a.rstd_k.data(),
                         N * Hkv, D);
        dq_lin = d.q.data(), dk_lin = d.k.data();
    }
    linear_backward(d.ln.data(), G(w.wq), G(w.bq), dq_lin, a.ln1.data(), P(w.wq), N, C, Q);
    linear_backward(d.ln.data(), G(w.wk), G(w.bk), dk_lin, a.ln1.data(), P(w.wk), N, C, KV);
    linear_backward(d.ln.data(), G(w.wv), G(w.bv), d.v.data(), a.ln1.data(), P(w.wv), N, C, KV);
    rmsnorm_backward(d.res.data(), G(w.ln1), d.ln.data(), a.res_in.data(), P(w.ln1), a.rstd1.data(), N, C);
}

template <typename Real>
void CpuModel<Real>::backward() {
    using namespace cpu;
    check(B_ > 0 && a_.logits.size() == size_t(B_) * T_ * config.vocab_size, "backward called before forward");
    const int N = B_ * T_, C = config.hidden_size, V = config.vocab_size;
    // loss = sum(losses) / counted, so each counted position's loss has gradient 1 / counted.
    d_.losses.assign(N, counted_ ? Real(1) / Real(counted_) : Real(0));
    d_.logits.assign(size_t(N) * V, Real(0));
    zero(d_.ln);
    cross_entropy_backward(d_.logits.data(), a_.logits.data(), targets_.data(), d_.losses.data(), N, V);
    linear_backward(d_.ln.data(), G(layout.lm_head), (Real*)nullptr, d_.logits.data(), a_.lnf.data(),
                    P(layout.lm_head), N, C, V);
    std::vector<Real> dhidden = d_.ln;
    backward_hidden(dhidden.data());
}

template <typename Real>
void CpuModel<Real>::backward_hidden(const Real* dhidden) {
    using namespace cpu;
    check(B_ > 0, "backward called before forward");
    const int N = B_ * T_, C = config.hidden_size;
    zero(d_.res);
    rmsnorm_backward(d_.res.data(), G(layout.final_norm), dhidden, a_.res_out.data(), P(layout.final_norm),
                     a_.rstdf.data(), N, C);
    for (int l = config.num_layers - 1; l >= 0; l--) layer_backward(l);
    embedding_backward(G(layout.embed), d_.res.data(), tokens_.data(), N, C);
}

template <typename Real>
void CpuModel<Real>::zero_grad() {
    zero(grads);
}

template class CpuModel<float>;
template class CpuModel<double>;

// ---------------------------------------------------------------------------------------------
// The fp32 CPU backend behind the trainer's Model interface.

namespace {
class CpuBackend final : public Model {
    // The fused loss's logits tile per thread (token rows x vocabulary columns).
    static constexpr int kVocabChunk = 4096, kTokenChunk = 32;

public:
    // A frozen model (the RL reference, a judge) has no gradient array: a 32B judge's fp32 copy is
    // large enough on the host without a second one.
    CpuBackend(const ModelConfig& c, bool frozen) : Model(c), m_(c), frozen_(frozen) {
        if (frozen) m_.grads = std::vector<float>();
    }
    float forward(const int* tokens, const int* targets, int B, int T) override {
        return m_.forward(tokens, targets, B, T);
    }
    void backward() override {
        trainable();
        m_.backward();
    }
    const float* forward_hidden(const int* tokens, int B, int T) override {
        return m_.forward_hidden(tokens, B, T).data();
    }
    void backward_hidden(const float* dhidden) override {
        trainable();
        m_.backward_hidden(dhidden);
    }
    std::vector<float> token_logprobs(const GrpoBatch& b, double temperature) override {
        const int C = config.hidden_size, N = b.B * b.T;
        std::vector<float> logp(N);
        cpu::grpo_logprobs(logp.data(), (float*)nullptr, forward_hidden(b.tokens.data(), b.B, b.T),
                           params() + layout.lm_head, b.target.data(), N, C, config.vocab_size, temperature,
                           kVocabChunk, kTokenChunk);
        return logp;
    }
    cpu::GrpoLossStats grpo_loss_backward(const GrpoBatch& b, const cpu::GrpoLossConfig& cfg) override {
        const int C = config.hidden_size, N = b.B * b.T;
        const float* h = forward_hidden(b.tokens.data(), b.B, b.T);
        std::vector<float> logp(N), dh(size_t(N) * C, 0.0f);
        cpu::GrpoLossStats st = cpu::grpo_loss(logp.data(), dh.data(), grads() + layout.lm_head, h,
                                               params() + layout.lm_head, b.target.data(), b.adv.data(),
                                               b.old_logp.data(), cfg.beta > 0 ? b.ref_logp.data() : nullptr,
                                               b.mask.data(), b.seq.data(), N, C, config.vocab_size, b.S,
                                               b.max_len, cfg);
        if (std::isfinite(st.loss)) backward_hidden(dh.data());
        return st;
    }
    void zero_grad() override {
        trainable();
        m_.zero_grad();
    }
    std::vector<float> logits() const override { return m_.logits(); }
    long counted_tokens() const override { return m_.counted_tokens(); }
    float* params() override { return m_.params.data(); }
    float* grads() override {
        trainable();
        return m_.grads.data();
    }

private:
    void trainable() const { check(!frozen_, "a frozen model has no gradients (a rusca bug)"); }
    CpuModel<float> m_;
    const bool frozen_;
};
}  // namespace

std::unique_ptr<Model> make_cpu_model(const ModelConfig& c, bool frozen) {
    return std::make_unique<CpuBackend>(c, frozen);
}

std::unique_ptr<Model> load_cpu_model(const std::string& dir) {
    std::unique_ptr<Model> m = make_cpu_model(load_config(dir + "/config.json"));
    load_params(dir, m->layout, m->params());
    return m;
}

void init_params(const ParamLayout& layout, float* params, uint64_t seed, float std) {
    Rng rng(seed);
    for (const ParamInfo& p : layout.tensors) {
        float* w = params + p.offset;
        bool is_norm = p.name.find("norm") != std::string::npos;
        for (size_t i = 0; i < p.numel; i++)
            w[i] = p.shape.size() == 2 ? float(rng.normal() * std) : (is_norm ? 1.0f : 0.0f);
    }
}

}  // namespace rusca
