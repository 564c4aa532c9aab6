// graph.h: the decoder layer, written once. Every backend and mode runs these functions:
//
//   training forward + backward   CPU fp32/fp64 (host/cpu/cpu_model.cpp), CUDA bf16 (host/cuda/cuda_model.cpp)
//   prefill / decode over a KV cache   CPU (host/cpu/infer.cpp), CUDA (host/cuda/cuda_feed.cpp,
//                                      host/cuda/cuda_decode.cpp)
//
// so a fix or a new model feature (a bias, q/k norm, GQA, a new norm placement) lands in one place.
// The graph, per layer (pre-norm; the residual add is fused with the next norm, so a layer starts
// from its residual input and that input already normed):
//
//   q, k, v = ln1 Wq^T (+bq), ln1 Wk^T (+bk), ln1 Wv^T (+bv)      v: where the mode keeps values
//   [Qwen3: q, k = per-head rmsnorm]   q, k = rope(q, k)           k: where the mode keeps keys
//   res_mid = res_in + attention(q, keys, values) Wo^T;  ln2 = rmsnorm(res_mid)
//   res_out = res_mid + (silu(ln2 Wg^T) * (ln2 Wu^T)) Wd^T;  ln_out = rmsnorm(res_out) (next ln1 or final)
//
// `Ops` is the backend's table of ops, with the same names and argument order on every backend
// (destination first, as host/cpu/ops.h and cuda/<family>.cuh):
//   types Act (activations), Stat (saved rstd), Wt (weights), Grad (weight gradients)
//   config(), layout(), W(offset), G(offset), pos(), tokens()
//   embedding, rmsnorm, residual_rmsnorm, linear, rope, swiglu        (every mode)
//   bufs(l): the layer's LayerBufs (in inference they alias: the layer runs in place)
//   project_v(l, ln, Wv, bv, N), rope_k(l, k, N): put the layer's values / roped keys where the mode
//     keeps them (saved activations, a KV cache, the pool rows of a feed or a decode slot)
//   attends(l): false when the mode needs only layer l's keys/values (a judge prefix's last layer)
//   attention(l, out, q, N): over the keys/values project_v / rope_k stored
//   training only: grads(), zero, embedding_backward, rmsnorm_backward, linear_backward,
//     rope_backward, swiglu_backward, attention_backward(l, dq, dk, dv, datt)
#pragma once
#include <cstddef>

#include "host/config.h"
#include "host/params.h"

