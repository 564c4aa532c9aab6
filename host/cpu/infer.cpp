// infer.cpp: the transformer forward over a KV cache: the inference mode of the one graph
// (host/graph.h) on the same CPU ops as training, so a cached decode gives the same logits as a full
// forward of the sequence.
#include "infer.h"

#include <algorithm>

#include "host/error.h"
#include "graph_ops.h"
#include "host/graph.h"
#include "ops.h"

namespace rusca {

CpuInference::CpuInference(const ModelConfig& c, const float* params) : config(c), layout(c), params_(params) {}

namespace {

// Inference mode of the graph (host/graph.h) on n new rows after a cache: the residual stream x is
// updated in place; each layer's keys (roped) and values are appended to `own`, and attention reads
// the prefix segment then `own`.
class InferOps : public cpu::GraphOps<float> {
public:
    InferOps(const ModelConfig& c, const ParamLayout& layout, const float* params, const int* tokens,
             const int* pos, const KvCache* prefix, KvCache& own, int n)
        : cpu::GraphOps<float>(c, layout, params, nullptr, tokens, pos), prefix_(prefix), own_(own) {
        const size_t C = c.hidden_size, F = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
        x_.resize(n * C), ln_.resize(n * C), proj_.resize(n * C), rstd_.resize(n);
        rstd_q_.resize(n * size_t(c.num_heads)), rstd_k_.resize(n * size_t(c.num_kv_heads));
        q_lin_.resize(n * Q), q_pre_.resize(n * Q), q_.resize(n * Q), att_.resize(n * Q);
        k_lin_.resize(n * KV), k_pre_.resize(n * KV);
        gate_.resize(n * F), up_.resize(n * F), act_.resize(n * F);
    }
    Bufs bufs(int) {
        Bufs b;
        b.res_in = b.res_mid = b.res_out = x_.data();
        b.ln1 = b.ln2 = b.ln_out = ln_.data();
        b.rstd1 = b.rstd2 = b.rstd_out = rstd_.data();
        b.q_lin = q_lin_.data(), b.k_lin = k_lin_.data(), b.q_pre = q_pre_.data(), b.k_pre = k_pre_.data();
        b.rstd_q = rstd_q_.data(), b.rstd_k = rstd_k_.data(), b.q = q_.data(), b.att = att_.data();
        b.proj = proj_.data(), b.gate = gate_.data(), b.up = up_.data(), b.act = act_.data();
        return b;
    }
    void project_v(int l, const float* ln, const float* Wv, const float* bv, int n) {
        std::vector<float>& v = own_.v[l];
        const size_t at = v.size();
        v.resize(at + size_t(n) * c_.kv_dim());
        linear(v.data() + at, ln, Wv, bv, n, c_.hidden_size, c_.kv_dim());
    }
    void rope_k(int l, const float* k, int n) {
        std::vector<float>& own_k = own_.k[l];
        const size_t at = own_k.size();
        own_k.resize(at + size_t(n) * c_.kv_dim());
        rope(own_k.data() + at, k, n, c_.num_kv_heads);
    }
    bool attends(int) const { return true; }
    void attention(int l, float* out, const float* q, int n) const {
        const int Lp = prefix_ ? prefix_->len : 0, Lo = int(own_.k[l].size() / c_.kv_dim());
        cpu::kv_attention_forward(out, q, prefix_ ? prefix_->k[l].data() : nullptr,
                                  prefix_ ? prefix_->v[l].data() : nullptr, Lp, own_.k[l].data(), own_.v[l].data(),
                                  Lo, n, c_.num_heads, c_.num_kv_heads, c_.head_dim);
    }
    // Final-norm hidden states of the fed rows (after graph::trunk_forward).
    const float* hidden() const { return ln_.data(); }

private:
    const KvCache* prefix_;
    KvCache& own_;
    std::vector<float> x_, ln_, proj_, rstd_, rstd_q_, rstd_k_, q_lin_, q_pre_, q_, att_, k_lin_, k_pre_;
    std::vector<float> gate_, up_, act_;
};

}  // namespace

void CpuInference::extend(const KvCache* prefix, KvCache& own, const int* tokens, int n, float* last_hidden,
                          float* last_logits) const {
    const ModelConfig& c = config;
    const int C = c.hidden_size;
    check(n > 0, "extend: no tokens to feed");
    const int pos0 = (prefix ? prefix->len : 0) + own.len;
    check(pos0 + n <= c.max_position_embeddings,
          "sequence of " + std::to_string(pos0 + n) + " tokens exceeds max_position_embeddings " +
              std::to_string(c.max_position_embeddings));
    for (int i = 0; i < n; i++)
        check(tokens[i] >= 0 && tokens[i] < c.vocab_size,
              "token id " + std::to_string(tokens[i]) + " is outside the vocabulary");
    own.k.resize(c.num_layers), own.v.resize(c.num_layers);
    std::vector<int> pos(n);
    for (int i = 0; i < n; i++) pos[i] = pos0 + i;
    InferOps ops(c, layout, params_, tokens, pos.data(), prefix, own, n);
    graph::trunk_forward(ops, n);
    own.len += n;
    const float* last = ops.hidden() + size_t(n - 1) * C;
    std::copy(last, last + C, last_hidden);
    if (last_logits) logits(last_hidden, last_logits);
}

void CpuInference::logits(const float* hidden, float* out) const {
    cpu::linear_forward(out, hidden, P(layout.lm_head), (const float*)nullptr, 1, config.hidden_size,
                        config.vocab_size);
}

}  // namespace rusca
