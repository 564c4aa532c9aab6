// test_cuda_grpo_loss.cpp: cuda::grpo_loss and cuda::grpo_logprobs against their CPU twin
// (host/cpu/grpo_loss.h), on random bf16-rounded inputs: every aggregation, KL off / KL metric only /
// KL in the loss, dual clip on and off, two temperatures, one chunk and ragged chunks, padding
// (mask 0, token -1 or a real token) and a sequence with no counted token.
// Reference: the twin in double on the bf16-rounded inputs. Naive bf16 computation: the twin in float
// for logp and the statistics; for the gradients, the float chain with the dlogits rounded to bf16
// (the kernel stores them in bf16 as its backward GEMMs' operand) and dhidden rounded to bf16.
// Rule: kernel error <= 2 x naive error + a small floor; no NaN in any output (logp is poisoned).
#include <gtest/gtest.h>

#include "gpu_test_util.h"
#include "host/error.h"

#ifdef RUSCA_CUDA
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "cuda/grpo_loss.cuh"
#include "host/cpu/grpo_loss.h"
#include "host/cpu/ops.h"

using namespace rusca;
using namespace rusca::gputest;
using bf16 = __nv_bfloat16;
using cpu::GrpoAgg;
using cpu::GrpoLossConfig;
using cpu::GrpoLossStats;

