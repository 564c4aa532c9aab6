// swiglu.cpp: the SwiGLU gate of the Llama / Qwen MLP, out = silu(gate) * up, elementwise
// (silu(g) = g * sigmoid(g)). Backward:
//   dup   += dout * silu(g)
//   dgate += dout * up * silu'(g),   silu'(g) = sigmoid(g) * (1 + g * (1 - sigmoid(g)))
#include <cmath>

#include "host/cpu/ops.h"

namespace rusca::cpu {
namespace {
template <typename Real>
Real sigmoid(Real x) { return 1 / (1 + std::exp(-x)); }  // exp overflow gives 1/inf = 0: fine
}  // namespace

template <typename Real>
void swiglu_forward(Real* out, const Real* gate, const Real* up, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

template <typename Real>
void swiglu_backward(Real* dgate, Real* dup, const Real* dout, const Real* gate, const Real* up,
                     size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        const Real g = gate[i], s = sigmoid(g);
        dup[i] += dout[i] * g * s;
        dgate[i] += dout[i] * up[i] * s * (1 + g * (1 - s));
    }
}

template void swiglu_forward<float>(float*, const float*, const float*, size_t);
template void swiglu_forward<double>(double*, const double*, const double*, size_t);
template void swiglu_backward<float>(float*, float*, const float*, const float*, const float*, size_t);
template void swiglu_backward<double>(double*, double*, const double*, const double*, const double*,
                                      size_t);

}  // namespace rusca::cpu
