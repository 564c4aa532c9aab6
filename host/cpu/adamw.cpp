// adamw.cpp: the optimizer step and the two helpers gradient clipping needs.
// adamw_update follows torch.optim.AdamW (decoupled weight decay, bias-corrected moments), in the
// same operation order as PyTorch's single-tensor implementation:
//   p *= 1 - lr * wd
//   m  = m + (1 - b1) * (g - m)                   (m.lerp_(g, 1 - b1))
//   v  = b2 * v + (1 - b2) * g^2
//   p -= (lr / (1 - b1^step)) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)
// The scalar coefficients are computed once in double. Elementwise, so any split over threads
// gives the same bits.
#include <algorithm>
#include <cmath>
#include <vector>

#include "host/cpu/ops.h"

namespace rusca::cpu {

template <typename Real>
void adamw_update(Real* params, const Real* grads, Real* m, Real* v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int step) {
    const Real decay = (Real)(1.0 - (double)lr * weight_decay);
    const Real one_minus_b1 = (Real)(1.0 - beta1), one_minus_b2 = (Real)(1.0 - beta2);
    const Real b2 = beta2;
    const Real step_size = (Real)(lr / (1.0 - std::pow((double)beta1, step)));
    const Real bc2_sqrt = (Real)std::sqrt(1.0 - std::pow((double)beta2, step));
    const Real e = eps;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        const Real g = grads[i];
        m[i] += one_minus_b1 * (g - m[i]);
        v[i] = b2 * v[i] + one_minus_b2 * g * g;
        params[i] = params[i] * decay - step_size * (m[i] / (std::sqrt(v[i]) / bc2_sqrt + e));
    }
}

// Fixed-size chunks (not one chunk per thread) summed into per-chunk partials, then the partials
// added in chunk order: the result does not depend on the number of threads.
template <typename Real>
double sum_squares(const Real* g, size_t n) {
    constexpr size_t CHUNK = 1 << 16;
    const size_t nchunks = (n + CHUNK - 1) / CHUNK;
    std::vector<double> partial(nchunks);
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nchunks; c++) {
        const size_t begin = c * CHUNK, end = std::min(n, begin + CHUNK);
        double acc[8] = {};  // 8 independent sums so the loop vectorizes; combined in order
        size_t i = begin;
        for (; i + 8 <= end; i += 8)
            for (int l = 0; l < 8; l++) acc[l] += (double)g[i + l] * g[i + l];
        for (; i < end; i++) acc[0] += (double)g[i] * g[i];
        double s = 0.0;
        for (int l = 0; l < 8; l++) s += acc[l];
        partial[c] = s;
    }
    double total = 0.0;
    for (size_t c = 0; c < nchunks; c++) total += partial[c];
    return total;
}

template <typename Real>
void scale(Real* g, size_t n, float s) {
    const Real f = s;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) g[i] *= f;
}

template void adamw_update<float>(float*, const float*, float*, float*, size_t, float, float, float,
                                  float, float, int);
template void adamw_update<double>(double*, const double*, double*, double*, size_t, float, float,
                                   float, float, float, int);
template double sum_squares<float>(const float*, size_t);
template double sum_squares<double>(const double*, size_t);
template void scale<float>(float*, size_t, float);
template void scale<double>(double*, size_t, float);

}  // namespace rusca::cpu