namespace {

void expect_scalar_rule(double got, double ref, double naive, double floor, const std::string& what) {
    ASSERT_TRUE(std::isfinite(got)) << what;
    EXPECT_LE(std::fabs(got - ref), 2 * std::fabs(naive - ref) + floor)
        << what << ": kernel " << got << ", reference " << ref << ", naive " << naive;
}

// One random problem. hidden, W, dh0 are bf16-rounded; old/ref log-probs sit within e^(+-1.5) and
// e^(+-1) of the true ones, so tokens fall inside and outside the clip range and some hit the dual clip.
struct Case {
    int N, C, V, S, max_len, chunk;
    double T;
    std::vector<float> hidden, W, adv, mask, old_logp, ref_logp, dh0, dW0;
    std::vector<int> tokens, seq;
};

Case make_case(int N, int C, int V, int S, double T, int chunk, uint32_t seed) {
    Case c;
    c.N = N, c.C = C, c.V = V, c.S = S, c.T = T, c.chunk = chunk;
    c.hidden = round_bf16(random_vector((size_t)N * C, seed));
    c.W = round_bf16(random_vector((size_t)V * C, seed + 1, 0.5f));
    c.dh0 = round_bf16(random_vector((size_t)N * C, seed + 2, 0.003f));
    c.dW0 = random_vector((size_t)V * C, seed + 3, 0.003f);
    std::mt19937 gen(seed + 4);
    std::uniform_real_distribution<float> u(-1, 1);
    // Sequences are contiguous runs of positions; the last ~20% of each is padding, and the last
    // sequence has no counted token at all (it must leave the seq-mean aggregations).
    std::vector<float> seq_adv(S);
    for (int s = 0; s < S; s++) seq_adv[s] = (s % 2 ? -1.0f : 1.0f) * (0.3f + std::fabs(u(gen)));
    c.max_len = 0;
    for (int n = 0; n < N; n++) {
        const int s = (int)((long)n * S / N), start = (int)(((long)s * N + S - 1) / S);
        const int end = (int)(((long)(s + 1) * N + S - 1) / S), len = end - start, pos = n - start;
        c.max_len = std::max(c.max_len, len);
        const bool pad = s == S - 1 || pos >= len - std::max(1, len / 5);
        c.seq.push_back(s);
        c.mask.push_back(pad ? 0.0f : 1.0f);
        c.tokens.push_back(pad && n % 2 ? -1 : (int)(gen() % V));
        c.adv.push_back(seq_adv[s]);
    }
    // The true log-probs (double twin), then old/ref around them.
    std::vector<double> h(c.hidden.begin(), c.hidden.end()), w(c.W.begin(), c.W.end()), lp(N);
    cpu::grpo_logprobs<double>(lp.data(), nullptr, h.data(), w.data(), c.tokens.data(), N, C, V, T, 256, 16);
    for (int n = 0; n < N; n++) {
        c.old_logp.push_back((float)lp[n] + 1.5f * u(gen));
        c.ref_logp.push_back((float)lp[n] + 1.0f * u(gen));
    }
    return c;
}

struct Result {
    GrpoLossStats st;
    std::vector<double> logp, dh, dW;
};

// The CPU twin in Real, gradients added to dh0 / dW0.
template <typename Real>
Result twin(const Case& c, const GrpoLossConfig& cfg, bool with_ref) {
    const std::vector<Real> h(c.hidden.begin(), c.hidden.end()), w(c.W.begin(), c.W.end());
    std::vector<Real> logp(c.N), dh(c.dh0.begin(), c.dh0.end()), dW(c.dW0.begin(), c.dW0.end());
    Result r;
    r.st = cpu::grpo_loss<Real>(logp.data(), dh.data(), dW.data(), h.data(), w.data(), c.tokens.data(), c.adv.data(),
                                c.old_logp.data(), with_ref ? c.ref_logp.data() : nullptr, c.mask.data(),
                                c.seq.data(), c.N, c.C, c.V, c.S, c.max_len, cfg);
    r.logp.assign(logp.begin(), logp.end());
    r.dh.assign(dh.begin(), dh.end());
    r.dW.assign(dW.begin(), dW.end());
    return r;
}

// g[n] = d loss / d logp[n] recovered from the reference's dhidden: the twin adds
// g[n] / T (W[token] - E_softmax[W]) to row n, so g[n] is that row's projection on the bracket.
std::vector<double> recover_g(const Case& c, const Result& ref) {
    std::vector<double> g(c.N, 0.0), z(c.V), u(c.C);
    for (int n = 0; n < c.N; n++) {
        if (c.mask[n] == 0 || c.tokens[n] < 0) continue;
        for (int v = 0; v < c.V; v++) {
            double s = 0;
            for (int k = 0; k < c.C; k++) s += (double)c.hidden[(size_t)n * c.C + k] * c.W[(size_t)v * c.C + k];
            z[v] = s / c.T;
        }
        const double m = *std::max_element(z.begin(), z.end());
        double sum = 0;
        for (double x : z) sum += std::exp(x - m);
        for (int k = 0; k < c.C; k++) u[k] = c.W[(size_t)c.tokens[n] * c.C + k];
        for (int v = 0; v < c.V; v++) {
            const double p = std::exp(z[v] - m) / sum;
            for (int k = 0; k < c.C; k++) u[k] -= p * c.W[(size_t)v * c.C + k];
        }
        double dot = 0, uu = 0;
        for (int k = 0; k < c.C; k++) {
            dot += (ref.dh[(size_t)n * c.C + k] - (double)c.dh0[(size_t)n * c.C + k]) * u[k];
            uu += u[k] * u[k];
        }
        g[n] = c.T * dot / uu;
    }
    return g;
}

// The naive bf16 backward: dlogits = g / T (onehot - softmax(z / T)) in float, rounded to bf16, then
// the float matmuls into dh0 / dW0, and dhidden rounded to bf16.
void naive_backward(const Case& c, const std::vector<double>& g, std::vector<float>& dh, std::vector<float>& dW) {
    std::vector<float> logits((size_t)c.N * c.V), dlogits((size_t)c.N * c.V, 0.0f), dloss(c.N);
    cpu::linear_forward<float>(logits.data(), c.hidden.data(), c.W.data(), nullptr, c.N, c.C, c.V);
    for (float& x : logits) x = (float)(x / c.T);
    for (int n = 0; n < c.N; n++) dloss[n] = (float)(-g[n] / c.T);  // (p - onehot) * (-g / T)
    cpu::cross_entropy_backward<float>(dlogits.data(), logits.data(), c.tokens.data(), dloss.data(), c.N, c.V);
    dlogits = round_bf16(dlogits);
    dh = c.dh0, dW = c.dW0;
    cpu::linear_backward<float>(dh.data(), dW.data(), nullptr, dlogits.data(), c.hidden.data(), c.W.data(), c.N, c.C,
                                c.V);
    dh = round_bf16(dh);
}

// The device copy of a case.
struct DeviceCase {
    cuda::DeviceBuffer<bf16> hidden, W;
    cuda::DeviceBuffer<int> tokens, seq;
    cuda::DeviceBuffer<float> adv, mask, old_logp, ref_logp;
    explicit DeviceCase(const Case& c)
        : hidden(to_device_bf16(c.hidden)), W(to_device_bf16(c.W)), tokens(c.tokens), seq(c.seq), adv(c.adv),
          mask(c.mask), old_logp(c.old_logp), ref_logp(c.ref_logp) {}
};

struct GpuResult {
    GrpoLossStats st;
    std::vector<float> logp, dh, dW;
};

GpuResult run_gpu(const Case& c, DeviceCase& d, const GrpoLossConfig& cfg, bool with_ref, bool grads) {
    cuda::DeviceBuffer<float> logp(c.N), dW(c.dW0);
    cuda::DeviceBuffer<bf16> dh(to_device_bf16(c.dh0));
    logp.poison();
    GpuResult r;
    r.st = cuda::grpo_loss(logp.data(), grads ? dh.data() : nullptr, grads ? dW.data() : nullptr, d.hidden.data(),
                           d.W.data(), d.tokens.data(), d.adv.data(), d.old_logp.data(),
                           with_ref ? d.ref_logp.data() : nullptr, d.mask.data(), d.seq.data(), c.N, c.C, c.V, c.S,
                           c.max_len, cfg, 0, c.chunk);
    r.logp = logp.download();
    r.dh = from_bf16(dh.download());
    r.dW = dW.download();
    return r;
}

std::string label(const Case& c, const GrpoLossConfig& cfg, bool with_ref) {
    char s[200];
    std::snprintf(s, sizeof s, "N=%d C=%d V=%d chunk=%d T=%.1f %s beta=%.2f%s c=%.0f", c.N, c.C, c.V, c.chunk,
                  c.T, cpu::grpo_agg_name(cfg.agg), cfg.beta, with_ref ? " (ref)" : " (no ref)", cfg.dual_clip_c);
    return s;
}

void check_case(const Case& c) {
    DeviceCase d(c);
    int combos = 0;
    for (GrpoAgg agg : {GrpoAgg::TokenMean, GrpoAgg::SeqMeanTokenMean, GrpoAgg::SeqMeanTokenSum,
                        GrpoAgg::SeqMeanTokenSumNorm}) {
        for (int kl = 0; kl < 3; kl++) {  // 0: no ref, beta 0; 1: ref, beta 0 (kl metric only); 2: ref, beta 0.04
            for (double dual_c : {3.0, 1.0}) {
                GrpoLossConfig cfg;
                cfg.agg = agg, cfg.temperature = c.T, cfg.dual_clip_c = dual_c;
                cfg.eps_low = 0.2, cfg.eps_high = 0.28;
                cfg.beta = kl == 2 ? 0.04 : 0.0;
                const bool with_ref = kl > 0;
                const std::string what = label(c, cfg, with_ref);

                const Result ref = twin<double>(c, cfg, with_ref);
                const Result naive = twin<float>(c, cfg, with_ref);
                const GpuResult gpu = run_gpu(c, d, cfg, with_ref, true);

                // Floors: logp's own, and what it implies for the statistics. The loss moves by
                // sum_n |d loss / d logp_n| |error of logp_n| (g = d loss / d logp, from the reference).
                const std::vector<double> g = recover_g(c, ref);
                double sensitivity = 0;
                for (double x : g) sensitivity += std::fabs(x);
                const double lp_floor = 1e-5 * (1 + max_abs(ref.logp));

                std::vector<float> naive_logp(naive.logp.begin(), naive.logp.end());
                expect_bf16_rule(gpu.logp, ref.logp, naive_logp, lp_floor, what + " logp");
                for (int n = 0; n < c.N; n++) {
                    if (c.tokens[n] < 0) {
                        EXPECT_EQ(gpu.logp[n], 0.0f) << what << " logp of padding " << n;
                    }
                }

                const GrpoLossStats &s = gpu.st, &e = ref.st, &f = naive.st;
                EXPECT_EQ(s.tokens, e.tokens) << what;
                expect_scalar_rule(s.loss, e.loss, f.loss, sensitivity * lp_floor + 1e-7, what + " loss");
                // |d k3 / d logp| = |1 - exp(ref - logp)| <= e - 1 here (|ref - logp| <= 1)
                expect_scalar_rule(s.kl_mean, e.kl_mean, f.kl_mean, 2 * lp_floor, what + " kl");
                // the loss's two parts, and mean(old - logp): d/d logp is at most 1 per token
                expect_scalar_rule(s.pg_loss, e.pg_loss, f.pg_loss, sensitivity * lp_floor + 1e-7, what + " pg_loss");
                expect_scalar_rule(s.kl_loss, e.kl_loss, f.kl_loss, sensitivity * lp_floor + 1e-7, what + " kl_loss");
                EXPECT_NEAR(s.pg_loss + s.kl_loss, s.loss, 1e-9 + 1e-9 * std::fabs(s.loss)) << what;
                if (cfg.beta == 0) EXPECT_EQ(s.kl_loss, 0.0) << what;
                expect_scalar_rule(s.ppo_kl, e.ppo_kl, f.ppo_kl, lp_floor, what + " ppo_kl");
                expect_scalar_rule(s.entropy_mean, e.entropy_mean, f.entropy_mean, lp_floor, what + " entropy");
                // A ratio within ~1e-6 of a clip boundary may land on either side: allow one token.
                const double one = 1.0 / std::max<long>(1, e.tokens) + 1e-12;
                expect_scalar_rule(s.clip_frac, e.clip_frac, f.clip_frac, one, what + " clip_frac");
                expect_scalar_rule(s.dual_clip_frac, e.dual_clip_frac, f.dual_clip_frac, one, what + " dual_clip_frac");

                std::vector<float> dh_naive, dW_naive;
                naive_backward(c, g, dh_naive, dW_naive);
                expect_bf16_rule(gpu.dh, ref.dh, dh_naive, 1e-6 * max_abs(ref.dh), what + " dhidden");
                expect_bf16_rule(gpu.dW, ref.dW, dW_naive, 1e-5 * max_abs(ref.dW), what + " dW");

                // Forward only: the same logp and statistics.
                if (combos++ % 5 == 0) {
                    const GpuResult fwd = run_gpu(c, d, cfg, with_ref, false);
                    EXPECT_TRUE(fwd.logp == gpu.logp) << what << ": forward-only logp differs";
                    EXPECT_EQ(fwd.st.loss, gpu.st.loss) << what;
                    EXPECT_EQ(fwd.st.entropy_mean, gpu.st.entropy_mean) << what;
                    EXPECT_TRUE(fwd.dh == from_bf16(to_device_bf16(c.dh0))) << what << ": dhidden written";
                }
            }
        }
    }
}

}  // namespace

