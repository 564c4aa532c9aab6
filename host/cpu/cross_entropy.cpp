// cross_entropy.cpp: softmax cross-entropy of logits [N, V] against integer targets, the LM loss.
//   losses[n] = logsumexp(logits[n, :]) - logits[n, targets[n]]
//   dlogits[n, :] += dloss[n] * (softmax(logits[n, :]) - onehot(targets[n]))
// The softmax subtracts the row max first (stable); exponentials are taken in Real (fast expf for
// float) and summed in double, so the float version stays accurate over a 150k vocabulary. A target < 0 (padding, prompt tokens) is
// ignored: loss 0 and no gradient. Rows are independent, one thread per row.
#include <algorithm>
#include <cmath>

#include "host/cpu/ops.h"

namespace rusca::cpu {
namespace {
// The row max and sum_i exp(x[i] - max): softmax(x)_i = exp(x[i] - max) / sum.
template <typename Real>
void softmax_stats(const Real* x, int V, Real* maxv, double* sum) {
    Real m = x[0];
    for (int i = 1; i < V; i++) m = std::max(m, x[i]);
    double s = 0.0;
    for (int i = 0; i < V; i++) s += std::exp(x[i] - m);
    *maxv = m;
    *sum = s;
}
}  // namespace

template <typename Real>
void cross_entropy_forward(Real* losses, const Real* logits, const int* targets, int N, int V) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const Real* row = logits + (size_t)n * V;
        if (targets[n] < 0) {
            losses[n] = 0;
            continue;
        }
        Real maxv;
        double sum;
        softmax_stats(row, V, &maxv, &sum);
        losses[n] = (Real)((double)maxv + std::log(sum) - (double)row[targets[n]]);
    }
}

template <typename Real>
void cross_entropy_backward(Real* dlogits, const Real* logits, const int* targets, const Real* dloss,
                            int N, int V) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        const Real* row = logits + (size_t)n * V;
        Real* drow = dlogits + (size_t)n * V;
        Real maxv;
        double sum;
        softmax_stats(row, V, &maxv, &sum);
        const double g = dloss[n], g_over_sum = g / sum;
        for (int i = 0; i < V; i++) {
            const double grad = g_over_sum * std::exp(row[i] - maxv) - (i == targets[n] ? g : 0.0);
            drow[i] += (Real)grad;
        }
    }
}

template void cross_entropy_forward<float>(float*, const float*, const int*, int, int);
template void cross_entropy_forward<double>(double*, const double*, const int*, int, int);
template void cross_entropy_backward<float>(float*, const float*, const int*, const float*, int, int);
template void cross_entropy_backward<double>(double*, const double*, const int*, const double*, int,
                                             int);

}  // namespace rusca::cpu