namespace rusca::graph {

// One layer's activations as the graph names them. Inference points several names at one buffer.
template <typename Act, typename Stat>
struct LayerBufs {
    Act *res_in, *ln1;  // the layer's input and its ln1-normed copy (written before the layer runs)
    Stat* rstd1;
    Act *q_lin, *k_lin, *q_pre, *k_pre;  // projections; q_pre / k_pre: after q/k norm (Qwen3)
    Stat *rstd_q, *rstd_k;
    Act* q;  // roped queries
    Act *att, *proj, *res_mid, *ln2;
    Stat* rstd2;
    Act *gate, *up, *act;
    Act *res_out, *ln_out;  // the next layer's res_in / ln1, or the final residual and final norm
    Stat* rstd_out;
};

// Activation gradients, scratch shared by every layer of the backward. res holds d(layer output) on
// entry to layer_backward and d(layer input) on exit.
template <typename Act>
struct GradBufs {
    Act *res, *ln, *att, *q, *k, *v, *q_pre, *k_pre, *act, *gate, *up;
};

// Layer l on N rows. Returns false when the mode stopped after the layer's keys/values.
template <class Ops>
bool layer_forward(Ops& ops, int l, int N) {
    const ModelConfig& c = ops.config();
    const ParamLayout& p = ops.layout();
    const LayerParams& w = p.layers[l];
    const int C = c.hidden_size, F = c.intermediate_size, D = c.head_dim;
    const int Q = c.q_dim(), KV = c.kv_dim(), Hq = c.num_heads, Hkv = c.num_kv_heads;
    auto a = ops.bufs(l);

    ops.linear(a.q_lin, a.ln1, ops.W(w.wq), ops.W(w.bq), N, C, Q);
    ops.linear(a.k_lin, a.ln1, ops.W(w.wk), ops.W(w.bk), N, C, KV);
    ops.project_v(l, a.ln1, ops.W(w.wv), ops.W(w.bv), N);
    const auto* q_in = a.q_lin;
    const auto* k_in = a.k_lin;
    if (c.qk_norm) {  // Qwen3: per-head RMSNorm of q and k before RoPE
        ops.rmsnorm(a.q_pre, a.rstd_q, a.q_lin, ops.W(w.q_norm), N * Hq, D);
        ops.rmsnorm(a.k_pre, a.rstd_k, a.k_lin, ops.W(w.k_norm), N * Hkv, D);
        q_in = a.q_pre, k_in = a.k_pre;
    }
    ops.rope(a.q, q_in, N, Hq);
    ops.rope_k(l, k_in, N);
    if (!ops.attends(l)) return false;
    ops.attention(l, a.att, a.q, N);
    ops.linear(a.proj, a.att, ops.W(w.wo), nullptr, N, Q, C);
    ops.residual_rmsnorm(a.res_mid, a.ln2, a.rstd2, a.res_in, a.proj, ops.W(w.ln2), N, C);

    ops.linear(a.gate, a.ln2, ops.W(w.w_gate), nullptr, N, C, F);
    ops.linear(a.up, a.ln2, ops.W(w.w_up), nullptr, N, C, F);
    ops.swiglu(a.act, a.gate, a.up, size_t(N) * F);
    ops.linear(a.proj, a.act, ops.W(w.w_down), nullptr, N, F, C);
    const bool last = l + 1 == c.num_layers;
    const auto* next_norm = ops.W(last ? p.final_norm : p.layers[l + 1].ln1);
    ops.residual_rmsnorm(a.res_out, a.ln_out, a.rstd_out, a.res_mid, a.proj, next_norm, N, C);
    return true;
}

// Embedding, layer 0's input norm and every layer: the last layer's ln_out holds the final-norm
// hidden states of ops.tokens() [N] (unless the mode stopped early).
template <class Ops>
void trunk_forward(Ops& ops, int N) {
    const ModelConfig& c = ops.config();
    const ParamLayout& p = ops.layout();
    auto a = ops.bufs(0);
    ops.embedding(a.res_in, ops.tokens(), ops.W(p.embed), N, c.hidden_size);
    ops.rmsnorm(a.ln1, a.rstd1, a.res_in, ops.W(p.layers[0].ln1), N, c.hidden_size);
    for (int l = 0; l < c.num_layers; l++)
        if (!layer_forward(ops, l, N)) break;
}

// Backward of layer l: ops.grads().res holds d(out) on entry and d(res_in) on exit; adds every
// weight gradient of the layer.
template <class Ops>
void layer_backward(Ops& ops, int l, int N) {
    const ModelConfig& c = ops.config();
    const LayerParams& w = ops.layout().layers[l];
    const int C = c.hidden_size, F = c.intermediate_size, D = c.head_dim;
    const int Q = c.q_dim(), KV = c.kv_dim(), Hq = c.num_heads, Hkv = c.num_kv_heads;
    const size_t n = size_t(N);
    auto a = ops.bufs(l);
    auto d = ops.grads();

    // out = res_mid + (silu(ln2 Wg^T) * ln2 Wu^T) Wd^T: d(res_mid) starts as d(out) (residual).
    ops.zero(d.act, n * F), ops.zero(d.gate, n * F), ops.zero(d.up, n * F), ops.zero(d.ln, n * C);
    ops.linear_backward(d.act, ops.G(w.w_down), nullptr, d.res, a.act, ops.W(w.w_down), N, F, C);
    ops.swiglu_backward(d.gate, d.up, d.act, a.gate, a.up, n * F);
    ops.linear_backward(d.ln, ops.G(w.w_gate), nullptr, d.gate, a.ln2, ops.W(w.w_gate), N, C, F);
    ops.linear_backward(d.ln, ops.G(w.w_up), nullptr, d.up, a.ln2, ops.W(w.w_up), N, C, F);
    ops.rmsnorm_backward(d.res, ops.G(w.ln2), d.ln, a.res_mid, ops.W(w.ln2), a.rstd2, N, C);

    // res_mid = res_in + attention(...) Wo^T
    ops.zero(d.att, n * Q), ops.zero(d.q, n * Q), ops.zero(d.k, n * KV), ops.zero(d.v, n * KV);
    ops.zero(d.q_pre, n * Q), ops.zero(d.k_pre, n * KV), ops.zero(d.ln, n * C);
    ops.linear_backward(d.att, ops.G(w.wo), nullptr, d.res, a.att, ops.W(w.wo), N, Q, C);
    ops.attention_backward(l, d.q, d.k, d.v, d.att);
    ops.rope_backward(d.q_pre, d.q, N, Hq);
    ops.rope_backward(d.k_pre, d.k, N, Hkv);
    // Without qk-norm the pre-rope gradient is already d(q_lin); with it, d.q / d.k are free again
    // and receive d(q_lin) / d(k_lin).
    auto* dq_lin = d.q_pre;
    auto* dk_lin = d.k_pre;
    if (c.qk_norm) {
        ops.zero(d.q, n * Q), ops.zero(d.k, n * KV);
        ops.rmsnorm_backward(d.q, ops.G(w.q_norm), d.q_pre, a.q_lin, ops.W(w.q_norm), a.rstd_q, N * Hq, D);
        ops.rmsnorm_backward(d.k, ops.G(w.k_norm), d.k_pre, a.k_lin, ops.W(w.k_norm), a.rstd_k, N * Hkv, D);
        dq_lin = d.q, dk_lin = d.k;
    }
    ops.linear_backward(d.ln, ops.G(w.wq), ops.G(w.bq), dq_lin, a.ln1, ops.W(w.wq), N, C, Q);
    ops.linear_backward(d.ln, ops.G(w.wk), ops.G(w.bk), dk_lin, a.ln1, ops.W(w.wk), N, C, KV);
    ops.linear_backward(d.ln, ops.G(w.wv), ops.G(w.bv), d.v, a.ln1, ops.W(w.wv), N, C, KV);
    ops.rmsnorm_backward(d.res, ops.G(w.ln1), d.ln, a.res_in, ops.W(w.ln1), a.rstd1, N, C);
}

// From d(final hidden) down to the embedding: adds every weight gradient but the LM head's.
template <class Ops, typename Act>
void trunk_backward(Ops& ops, const Act* dhidden, int N) {
    const ModelConfig& c = ops.config();
    const ParamLayout& p = ops.layout();
    const int C = c.hidden_size;
    auto last = ops.bufs(c.num_layers - 1);
    auto d = ops.grads();
    ops.zero(d.res, size_t(N) * C);
    ops.rmsnorm_backward(d.res, ops.G(p.final_norm), dhidden, last.res_out, ops.W(p.final_norm), last.rstd_out, N, C);
    for (int l = c.num_layers - 1; l >= 0; l--) layer_backward(ops, l, N);
    ops.embedding_backward(ops.G(p.embed), d.res, ops.tokens(), N, C);
}

}  // namespace rusca::graph
