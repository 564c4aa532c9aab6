// infer.h: CPU inference with a KV cache: prefill, decode and prefix-shared scoring.
// A sequence's cache has two segments: an optional shared prefix (read-only, e.g. one prompt
// prefilled once for all G rollouts, or one response shared by all its judged criteria) and its
// own rows, appended as tokens are fed. Positions continue from the end of the prefix.
#pragma once
#include <vector>

#include "host/config.h"
#include "host/params.h"

namespace rusca {

struct KvCache {
    std::vector<std::vector<float>> k, v;  // per layer: [len, Hkv * D]
    int len = 0;
};

class CpuInference {
public:
    // `params` (fp32, ParamLayout order) must outlive this object.
    CpuInference(const ModelConfig& c, const float* params);
    const ModelConfig config;
    const ParamLayout layout;

    // Feeds tokens[0..n) after `prefix` (may be nullptr) and `own`'s rows, appending their keys and
    // values to `own`. Writes the final-norm hidden state of the last token to last_hidden [C] and
    // (if non-null) its logits to last_logits [V].
    void extend(const KvCache* prefix, KvCache& own, const int* tokens, int n, float* last_hidden,
                float* last_logits) const;
    // logits [V] of a hidden state from extend().
    void logits(const float* hidden, float* out) const;
    // A parameter tensor by its ParamLayout offset (e.g. layout.lm_head).
    const float* params_of(size_t offset) const { return P(offset); }

private:
    const float* P(size_t offset) const { return offset == kAbsent ? nullptr : params_ + offset; }
    const float* params_;
};

}  // namespace rusca
