// cpu_model.cpp: the training mode of the one transformer graph (host/graph.h) on the CPU reference
// ops (host/cpu/graph_ops.h), the LM head + cross-entropy, and the fp32 Model adapter the trainer uses.
#include "cpu_model.h"

#include <algorithm>
#include <cmath>

#include "host/checkpoint.h"
#include "grpo_loss.h"
#include "host/error.h"
#include "host/model.h"
#include "host/rng.h"
#include "graph_ops.h"
#include "host/graph.h"
#include "ops.h"

namespace rusca {

namespace {
template <typename Real>
void zero(std::vector<Real>& v) {
    std::fill(v.begin(), v.end(), Real(0));
}
}  // namespace

// Training mode of the graph: every layer keeps its own activations for the backward; keys and
// values are the layer's saved k / v; attention is causal over the [B, T] grid.
template <typename Real>
class CpuModel<Real>::Ops : public cpu::GraphOps<Real> {
public:
    explicit Ops(CpuModel& m)
        : cpu::GraphOps<Real>(m.config, m.layout, m.params.data(), m.grads.empty() ? nullptr : m.grads.data(),
                              m.tokens_.data(), m.pos_.data()),
          m_(m) {}
    using Bufs = typename cpu::GraphOps<Real>::Bufs;

    Bufs bufs(int l) const {
        Acts& a = m_.a_;
        Layer& x = a.layers[l];
        const bool last = l + 1 == int(a.layers.size());
        Bufs b;
        b.res_in = x.res_in.data(), b.ln1 = x.ln1.data(), b.rstd1 = x.rstd1.data();
        b.q_lin = x.q_lin.data(), b.k_lin = x.k_lin.data(), b.q_pre = a.q_pre.data(), b.k_pre = a.k_pre.data();
        b.rstd_q = x.rstd_q.data(), b.rstd_k = x.rstd_k.data(), b.q = x.q.data();
        b.att = x.att_out.data(), b.proj = a.proj.data(), b.res_mid = x.res_mid.data(), b.ln2 = x.ln2.data();
        b.rstd2 = x.rstd2.data(), b.gate = x.gate.data(), b.up = x.up.data(), b.act = x.act.data();
        b.res_out = last ? a.res_out.data() : a.layers[l + 1].res_in.data();
        b.ln_out = last ? a.lnf.data() : a.layers[l + 1].ln1.data();
        b.rstd_out = last ? a.rstdf.data() : a.layers[l + 1].rstd1.data();
        return b;
    }
    graph::GradBufs<Real> grads() const {
        Grads& d = m_.d_;
        return {d.res.data(), d.ln.data(), d.att_out.data(), d.q.data(), d.k.data(), d.v.data(), d.q_pre.data(),
                d.k_pre.data(), d.act.data(), d.gate.data(), d.up.data()};
    }
    void project_v(int l, const Real* ln, const Real* Wv, const Real* bv, int N) const {
        this->linear(m_.a_.layers[l].v.data(), ln, Wv, bv, N, m_.config.hidden_size, m_.config.kv_dim());
    }
    void rope_k(int l, const Real* k, int N) const { this->rope(m_.a_.layers[l].k.data(), k, N, m_.config.num_kv_heads); }
    bool attends(int) const { return true; }
    void attention(int l, Real* out, const Real* q, int) const {
        Layer& x = m_.a_.layers[l];
        const ModelConfig& c = m_.config;
        cpu::attention_forward(out, x.att.data(), q, x.k.data(), x.v.data(), m_.B_, m_.T_, c.num_heads,
                               c.num_kv_heads, c.head_dim);
    }
    void attention_backward(int l, Real* dq, Real* dk, Real* dv, const Real* datt) const {
        Layer& x = m_.a_.layers[l];
        const ModelConfig& c = m_.config;
        cpu::attention_backward(dq, dk, dv, datt, x.q.data(), x.k.data(), x.v.data(), x.att.data(), m_.B_, m_.T_,
                                c.num_heads, c.num_kv_heads, c.head_dim);
    }

private:
    CpuModel& m_;
};

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
    a_.q_pre.resize(N * Q), a_.k_pre.resize(N * KV), a_.proj.resize(N * C);
    d_.res.resize(N * C), d_.ln.resize(N * C);
    for (auto* v : {&d_.att_out, &d_.q, &d_.q_pre}) v->resize(N * Q);
    for (auto* v : {&d_.k, &d_.v, &d_.k_pre}) v->resize(N * KV);
    for (auto* v : {&d_.act, &d_.gate, &d_.up}) v->resize(N * F);
    pos_.resize(N);
    for (size_t n = 0; n < N; n++) pos_[n] = int(n % T);
}

template <typename Real>
const std::vector<Real>& CpuModel<Real>::forward_hidden(const int* tokens, int B, int T) {
    const ModelConfig& c = config;
    check(B > 0 && T > 0, "forward: batch and sequence length must be positive");
    check(T <= c.max_position_embeddings,
          "forward: sequence length " + std::to_string(T) + " exceeds max_position_embeddings " +
              std::to_string(c.max_position_embeddings));
    resize(B, T);
    const int N = B * T, V = c.vocab_size;
    for (int n = 0; n < N; n++)
        check(tokens[n] >= 0 && tokens[n] < V, "forward: token id " + std::to_string(tokens[n]) +
                                                   " at position " + std::to_string(n) +
                                                   " is outside the vocabulary (size " + std::to_string(V) + ")");
    tokens_.assign(tokens, tokens + N);
    Ops ops(*this);
    graph::trunk_forward(ops, N);
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
    check(B_ > 0, "backward called before forward");
    Ops ops(*this);
    graph::trunk_backward(ops, dhidden, B_ * T_);
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
        check(b.old_logp.size() == size_t(N) && (cfg.beta <= 0 || b.ref_logp.size() == size_t(N)),
              "GRPO batch: old / reference log-probs missing on the host (a rusca bug)");
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
