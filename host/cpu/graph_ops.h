// graph_ops.h: the CPU reference ops (host/cpu/ops.h) as the op table host/graph.h runs on, shared
// by training (cpu_model.cpp) and inference (infer.cpp); each mode adds where its keys and values
// live. The residual add is a separate loop before the norm (the CUDA table fuses the two).
#pragma once
#include <algorithm>
#include <vector>

#include "host/config.h"
#include "host/graph.h"
#include "host/params.h"
#include "ops.h"

namespace rusca::cpu {

template <typename Real>
class GraphOps {
public:
    using Act = Real;
    using Stat = Real;
    using Wt = Real;
    using Grad = Real;
    using Bufs = graph::LayerBufs<Real, Real>;

    GraphOps(const ModelConfig& c, const ParamLayout& layout, const Real* params, Real* grads, const int* tokens,
             const int* pos)
        : c_(c), layout_(layout), params_(params), grads_(grads), tokens_(tokens), pos_(pos) {}

    const ModelConfig& config() const { return c_; }
    const ParamLayout& layout() const { return layout_; }
    const Real* W(size_t offset) const { return offset == kAbsent ? nullptr : params_ + offset; }
    Real* G(size_t offset) const { return offset == kAbsent ? nullptr : grads_ + offset; }
    const int* tokens() const { return tokens_; }
    const int* pos() const { return pos_; }

    void embedding(Real* out, const int* tokens, const Real* wte, int N, int C) const {
        embedding_forward(out, tokens, wte, N, C);
    }
    void rmsnorm(Real* out, Real* rstd, const Real* x, const Real* w, int N, int C) const {
        rmsnorm_forward(out, rstd, x, w, N, C, c_.rms_norm_eps);
    }
    // res_out = res_in + delta; out = rmsnorm(res_out). res_out may be res_in (in place).
    void residual_rmsnorm(Real* res_out, Real* out, Real* rstd, const Real* res_in, const Real* delta, const Real* w,
                          int N, int C) const {
        const size_t n = size_t(N) * C;
        for (size_t i = 0; i < n; i++) res_out[i] = res_in[i] + delta[i];
        rmsnorm_forward(out, rstd, res_out, w, N, C, c_.rms_norm_eps);
    }
    void linear(Real* out, const Real* in, const Real* W, const Real* b, int N, int C, int OC) const {
        linear_forward(out, in, W, b, N, C, OC);
    }
    void rope(Real* out, const Real* x, int N, int H) const {
        rope_forward(out, x, pos_, N, H, c_.head_dim, c_.rope_theta);
    }
    void swiglu(Real* out, const Real* gate, const Real* up, size_t n) const { swiglu_forward(out, gate, up, n); }

    // training backward
    void zero(Real* p, size_t n) const { std::fill(p, p + n, Real(0)); }
    void embedding_backward(Real* dwte, const Real* dout, const int* tokens, int N, int C) const {
        cpu::embedding_backward(dwte, dout, tokens, N, C);
    }
    void rmsnorm_backward(Real* dx, Real* dw, const Real* dout, const Real* x, const Real* w, const Real* rstd, int N,
                          int C) const {
        cpu::rmsnorm_backward(dx, dw, dout, x, w, rstd, N, C);
    }
    void linear_backward(Real* dinp, Real* dW, Real* dbias, const Real* dout, const Real* inp, const Real* W, int N,
                         int C, int OC) const {
        cpu::linear_backward(dinp, dW, dbias, dout, inp, W, N, C, OC);
    }
    void rope_backward(Real* dx, const Real* dout, int N, int H) const {
        cpu::rope_backward(dx, dout, pos_, N, H, c_.head_dim, c_.rope_theta);
    }
    void swiglu_backward(Real* dgate, Real* dup, const Real* dout, const Real* gate, const Real* up, size_t n) const {
        cpu::swiglu_backward(dgate, dup, dout, gate, up, n);
    }

protected:
    const ModelConfig& c_;
    const ParamLayout& layout_;
    const Real* params_;
    Real* grads_;
    const int *tokens_, *pos_;
};

}  // namespace rusca::cpu
