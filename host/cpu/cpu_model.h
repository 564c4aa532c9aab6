// cpu_model.h: the whole transformer forward and backward on the CPU, in precision Real.
// float is what `rusca sft` trains with; double lets the tests check every parameter gradient
// against finite differences. The layer is host/graph.h's (written once for every backend):
//
//   h = embed(tokens)
//   per layer:  a = rmsnorm(h);  q,k,v = a Wq^T (+bq), a Wk^T (+bk), a Wv^T (+bv)
//               [Qwen3: q,k = per-head rmsnorm]   q,k = rope(q,k)
//               h = h + attention(q,k,v) Wo^T
//               m = rmsnorm(h);  h = h + (silu(m Wg^T) * (m Wu^T)) Wd^T
//   logits = rmsnorm(h) Wlm^T;  loss = mean cross-entropy over counted targets
#pragma once
#include <vector>

#include "host/config.h"
#include "host/params.h"

namespace rusca {

template <typename Real>
class CpuModel {
public:
    explicit CpuModel(const ModelConfig& c);
    const ModelConfig config;
    const ParamLayout layout;
    std::vector<Real> params, grads;  // layout.total each

    Real forward(const int* tokens, const int* targets, int B, int T);
    void backward();
    // The trunk alone: final-norm hidden states [B*T, C], and the backward from their gradient.
    // The RL loss uses these with its own fused LM-head + loss (no [tokens x vocab] logits).
    const std::vector<Real>& forward_hidden(const int* tokens, int B, int T);
    void backward_hidden(const Real* dhidden);
    void zero_grad();
    const std::vector<Real>& logits() const { return a_.logits; }
    long counted_tokens() const { return counted_; }

private:
    // Activations saved by the forward for the backward, per layer where they differ per layer.
    struct Layer {
        std::vector<Real> res_in, ln1, rstd1, q_lin, k_lin, rstd_q, rstd_k, q, k, v, att, att_out;
        std::vector<Real> res_mid, ln2, rstd2, gate, up, act;
    };
    struct Acts {
        std::vector<Layer> layers;
        std::vector<Real> res_out, lnf, rstdf, logits, losses;
        std::vector<Real> q_pre, k_pre, proj;  // scratch, reused by every layer
    };
    // Scratch gradients, reused by every layer of the backward.
    struct Grads {
        std::vector<Real> res, ln, att_out, q, k, v, q_pre, k_pre, act, gate, up, logits, losses;
    };
    class Ops;  // the op table host/graph.h runs on: the CPU ops over these buffers
    void resize(int B, int T);
    const Real* P(size_t offset) const { return offset == kAbsent ? nullptr : params.data() + offset; }
    Real* G(size_t offset) { return offset == kAbsent ? nullptr : grads.data() + offset; }

    int B_ = 0, T_ = 0;
    std::vector<int> tokens_, targets_, pos_;
    long counted_ = 0;
    Acts a_;
    Grads d_;
};

}  // namespace rusca
