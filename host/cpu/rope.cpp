// rope.cpp: rotary position embedding in the Hugging Face "rotate_half" layout (Llama, Qwen):
// dimension i of a head is paired with i + D/2, and the pair is rotated by angle pos * inv_freq_i,
// inv_freq_i = theta^(-2i/D):
//   out[i]       = x[i] * cos - x[i + D/2] * sin
//   out[i + D/2] = x[i + D/2] * cos + x[i] * sin
// The backward applies the transposed rotation (angle negated). Angles and their cos/sin are
// computed in double once per row and shared by all heads of that row.
#include <cmath>
#include <vector>

#include "host/cpu/ops.h"

namespace rusca::cpu {
namespace {

// cs[0..D/2) = cos, cs[D/2..D) = sin of pos * theta^(-2i/D)
template <typename Real>
void rope_angles(Real* cs, int pos, int D, float theta) {
    const int half = D / 2;
    for (int i = 0; i < half; i++) {
        const double inv_freq = 1.0 / std::pow((double)theta, (2.0 * i) / D);
        const double angle = pos * inv_freq;
        cs[i] = (Real)std::cos(angle);
        cs[half + i] = (Real)std::sin(angle);
    }
}

// out = R(sign * angle) x for every head of one row; x, out: [H, D]. dir = +1 forward, -1 backward.
// accumulate: out += instead of out = (the backward adds into dx).
template <typename Real>
void rotate_row(Real* out, const Real* x, const Real* cs, int H, int D, Real dir, bool accumulate) {
    const int half = D / 2;
    for (int h = 0; h < H; h++) {
        const Real* xh = x + (size_t)h * D;
        Real* oh = out + (size_t)h * D;
        for (int i = 0; i < half; i++) {
            const Real c = cs[i], s = dir * cs[half + i];
            const Real a = xh[i], b = xh[half + i];
            const Real ra = a * c - b * s, rb = b * c + a * s;
            if (accumulate) {
                oh[i] += ra;
                oh[half + i] += rb;
            } else {
                oh[i] = ra;
                oh[half + i] = rb;
            }
        }
    }
}

template <typename Real>
void rope_apply(Real* out, const Real* x, const int* pos, int N, int H, int D, float theta, Real dir,
                bool accumulate) {
#pragma omp parallel
    {
        std::vector<Real> cs(D);  // per-thread cos/sin table
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            rope_angles(cs.data(), pos[n], D, theta);
            rotate_row(out + (size_t)n * H * D, x + (size_t)n * H * D, cs.data(), H, D, dir, accumulate);
        }
    }
}

}  // namespace

// x, out: [N, H, D]; pos: [N]
template <typename Real>
void rope_forward(Real* out, const Real* x, const int* pos, int N, int H, int D, float theta) {
    rope_apply(out, x, pos, N, H, D, theta, Real(1), false);
}

// dx += R(-angle) dout
template <typename Real>
void rope_backward(Real* dx, const Real* dout, const int* pos, int N, int H, int D, float theta) {
    rope_apply(dx, dout, pos, N, H, D, theta, Real(-1), true);
}

template void rope_forward<float>(float*, const float*, const int*, int, int, int, float);
template void rope_forward<double>(double*, const double*, const int*, int, int, int, float);
template void rope_backward<float>(float*, const float*, const int*, int, int, int, float);
template void rope_backward<double>(double*, const double*, const int*, int, int, int, float);

}  // namespace rusca::cpu
