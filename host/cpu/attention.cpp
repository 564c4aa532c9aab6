// attention.cpp: causal grouped-query self-attention, softmax(q k^T / sqrt(D)) v, the CPU twin of
// the CUDA attention kernels. The T x T probabilities are kept in att for the backward, as llm.c
// does.
//   q, out [B, T, Hq, D]    k, v [B, T, Hkv, D]    att [B, Hq, T, T]
// Query head h reads kv head h / (Hq / Hkv) (GQA; Hq == Hkv is plain multi-head attention).
//
// Loop order: one work item is one head of one sequence, which first copies the keys (forward) or
// values (backward) of its kv head transposed, [D, T], so that a row of scores is built by
// contiguous multiply-adds over key positions (vectorized, no horizontal sums).
//
// Backward, per query row t of head h (P = att row, dO = dout row):
//   dP[t2]  = dO . v[t2]
//   dS[t2]  = P[t2] * (dP[t2] - sum_t2' P[t2'] dP[t2'])          (softmax backward)
//   dq[t]  += scale * sum_t2 dS[t2] k[t2]
//   dk[t2] += scale * dS[t2] q[t]        dv[t2] += P[t2] dO
// dk and dv collect terms from every query head that shares the kv head, so a backward work item
// is one kv head of one sequence: it owns those dk, dv rows (no races) and walks its query heads
// and rows in a fixed order (deterministic for any number of threads).
#include <algorithm>
#include <cmath>
#include <vector>

#include "host/cpu/ops.h"

namespace rusca::cpu {
namespace {

// xT[d, t] = x[b, t, hk, d] for one sequence b and kv head hk; x is [B, T, Hkv, D].
template <typename Real>
void transpose_head(Real* xT, const Real* x, int b, int hk, int T, int Hkv, int D) {
    for (int t = 0; t < T; t++) {
        const Real* row = x + (((size_t)b * T + t) * Hkv + hk) * D;
        for (int d = 0; d < D; d++) xT[(size_t)d * T + t] = row[d];
    }
}

// y[0..n) = sum_d a[d] * xT[d, 0..n): a row of dot products against n transposed vectors.
template <typename Real>
void dots_transposed(Real* y, const Real* a, const Real* xT, int n, int T, int D) {
    std::fill(y, y + n, Real(0));
    for (int d = 0; d < D; d++) {
        const Real ad = a[d];
        const Real* xd = xT + (size_t)d * T;
#pragma omp simd
        for (int i = 0; i < n; i++) y[i] += ad * xd[i];
    }
}

}  // namespace

template <typename Real>
void attention_forward(Real* out, Real* att, const Real* q, const Real* k, const Real* v, int B, int T,
                       int Hq, int Hkv, int D) {
    const int group = Hq / Hkv;
    const Real scale = (Real)(1.0 / std::sqrt((double)D));
#pragma omp parallel
    {
        std::vector<Real> kT((size_t)D * T), acc(D);  // per-thread scratch
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < Hq; h++) {
                const int hk = h / group;
                transpose_head(kT.data(), k, b, hk, T, Hkv, D);
                for (int t = 0; t < T; t++) {
                    const Real* qt = q + (((size_t)b * T + t) * Hq + h) * D;
                    Real* p = att + (((size_t)b * Hq + h) * T + t) * T;
                    // scores for keys 0..t, then a stable softmax (subtract the max)
                    dots_transposed(p, qt, kT.data(), t + 1, T, D);
                    Real maxv = -INFINITY;
                    for (int t2 = 0; t2 <= t; t2++) {
                        p[t2] *= scale;
                        maxv = std::max(maxv, p[t2]);
                    }
                    Real sum = 0;
                    for (int t2 = 0; t2 <= t; t2++) {
                        p[t2] = std::exp(p[t2] - maxv);
                        sum += p[t2];
                    }
                    const Real inv = 1 / sum;
                    for (int t2 = 0; t2 <= t; t2++) p[t2] *= inv;
                    std::fill(p + t + 1, p + T, Real(0));  // masked (future) positions
                    // out = sum_t2 p[t2] v[t2]
                    std::fill(acc.begin(), acc.end(), Real(0));
                    for (int t2 = 0; t2 <= t; t2++) {
                        const Real* vt = v + (((size_t)b * T + t2) * Hkv + hk) * D;
                        const Real pt = p[t2];
#pragma omp simd
                        for (int d = 0; d < D; d++) acc[d] += pt * vt[d];
                    }
                    std::copy(acc.begin(), acc.end(), out + (((size_t)b * T + t) * Hq + h) * D);
                }
            }
        }
    }
}

