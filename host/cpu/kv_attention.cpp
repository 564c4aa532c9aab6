// kv_attention.cpp: attention of new tokens over a two-segment KV cache (shared prefix + own rows).
// This is what decoding and prefix-shared judging need: the prompt's keys and values are computed
// once and read by every rollout (or every criterion) without being copied per sequence.
#include <cmath>
#include <vector>

#include "host/cpu/ops.h"

namespace rusca::cpu {

template <typename Real>
void kv_attention_forward(Real* out, const Real* q, const Real* pk, const Real* pv, int Lp, const Real* ok,
                          const Real* ov, int Lo, int n, int Hq, int Hkv, int D) {
    const int group = Hq / Hkv, KV = Hkv * D;
    const double scale = 1.0 / std::sqrt(double(D));
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++) {
        for (int h = 0; h < Hq; h++) {
            const int kvh = h / group, visible_own = Lo - n + i + 1;
            const Real* qi = q + (size_t(i) * Hq + h) * D;
            // key row j: prefix rows first, then own rows
            auto key = [&](int j) { return j < Lp ? pk + size_t(j) * KV + kvh * D : ok + size_t(j - Lp) * KV + kvh * D; };
            auto val = [&](int j) { return j < Lp ? pv + size_t(j) * KV + kvh * D : ov + size_t(j - Lp) * KV + kvh * D; };
            const int L = Lp + visible_own;
            std::vector<double> s(L);
            double mx = -INFINITY;
            for (int j = 0; j < L; j++) {
                const Real* kj = key(j);
                double dot = 0;
                for (int d = 0; d < D; d++) dot += double(qi[d]) * double(kj[d]);
                s[j] = dot * scale;
                mx = std::max(mx, s[j]);
            }
            double sum = 0;
            for (int j = 0; j < L; j++) sum += (s[j] = std::exp(s[j] - mx));
            Real* o = out + (size_t(i) * Hq + h) * D;
            for (int d = 0; d < D; d++) {
                double acc = 0;
                for (int j = 0; j < L; j++) acc += s[j] * double(val(j)[d]);
                o[d] = Real(acc / sum);
            }
        }
    }
}

template void kv_attention_forward<float>(float*, const float*, const float*, const float*, int, const float*,
                                          const float*, int, int, int, int, int);
template void kv_attention_forward<double>(double*, const double*, const double*, const double*, int,
                                           const double*, const double*, int, int, int, int, int);

}  // namespace rusca::cpu
