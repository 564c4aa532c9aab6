// rmsnorm.cpp: RMSNorm as in Llama / Qwen (Hugging Face LlamaRMSNorm):
//   out = x * rsqrt(mean(x^2) + eps) * w        per row of C
// The mean of squares is accumulated in double so the float version matches PyTorch's fp32
// result closely for wide rows; rstd is saved for the backward.
// Backward, with r = rstd and g = dout * w (elementwise):
//   dx = r * g - x * r^3 * mean(g * x)          (the second term is the gradient through r)
//   dw += sum_n dout * x * r
#include <algorithm>
#include <cmath>

#include "host/cpu/ops.h"

namespace rusca::cpu {

// x, out: [N, C]; w: [C]; rstd: [N]
template <typename Real>
void rmsnorm_forward(Real* out, Real* rstd, const Real* x, const Real* w, int N, int C, float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const Real* xn = x + (size_t)n * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)xn[c] * xn[c];
        const Real r = (Real)(1.0 / std::sqrt(ss / C + (double)eps));
        Real* on = out + (size_t)n * C;
        for (int c = 0; c < C; c++) on[c] = xn[c] * r * w[c];
        rstd[n] = r;
    }
}

template <typename Real>
void rmsnorm_backward(Real* dx, Real* dw, const Real* dout, const Real* x, const Real* w,
                      const Real* rstd, int N, int C) {
    // dx: rows are independent, one thread per row.
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const Real* xn = x + (size_t)n * C;
        const Real* gn = dout + (size_t)n * C;
        const double r = rstd[n];
        double gx = 0.0;  // sum_c dout*w*x
        for (int c = 0; c < C; c++) gx += (double)gn[c] * w[c] * xn[c];
        const double k = r * r * r * gx / C;
        Real* dxn = dx + (size_t)n * C;
        for (int c = 0; c < C; c++) dxn[c] += (Real)(r * gn[c] * w[c] - k * xn[c]);
    }
    // dw: a sum over rows, so threads own column slices and add the rows in order.
    constexpr int CB = 64;
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += CB) {
        const int c1 = std::min(C, c0 + CB);
        Real acc[CB] = {};
        for (int n = 0; n < N; n++) {
            const Real* xn = x + (size_t)n * C;
            const Real* gn = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) acc[c - c0] += gn[c] * xn[c] * rstd[n];
        }
        for (int c = c0; c < c1; c++) dw[c] += acc[c - c0];
    }
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int, int, float);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, int, int, float);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*,
                                      const float*, int, int);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*, const double*,
                                       const double*, int, int);

}  // namespace rusca::cpu
