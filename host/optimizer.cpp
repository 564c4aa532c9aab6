// optimizer.cpp: AdamW over the parameter table, tensor by tensor (decay only where it belongs).
#include "optimizer.h"

#include <cmath>

#include "cpu/ops.h"
#include "error.h"

namespace rusca {

AdamW::AdamW(const ParamLayout& l, const AdamWConfig& c) : layout(l), cfg(c), m(l.total), v(l.total) {}

float AdamW::grad_norm(const float* grads) const {
    return float(std::sqrt(cpu::sum_squares(grads, layout.total)));
}

float AdamW::step(float* params, float* grads, float lr) {
    const float norm = grad_norm(grads);
    if (!std::isfinite(norm)) return norm;  // nothing updated: the caller logs a skipped step
    if (cfg.grad_clip > 0) {
        const float coef = cfg.grad_clip / (norm + 1e-6f);
        if (coef < 1.0f) cpu::scale(grads, layout.total, coef);
    }
    t++;
    for (const ParamInfo& p : layout.tensors)
        cpu::adamw_update(params + p.offset, grads + p.offset, m.data() + p.offset, v.data() + p.offset, p.numel, lr,
                          cfg.beta1, cfg.beta2, cfg.eps, p.decay ? cfg.weight_decay : 0.0f, t);
    return norm;
}

}  // namespace rusca