TEST(CudaGrpoLoss, MatchesCpuTwinOneChunk) {
    SKIP_WITHOUT_GPU();
    check_case(make_case(37, 72, 1001, 5, 1.0, 0, 1));
}

TEST(CudaGrpoLoss, MatchesCpuTwinRaggedChunks) {
    SKIP_WITHOUT_GPU();
    check_case(make_case(130, 136, 2053, 9, 0.7, 48, 2));  // chunks 48, 48, 34
}

TEST(CudaGrpoLoss, LogprobsMatchCpuTwin) {
    SKIP_WITHOUT_GPU();
    for (int chunk : {0, 8}) {
        const Case c = make_case(37, 72, 1001, 5, 0.7, chunk, 3);
        const std::string what = "chunk=" + std::to_string(chunk);
        std::vector<double> h(c.hidden.begin(), c.hidden.end()), w(c.W.begin(), c.W.end());
        std::vector<double> lp_ref(c.N), ent_ref(c.N);
        cpu::grpo_logprobs<double>(lp_ref.data(), ent_ref.data(), h.data(), w.data(), c.tokens.data(), c.N, c.C, c.V,
                                   c.T, 4096, 32);
        std::vector<float> lp_naive(c.N), ent_naive(c.N);
        cpu::grpo_logprobs<float>(lp_naive.data(), ent_naive.data(), c.hidden.data(), c.W.data(), c.tokens.data(), c.N,
                                  c.C, c.V, c.T, 4096, 32);

        DeviceCase d(c);
        cuda::DeviceBuffer<float> logp(c.N), ent(c.N);
        logp.poison(), ent.poison();
        cuda::grpo_logprobs(logp.data(), ent.data(), d.hidden.data(), d.W.data(), d.tokens.data(), c.N, c.C, c.V, c.T,
                            4096, 32, 0, chunk);
        expect_bf16_rule(logp.download(), lp_ref, lp_naive, 1e-5 * (1 + max_abs(lp_ref)), what + " logp");
        expect_bf16_rule(ent.download(), ent_ref, ent_naive, 1e-5 * (1 + max_abs(ent_ref)), what + " entropy");
        // entropy may be skipped
        logp.poison();
        cuda::grpo_logprobs(logp.data(), nullptr, d.hidden.data(), d.W.data(), d.tokens.data(), c.N, c.C, c.V, c.T,
                            4096, 32, 0, chunk);
        expect_bf16_rule(logp.download(), lp_ref, lp_naive, 1e-5 * (1 + max_abs(lp_ref)), what + " logp alone");
    }
}

