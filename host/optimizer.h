// optimizer.h: AdamW with global gradient-norm clipping over the flat parameter array.
// Weight decay applies to matrices only (ParamInfo::decay), as Hugging Face's Trainer and TRL do.
#pragma once
#include <vector>

#include "params.h"

namespace rusca {

struct AdamWConfig {
    float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
    float weight_decay = 0.01f;
    float grad_clip = 1.0f;  // max global L2 norm; <= 0 disables clipping
};

class AdamW {
public:
    AdamW(const ParamLayout& layout, const AdamWConfig& cfg);
    // Clips `grads` in place (PyTorch clip_grad_norm_ semantics), then updates `params`.
    // Returns the gradient norm before clipping. A non-finite norm is returned with nothing updated
    // (not thrown: the loops log it as a skipped update, and let real errors stop the run).
    float step(float* params, float* grads, float lr);
    // Global L2 norm of the gradients, summed in double in a fixed order.
    float grad_norm(const float* grads) const;

    const ParamLayout& layout;
    AdamWConfig cfg;
    std::vector<float> m, v;  // first and second moments, one per parameter
    int t = 0;                // optimizer steps taken (bias correction)
};

}  // namespace rusca
