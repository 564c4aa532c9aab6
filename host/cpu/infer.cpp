// infer.cpp: the transformer forward over a KV cache, built from the same CPU ops as training
// (host/cpu/ops.h) so a cached decode gives the same logits as a full forward of the sequence.
#include "infer.h"

#include <algorithm>

#include "host/error.h"
#include "ops.h"

namespace rusca {

CpuInference::CpuInference(const ModelConfig& c, const float* params) : config(c), layout(c), params_(params) {}

// One layer on n new rows x [n, C] (in place), positions pos0 .. pos0 + n - 1.
void CpuInference::layer(int l, const KvCache* prefix, KvCache& own, float* x, int n, int pos0) const {
    using namespace cpu;
    const ModelConfig& c = config;
    const LayerParams& w = layout.layers[l];
    const int C = c.hidden_size, F = c.intermediate_size, D = c.head_dim, Q = c.q_dim(), KV = c.kv_dim();
    const int Hq = c.num_heads, Hkv = c.num_kv_heads;
    std::vector<int> pos(n);
    for (int i = 0; i < n; i++) pos[i] = pos0 + i;

    std::vector<float> ln(size_t(n) * C), rstd(size_t(n) * std::max(Hq, 1)), q(size_t(n) * Q), k(size_t(n) * KV),
        v(size_t(n) * KV);
    rmsnorm_forward(ln.data(), rstd.data(), x, P(w.ln1), n, C, c.rms_norm_eps);
    linear_forward(q.data(), ln.data(), P(w.wq), P(w.bq), n, C, Q);
    linear_forward(k.data(), ln.data(), P(w.wk), P(w.bk), n, C, KV);
    linear_forward(v.data(), ln.data(), P(w.wv), P(w.bv), n, C, KV);
    if (c.qk_norm) {  // Qwen3: per-head RMSNorm of q and k before RoPE
        std::vector<float> q_lin(q), k_lin(k);
        rmsnorm_forward(q.data(), rstd.data(), q_lin.data(), P(w.q_norm), n * Hq, D, c.rms_norm_eps);
        rmsnorm_forward(k.data(), rstd.data(), k_lin.data(), P(w.k_norm), n * Hkv, D, c.rms_norm_eps);
    }
    std::vector<float> qr(q.size());
    rope_forward(qr.data(), q.data(), pos.data(), n, Hq, D, c.rope_theta);
    std::vector<float>& own_k = own.k[l];
    const size_t at = own_k.size();
    own_k.resize(at + k.size());
    rope_forward(own_k.data() + at, k.data(), pos.data(), n, Hkv, D, c.rope_theta);
    own.v[l].insert(own.v[l].end(), v.begin(), v.end());

    const int Lp = prefix ? prefix->len : 0, Lo = int(own_k.size() / KV);
    std::vector<float> att(size_t(n) * Q), proj(size_t(n) * C);
    kv_attention_forward(att.data(), qr.data(), prefix ? prefix->k[l].data() : nullptr,
                         prefix ? prefix->v[l].data() : nullptr, Lp, own_k.data(), own.v[l].data(), Lo, n, Hq, Hkv, D);
    linear_forward(proj.data(), att.data(), P(w.wo), (const float*)nullptr, n, Q, C);
    for (size_t i = 0; i < proj.size(); i++) x[i] += proj[i];

    std::vector<float> gate(size_t(n) * F), up(size_t(n) * F);
    rmsnorm_forward(ln.data(), rstd.data(), x, P(w.ln2), n, C, c.rms_norm_eps);
    linear_forward(gate.data(), ln.data(), P(w.w_gate), (const float*)nullptr, n, C, F);
    linear_forward(up.data(), ln.data(), P(w.w_up), (const float*)nullptr, n, C, F);
    std::vector<float> act(gate.size());
    swiglu_forward(act.data(), gate.data(), up.data(), act.size());
    linear_forward(proj.data(), act.data(), P(w.w_down), (const float*)nullptr, n, F, C);
    for (size_t i = 0; i < proj.size(); i++) x[i] += proj[i];
}

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
    std::vector<float> x(size_t(n) * C);
    cpu::embedding_forward(x.data(), tokens, P(layout.embed), n, C);
    for (int l = 0; l < c.num_layers; l++) layer(l, prefix, own, x.data(), n, pos0);
    own.len += n;
    float rstd;
    cpu::rmsnorm_forward(last_hidden, &rstd, x.data() + size_t(n - 1) * C, P(layout.final_norm), 1, C, c.rms_norm_eps);
    if (last_logits) logits(last_hidden, last_logits);
}

void CpuInference::logits(const float* hidden, float* out) const {
    cpu::linear_forward(out, hidden, P(layout.lm_head), (const float*)nullptr, 1, config.hidden_size,
                        config.vocab_size);
}

}  // namespace rusca