template <typename Real>
void attention_backward(Real* dq, Real* dk, Real* dv, const Real* dout, const Real* q, const Real* k,
                        const Real* v, const Real* att, int B, int T, int Hq, int Hkv, int D) {
    const int group = Hq / Hkv;
    const Real scale = (Real)(1.0 / std::sqrt((double)D));
#pragma omp parallel
    {
        // per-thread scratch: v transposed, one row of dP / dS, dq of one row, dk and dv of a kv head
        std::vector<Real> vT((size_t)D * T), dS(T), dq_acc(D), dk_acc((size_t)T * D), dv_acc((size_t)T * D);
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int hk = 0; hk < Hkv; hk++) {
                transpose_head(vT.data(), v, b, hk, T, Hkv, D);
                std::fill(dk_acc.begin(), dk_acc.end(), Real(0));
                std::fill(dv_acc.begin(), dv_acc.end(), Real(0));
                for (int h = hk * group; h < (hk + 1) * group; h++) {
                    for (int t = 0; t < T; t++) {
                        const Real* p = att + (((size_t)b * Hq + h) * T + t) * T;
                        const Real* dot = dout + (((size_t)b * T + t) * Hq + h) * D;
                        const Real* qt = q + (((size_t)b * T + t) * Hq + h) * D;
                        dots_transposed(dS.data(), dot, vT.data(), t + 1, T, D);  // dP
                        Real rd = 0;  // sum_t2 P dP
                        for (int t2 = 0; t2 <= t; t2++) rd += p[t2] * dS[t2];
                        for (int t2 = 0; t2 <= t; t2++) dS[t2] = p[t2] * (dS[t2] - rd) * scale;
                        std::fill(dq_acc.begin(), dq_acc.end(), Real(0));
                        for (int t2 = 0; t2 <= t; t2++) {
                            const Real* kt = k + (((size_t)b * T + t2) * Hkv + hk) * D;
                            const Real ds = dS[t2], pt = p[t2];
                            Real* dkt = dk_acc.data() + (size_t)t2 * D;
                            Real* dvt = dv_acc.data() + (size_t)t2 * D;
#pragma omp simd
                            for (int d = 0; d < D; d++) {
                                dq_acc[d] += ds * kt[d];
                                dkt[d] += ds * qt[d];
                                dvt[d] += pt * dot[d];
                            }
                        }
                        Real* dqt = dq + (((size_t)b * T + t) * Hq + h) * D;
                        for (int d = 0; d < D; d++) dqt[d] += dq_acc[d];
                    }
                }
                for (int t2 = 0; t2 < T; t2++) {
                    Real* dkt = dk + (((size_t)b * T + t2) * Hkv + hk) * D;
                    Real* dvt = dv + (((size_t)b * T + t2) * Hkv + hk) * D;
                    for (int d = 0; d < D; d++) {
                        dkt[d] += dk_acc[(size_t)t2 * D + d];
                        dvt[d] += dv_acc[(size_t)t2 * D + d];
                    }
                }
            }
        }
    }
}

template void attention_forward<float>(float*, float*, const float*, const float*, const float*, int,
                                       int, int, int, int);
template void attention_forward<double>(double*, double*, const double*, const double*, const double*,
                                        int, int, int, int, int);
template void attention_backward<float>(float*, float*, float*, const float*, const float*,
                                        const float*, const float*, const float*, int, int, int, int, int);
template void attention_backward<double>(double*, double*, double*, const double*, const double*,
                                         const double*, const double*, const double*, int, int, int,
                                         int, int);

}  // namespace rusca::cpu