// Bad tokens and sequence indices are found on the host copies and raise rusca::Error.
TEST(CudaGrpoLoss, BadInputThrows) {
    SKIP_WITHOUT_GPU();
    Case c = make_case(37, 72, 1001, 5, 1.0, 0, 4);
    GrpoLossConfig cfg;
    auto expect_throw = [&](const Case& bad, const char* what) {
        DeviceCase d(bad);
        EXPECT_THROW(run_gpu(bad, d, cfg, true, true), Error) << what;
    };
    Case bad = c;
    bad.tokens[3] = c.V;  // outside the vocabulary
    expect_throw(bad, "token >= V");
    bad = c;
    bad.mask[0] = 1.0f, bad.tokens[0] = -1;  // a counted position without a token
    expect_throw(bad, "counted token -1");
    bad = c;
    bad.seq[1] = c.S;  // (position 1 is counted)
    ASSERT_NE(c.mask[1], 0.0f);
    expect_throw(bad, "seq out of range");
}

// Size, chunk and config checks that come before the GPU is touched: these run without one.
TEST(CudaGrpoLoss, BadSizesThrow) {
    GrpoLossConfig cfg;
    float f = 0;
    int t = 0;
    bf16* p = reinterpret_cast<bf16*>(&f);  // never dereferenced
    EXPECT_THROW(cuda::grpo_loss(&f, p, &f, p, p, &t, &f, &f, &f, &f, &t, -1, 8, 8, 1, 1, cfg), Error);
    EXPECT_THROW(cuda::grpo_loss(&f, p, &f, p, p, &t, &f, &f, &f, &f, &t, 4, 8, 0, 1, 1, cfg), Error);
    EXPECT_THROW(cuda::grpo_loss(&f, p, &f, p, p, &t, &f, &f, &f, &f, &t, 4, 8, 8, 1, 1, cfg, 0, 12), Error);
    cfg.temperature = 0;
    EXPECT_THROW(cuda::grpo_loss(&f, p, &f, p, p, &t, &f, &f, &f, &f, &t, 4, 8, 8, 1, 1, cfg), Error);
    EXPECT_THROW(cuda::grpo_logprobs(&f, nullptr, p, p, &t, 4, 8, 8, 0.0, 4096, 32), Error);
    EXPECT_THROW(cuda::grpo_logprobs(&f, nullptr, p, p, &t, 4, 8, 8, 1.0, 4096, 32, 0, 3), Error);
}
#endif
