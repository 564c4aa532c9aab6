// params.cpp: the parameter table in Hugging Face order and naming.
#include "params.h"

namespace rusca {

ParamLayout::ParamLayout(const ModelConfig& c) {
    auto add = [&](const std::string& name, std::vector<int64_t> shape) {
        ParamInfo p;
        p.name = name;
        p.shape = std::move(shape);
        p.numel = 1;
        for (int64_t d : p.shape) p.numel *= size_t(d);
        p.offset = total;
        p.decay = p.shape.size() == 2;
        total += p.numel;
        tensors.push_back(p);
        return p.offset;
    };
    const int64_t C = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, D = c.head_dim;
    const int64_t Q = c.q_dim(), KV = c.kv_dim();
    embed = add("model.embed_tokens.weight", {V, C});
    for (int i = 0; i < c.num_layers; i++) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        LayerParams l;
        l.ln1 = add(p + "input_layernorm.weight", {C});
        l.wq = add(p + "self_attn.q_proj.weight", {Q, C});
        l.bq = c.qkv_bias ? add(p + "self_attn.q_proj.bias", {Q}) : kAbsent;
        l.wk = add(p + "self_attn.k_proj.weight", {KV, C});
        l.bk = c.qkv_bias ? add(p + "self_attn.k_proj.bias", {KV}) : kAbsent;
        l.wv = add(p + "self_attn.v_proj.weight", {KV, C});
        l.bv = c.qkv_bias ? add(p + "self_attn.v_proj.bias", {KV}) : kAbsent;
        l.q_norm = c.qk_norm ? add(p + "self_attn.q_norm.weight", {D}) : kAbsent;
        l.k_norm = c.qk_norm ? add(p + "self_attn.k_norm.weight", {D}) : kAbsent;
        l.wo = add(p + "self_attn.o_proj.weight", {C, Q});
        l.ln2 = add(p + "post_attention_layernorm.weight", {C});
        l.w_gate = add(p + "mlp.gate_proj.weight", {F, C});
        l.w_up = add(p + "mlp.up_proj.weight", {F, C});
        l.w_down = add(p + "mlp.down_proj.weight", {C, F});
        layers.push_back(l);
    }
    final_norm = add("model.norm.weight", {C});
    lm_head = c.tie_word_embeddings ? embed : add("lm_head.weight", {V, C});
}

const ParamInfo* ParamLayout::find(const std::string& name) const {
    for (const ParamInfo& p : tensors)
        if (p.name == name) return &p;
    return nullptr;
}

}  // namespace rusca
