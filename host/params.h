// params.h: where every weight lives. All parameters of a model sit in one flat allocation
// (llm.c style); a ParamLayout gives each tensor its Hugging Face name, shape and offset, so
// checkpoint I/O is a loop over the table and gradients / optimizer moments reuse the same offsets.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "config.h"

namespace rusca {

struct ParamInfo {
    std::string name;          // e.g. "model.layers.0.self_attn.q_proj.weight"
    std::vector<int64_t> shape;  // row-major, as in PyTorch
    size_t offset = 0;         // in elements from the start of the allocation
    size_t numel = 0;
    bool decay = false;        // AdamW weight decay applies to matrices only, not norms or biases
};

// Named offsets of one transformer layer, resolved once so the forward pass reads like the math.
struct LayerParams {
    size_t ln1, wq, bq, wk, bk, wv, bv, q_norm, k_norm, wo, ln2, w_gate, w_up, w_down;
};

struct ParamLayout {
    std::vector<ParamInfo> tensors;
    std::vector<LayerParams> layers;
    size_t embed = 0, final_norm = 0, lm_head = 0;  // lm_head == embed when tied
    size_t total = 0;

    explicit ParamLayout(const ModelConfig& c);
    const ParamInfo* find(const std::string& name) const;  // nullptr if absent
};

constexpr size_t kAbsent = size_t(-1);  // offset of a tensor this family does not have

}  // namespace rusca
