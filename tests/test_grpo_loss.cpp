// test_grpo_loss.cpp: the fused GRPO loss (host/cpu/grpo_loss.h).
// Golden values come from tools/make_grpo_golden.py (float64 PyTorch, the naive full-logits
// transcription of verl/TRL) for all 64 option combinations: loss, metrics and logp of every combo;
// d loss / d logp of every combo, from which the expected dhidden and dW are rebuilt here through the
// full logits (that chain itself is checked against autograd's dhidden / dW in the 4 combos that
// store them, and against finite differences). Then: chunk sizes and thread counts change no bit,
// backward accumulates, forward-only and no-reference calls, and bad input raises rusca::Error.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "host/cpu/grpo_loss.h"
#include "host/error.h"
#include "host/safetensors.h"

using namespace rusca;
using namespace rusca::cpu;

namespace {

using Vec = std::vector<double>;

// Our safetensors reader has no F64, so the golden stores float64 as I64 bit patterns.
Vec read_f64(const SafeTensorsFile& f, const std::string& name, size_t numel) {
    const TensorView& t = f.get(name);
    check(t.dtype == DType::I64 && t.numel() == numel, "golden tensor " + name + ": unexpected layout");
    Vec v(numel);
    std::memcpy(v.data(), t.data, numel * sizeof(double));
    return v;
}

// Inputs of one grpo_loss call; old/ref log-probs for two temperatures (index t).
struct Case {
    int N = 0, C = 0, V = 0, S = 0, max_len = 0;
    Vec hidden, W;  // float32 values (exact in double), so both precisions see the same inputs
    std::vector<int> tokens, seq;
    std::vector<float> adv, mask, old_logp[2], ref_logp[2];
};

// The golden case of tools/make_grpo_golden.py and its expected results.
struct Golden : Case {
    int K;
    Vec logp[2], combos;  // combos [K, 8]: agg, temperature index, temperature, beta, c, eps_low, eps_high, full

    explicit Golden(const std::string& path) : f_(path) {
        N = (int)f_.get("tokens").shape[0];
        C = (int)f_.get("hidden").shape[1];
        V = (int)f_.get("W").shape[0];
        int dims[3];
        f_.read_i32("dims", {3}, dims);
        S = dims[0], max_len = dims[1], K = dims[2];
        hidden.resize((size_t)N * C), W.resize((size_t)V * C);
        tokens.resize(N), seq.resize(N), adv.resize(N), mask.resize(N);
        f_.read<double>("hidden", {N, C}, hidden.data());
        f_.read<double>("W", {V, C}, W.data());
        f_.read_i32("tokens", {N}, tokens.data());
        f_.read_i32("seq", {N}, seq.data());
        f_.read<float>("adv", {N}, adv.data());
        f_.read<float>("mask", {N}, mask.data());
        for (int t = 0; t < 2; t++) {
            const std::string j = std::to_string(t);
            old_logp[t].resize(N), ref_logp[t].resize(N);
            f_.read<float>("old_logp.t" + j, {N}, old_logp[t].data());
            f_.read<float>("ref_logp.t" + j, {N}, ref_logp[t].data());
            logp[t] = read_f64(f_, "logp.t" + j, N);
        }
        combos = read_f64(f_, "combos", (size_t)K * 8);
    }
    const double* combo(int k) const { return combos.data() + (size_t)k * 8; }
    int temp_index(int k) const { return (int)combo(k)[1]; }
    bool full(int k) const { return combo(k)[7] != 0; }
    GrpoLossConfig config(int k) const {
        const double* c = combo(k);
        GrpoLossConfig cfg;
        cfg.agg = (GrpoAgg)(int)c[0];
        cfg.temperature = c[2], cfg.beta = c[3], cfg.dual_clip_c = c[4];
        cfg.eps_low = c[5], cfg.eps_high = c[6];
        cfg.vocab_chunk = 64, cfg.token_chunk = 8;  // several chunks of V = 300 and N = 37
        return cfg;
    }
    Vec get(int k, const char* what, size_t numel) const {
        char name[32];
        std::snprintf(name, sizeof name, "c%02d.%s", k, what);
        return read_f64(f_, name, numel);
    }

private:
    SafeTensorsFile f_;
};

const Golden& golden() {
    static const Golden g("tests/golden/grpo/golden.safetensors");
    return g;
}

// A random case big enough (N V C = 4.2M multiply-adds) for grpo_loss to use every thread.
Case big_case() {
    Case b;
    b.N = 160, b.C = 24, b.V = 1100, b.S = 10, b.max_len = 20;
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0, 1);
    std::uniform_real_distribution<float> u(-1, 1);
    for (int i = 0; i < b.N * b.C; i++) b.hidden.push_back(normal(rng));
    for (int i = 0; i < b.V * b.C; i++) b.W.push_back(0.4f * normal(rng));
    for (int n = 0; n < b.N; n++) {
        b.tokens.push_back((int)(rng() % b.V));
        b.seq.push_back(n / 16);
        b.mask.push_back(n % 16 < 13 ? 1.0f : 0.0f);
        b.adv.push_back(b.seq[n] % 2 ? -0.9f : 1.1f);
        for (int t = 0; t < 2; t++) {  // old/ref log-probs near a flat softmax's: ratios of e^(+-1.5)
            b.old_logp[t].push_back(-7.0f + 1.5f * u(rng));
            b.ref_logp[t].push_back(-7.0f + 1.5f * u(rng));
        }
    }
    return b;
}

template <typename Real>
struct Result {
    GrpoLossStats st;
    std::vector<Real> logp, dhidden, dW;
};

// One grpo_loss call on case c (old/ref of temperature index t), gradients starting from 0.
template <typename Real>
Result<Real> run(const Case& c, const GrpoLossConfig& cfg, int t, bool grads = true,
                 bool with_ref = true) {
    const std::vector<Real> h(c.hidden.begin(), c.hidden.end()), w(c.W.begin(), c.W.end());
    Result<Real> r;
    r.logp.assign(c.N, 0), r.dhidden.assign(h.size(), 0), r.dW.assign(w.size(), 0);
    r.st = grpo_loss<Real>(r.logp.data(), grads ? r.dhidden.data() : nullptr, grads ? r.dW.data() : nullptr,
                           h.data(), w.data(), c.tokens.data(), c.adv.data(), c.old_logp[t].data(),
                           with_ref ? c.ref_logp[t].data() : nullptr, c.mask.data(), c.seq.data(), c.N,
                           c.C, c.V, c.S, c.max_len, cfg);
    return r;
}

template <typename Real>
Result<Real> run(const GrpoLossConfig& cfg, int t) {
    return run<Real>(golden(), cfg, t);
}

// dhidden, dW of sum_n dlogp[n] logp[n], through the full [N, V] logits: the naive chain rule.
void naive_chain(const Vec& dlogp, double temperature, Vec& dh, Vec& dW) {
    const Golden& g = golden();
    dh.assign((size_t)g.N * g.C, 0.0), dW.assign((size_t)g.V * g.C, 0.0);
    Vec z(g.V);
    for (int n = 0; n < g.N; n++) {
        const double* x = &g.hidden[(size_t)n * g.C];
        for (int v = 0; v < g.V; v++) {
            double s = 0;
            for (int c = 0; c < g.C; c++) s += x[c] * g.W[(size_t)v * g.C + c];
            z[v] = s / temperature;
        }
        const double m = *std::max_element(z.begin(), z.end());
        double sum = 0;
        for (double zi : z) sum += std::exp(zi - m);
        for (int v = 0; v < g.V; v++) {
            const double d = dlogp[n] * ((v == g.tokens[n]) - std::exp(z[v] - m) / sum) / temperature;
            for (int c = 0; c < g.C; c++) {
                dh[(size_t)n * g.C + c] += d * g.W[(size_t)v * g.C + c];
                dW[(size_t)v * g.C + c] += d * x[c];
            }
        }
    }
}

double max_abs(const Vec& v) {
    double m = 0;
    for (double x : v) m = std::max(m, std::fabs(x));
    return m;
}

// |a - e| <= tol * max|e| elementwise: gradients have entries that cancel to ~0, so the scale is the
// array's, not the element's.
template <typename Real>
void expect_close(const std::vector<Real>& a, const Vec& e, double tol, const std::string& what) {
    ASSERT_EQ(a.size(), e.size()) << what;
    const double bound = tol * std::max(max_abs(e), 1e-30);
    int bad = 0;
    for (size_t i = 0; i < a.size() && bad < 5; i++)
        if (!(std::fabs((double)a[i] - e[i]) <= bound)) {
            ADD_FAILURE() << what << "[" << i << "] = " << a[i] << ", expected " << e[i];
            bad++;
        }
}

void expect_stats(const GrpoLossStats& st, const Vec& e, double tol, const std::string& what) {
    const double got[6] = {st.loss, st.clip_frac, st.dual_clip_frac, st.kl_mean, st.entropy_mean,
                           (double)st.tokens};
    const char* names[6] = {"loss", "clip_frac", "dual_clip_frac", "kl_mean", "entropy_mean", "tokens"};
    for (int i = 0; i < 6; i++)
        EXPECT_NEAR(got[i], e[i], tol * std::max(1.0, std::fabs(e[i]))) << what << " " << names[i];
}

std::string label(int k) {
    const GrpoLossConfig cfg = golden().config(k);
    char s[160];
    std::snprintf(s, sizeof s, "combo %d (%s T=%.1f beta=%.2f c=%.0f eps=%.2f/%.2f)", k,
                  grpo_agg_name(cfg.agg), cfg.temperature, cfg.beta, cfg.dual_clip_c, cfg.eps_low,
                  cfg.eps_high);
    return s;
}

// Every combo against the golden, in precision Real with tolerance tol.
template <typename Real>
void check_every_combo(double tol) {
    const Golden& g = golden();
    ASSERT_EQ(g.K, 64);
    for (int k = 0; k < g.K; k++) {
        const GrpoLossConfig cfg = g.config(k);
        const int t = g.temp_index(k);
        const Result<Real> r = run<Real>(cfg, t);
        const std::string what = label(k);
        expect_stats(r.st, g.get(k, "stats", 6), tol, what);
        expect_close(r.logp, g.logp[t], tol, what + " logp");
        Vec dh, dW;
        naive_chain(g.get(k, "dlogp", g.N), cfg.temperature, dh, dW);
        expect_close(r.dhidden, dh, tol, what + " dhidden");
        expect_close(r.dW, dW, tol, what + " dW");
        if (g.full(k)) {  // autograd's own gradients: checks the chain rule above too
            const Vec gdh = g.get(k, "dhidden", dh.size()), gdW = g.get(k, "dW", dW.size());
            expect_close(r.dhidden, gdh, tol, what + " dhidden (autograd)");
            expect_close(r.dW, gdW, tol, what + " dW (autograd)");
            if (std::is_same<Real, double>::value) {
                expect_close(dh, gdh, 1e-12, what + " naive chain dhidden");
                expect_close(dW, gdW, 1e-12, what + " naive chain dW");
            }
        }
    }
}

void with_threads(int n, const std::function<void()>& f) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(n);
    f();
    omp_set_num_threads(before);
}

template <typename Real>
void expect_same_bits(const Result<Real>& a, const Result<Real>& b, const char* what) {
    EXPECT_EQ(a.st.loss, b.st.loss) << what;
    EXPECT_EQ(a.st.clip_frac, b.st.clip_frac) << what;
    EXPECT_EQ(a.st.entropy_mean, b.st.entropy_mean) << what;
    EXPECT_EQ(a.st.kl_mean, b.st.kl_mean) << what;
    EXPECT_TRUE(a.logp == b.logp) << what << " logp";
    EXPECT_TRUE(a.dhidden == b.dhidden) << what << " dhidden";
    EXPECT_TRUE(a.dW == b.dW) << what << " dW";
}

// The combo with every term active: Dr. GRPO, T = 0.7, beta = 0.04, dual clip, eps 0.2/0.28.
int busy_combo() {
    const Golden& g = golden();
    for (int k = 0; k < g.K; k++) {
        const GrpoLossConfig c = g.config(k);
        if (c.agg == GrpoAgg::SeqMeanTokenSumNorm && c.temperature < 1 && c.beta > 0 &&
            c.dual_clip_c > 1 && c.eps_high > 0.25)
            return k;
    }
    return 0;
}

}  // namespace

TEST(GrpoLoss, GoldenEveryComboDouble) { check_every_combo<double>(1e-10); }

TEST(GrpoLoss, GoldenEveryComboFloat) { check_every_combo<float>(1e-4); }

// Central differences of the double loss in single elements of hidden and W (the golden's log-ratios
// sit >= 0.02 from every clip boundary, far beyond what h = 1e-6 moves them).
TEST(GrpoLoss, FiniteDifferences) {
    const Golden& g = golden();
    std::mt19937 rng(7);
    for (int k = 0; k < g.K; k++) {
        if (!g.full(k)) continue;  // 4 combos: all aggregations, both temperatures
        const GrpoLossConfig cfg = g.config(k);
        const int t = g.temp_index(k);
        const Result<double> r = run<double>(cfg, t);
        Case c = g;  // perturbed in place
        auto loss = [&] { return run<double>(c, cfg, t, /*grads=*/false).st.loss; };
        auto check_at = [&](Vec& x, size_t i, double analytic, const char* what) {
            const double x0 = x[i], h = 1e-6;
            x[i] = x0 + h;
            const double lp = loss();
            x[i] = x0 - h;
            const double lm = loss();
            x[i] = x0;
            EXPECT_NEAR((lp - lm) / (2 * h), analytic, 1e-7 * (1 + std::fabs(analytic)))
                << label(k) << " " << what << "[" << i << "]";
        };
        for (int s = 0; s < 24; s++) {
            const size_t i = rng() % c.hidden.size();
            check_at(c.hidden, i, r.dhidden[i], "hidden");
            // W rows of sampled tokens get the onehot term, other rows only the softmax term.
            const int row = s % 2 ? g.tokens[rng() % g.N] : (int)(rng() % g.V);
            const size_t j = (size_t)row * g.C + rng() % g.C;
            check_at(c.W, j, r.dW[j], "W");
        }
    }
}

TEST(GrpoLoss, ChunkSizesChangeNoBit) {
    const Golden& g = golden();
    const int k = busy_combo(), t = g.temp_index(k);
    GrpoLossConfig large = g.config(k), odd = large, one = large;
    large.vocab_chunk = 4096, large.token_chunk = 64;
    odd.vocab_chunk = 7, odd.token_chunk = 3;  // divide neither V = 300 nor N = 37
    one.vocab_chunk = 1, one.token_chunk = 1;
    expect_same_bits(run<double>(large, t), run<double>(odd, t), "double 7x3");
    expect_same_bits(run<double>(large, t), run<double>(one, t), "double 1x1");
    expect_same_bits(run<float>(large, t), run<float>(odd, t), "float 7x3");
    const Case b = big_case();  // the multi-threaded path
    expect_same_bits(run<float>(b, large, 0), run<float>(b, odd, 0), "big float 7x3");
}

TEST(GrpoLoss, SameBitsFor1And2Threads) {
    const Case b = big_case();
    GrpoLossConfig cfg;
    cfg.beta = 0.04, cfg.eps_high = 0.28, cfg.agg = GrpoAgg::SeqMeanTokenMean;
    cfg.vocab_chunk = 128, cfg.token_chunk = 16;
    Result<double> d1, d2;
    Result<float> f1, f2;
    with_threads(1, [&] { d1 = run<double>(b, cfg, 0), f1 = run<float>(b, cfg, 0); });
    with_threads(2, [&] { d2 = run<double>(b, cfg, 0), f2 = run<float>(b, cfg, 0); });
    EXPECT_GT(d1.st.clip_frac, 0.1);  // the case exercises the clips
    EXPECT_GT(d1.st.dual_clip_frac, 0);
    expect_same_bits(d1, d2, "double");
    expect_same_bits(f1, f2, "float");
}

TEST(GrpoLoss, BackwardAccumulates) {
    const Golden& g = golden();
    const int k = busy_combo(), t = g.temp_index(k);
    const GrpoLossConfig cfg = g.config(k);
    const Result<double> fresh = run<double>(cfg, t);
    std::mt19937 rng(3);
    std::uniform_real_distribution<double> u(-1, 1);
    std::vector<double> dh(fresh.dhidden.size()), dW(fresh.dW.size()), logp(g.N);
    for (double& x : dh) x = u(rng);
    for (double& x : dW) x = u(rng);
    Vec expect_dh(dh.begin(), dh.end()), expect_dW(dW.begin(), dW.end());
    for (size_t i = 0; i < dh.size(); i++) expect_dh[i] += fresh.dhidden[i];
    for (size_t i = 0; i < dW.size(); i++) expect_dW[i] += fresh.dW[i];
    grpo_loss<double>(logp.data(), dh.data(), dW.data(), g.hidden.data(), g.W.data(), g.tokens.data(),
                      g.adv.data(), g.old_logp[t].data(), g.ref_logp[t].data(), g.mask.data(),
                      g.seq.data(), g.N, g.C, g.V, g.S, g.max_len, cfg);
    expect_close(dh, expect_dh, 1e-14, "dhidden");
    expect_close(dW, expect_dW, 1e-14, "dW");
}

TEST(GrpoLoss, ForwardOnlyAndNoReference) {
    const Golden& g = golden();
    const int k = busy_combo(), t = g.temp_index(k);
    GrpoLossConfig cfg = g.config(k);
    const Result<double> full = run<double>(cfg, t);
    const Result<double> fwd = run<double>(g, cfg, t, /*grads=*/false);
    EXPECT_EQ(full.st.loss, fwd.st.loss);
    EXPECT_TRUE(full.logp == fwd.logp);
    // beta = 0: the reference is not needed; without it the KL metric is 0 and nothing else changes.
    cfg.beta = 0;
    const Result<double> ref = run<double>(cfg, t), noref = run<double>(g, cfg, t, true, /*with_ref=*/false);
    EXPECT_GT(ref.st.kl_mean, 0);
    EXPECT_EQ(noref.st.kl_mean, 0);
    EXPECT_EQ(ref.st.loss, noref.st.loss);
    EXPECT_TRUE(ref.dW == noref.dW);
}

// The loss splits into its policy-gradient and KL parts (the KL part is what beta adds), and
// ppo_kl is the masked mean of old_logp - logp, for every aggregation.
TEST(GrpoLoss, LossPartsAndPpoKl) {
    const Golden& g = golden();
    const int k = busy_combo(), t = g.temp_index(k);
    for (GrpoAgg agg : {GrpoAgg::TokenMean, GrpoAgg::SeqMeanTokenMean, GrpoAgg::SeqMeanTokenSum,
                        GrpoAgg::SeqMeanTokenSumNorm}) {
        GrpoLossConfig cfg = g.config(k);
        cfg.agg = agg, cfg.beta = 0.04;
        const Result<double> with_kl = run<double>(cfg, t);
        cfg.beta = 0;
        const Result<double> without = run<double>(cfg, t);
        EXPECT_NEAR(with_kl.st.pg_loss + with_kl.st.kl_loss, with_kl.st.loss, 1e-14) << grpo_agg_name(agg);
        EXPECT_NEAR(with_kl.st.pg_loss, without.st.loss, 1e-14) << grpo_agg_name(agg);
        EXPECT_NEAR(with_kl.st.kl_loss, with_kl.st.loss - without.st.loss, 1e-14) << grpo_agg_name(agg);
        EXPECT_GT(with_kl.st.kl_loss, 0) << grpo_agg_name(agg);
        EXPECT_EQ(without.st.kl_loss, 0) << grpo_agg_name(agg);
        double sum = 0, counted = 0;
        for (int n = 0; n < g.N; n++) sum += g.mask[n] * (g.old_logp[t][n] - with_kl.logp[n]), counted += g.mask[n];
        EXPECT_NEAR(with_kl.st.ppo_kl, sum / counted, 1e-12) << grpo_agg_name(agg);
        EXPECT_NE(with_kl.st.ppo_kl, 0) << "old and current log-probs agree: the check above could not fail";
    }
}

TEST(GrpoLoss, Logprobs) {
    const Golden& g = golden();
    for (int t = 0; t < 2; t++) {
        const double temperature = t == 0 ? 1.0 : 0.7;
        std::vector<int> tokens = g.tokens;
        std::vector<double> logp(g.N), entropy(g.N);
        tokens[3] = -1;  // no token: logp 0, no error
        grpo_logprobs<double>(logp.data(), entropy.data(), g.hidden.data(), g.W.data(), tokens.data(),
                              g.N, g.C, g.V, temperature, 64, 8);
        Vec expect = g.logp[t];
        expect[3] = 0;
        expect_close(logp, expect, 1e-12, "logp t" + std::to_string(t));
        EXPECT_EQ(entropy[3], 0);
        for (int n = 0; n < g.N; n++) {
            EXPECT_GT(entropy[n], n == 3 ? -1 : 0.5);
            EXPECT_LT(entropy[n], std::log((double)g.V) + 1e-12);
        }
    }
}

TEST(GrpoLoss, PaddingWithoutTokenAndEmptyMask) {
    const Golden& g = golden();
    const int k = busy_combo(), t = g.temp_index(k);
    const GrpoLossConfig cfg = g.config(k);
    // A masked position may carry no token (-1): its logp is 0 and the rest does not change.
    int pad = 0;
    while (g.mask[pad] != 0) pad++;
    Case c = g;
    c.tokens[pad] = -1;
    const Result<double> a = run<double>(cfg, t), b = run<double>(c, cfg, t);
    EXPECT_EQ(b.logp[pad], 0);
    EXPECT_EQ(a.st.loss, b.st.loss);
    EXPECT_TRUE(a.dW == b.dW);
    // Nothing counted: loss and metrics 0, no gradient, no NaN.
    std::vector<float> zeros(g.N, 0.0f);
    std::vector<double> logp(g.N), dh((size_t)g.N * g.C, 0.0), dW((size_t)g.V * g.C, 0.0);
    for (GrpoAgg agg : {GrpoAgg::TokenMean, GrpoAgg::SeqMeanTokenMean, GrpoAgg::SeqMeanTokenSum,
                        GrpoAgg::SeqMeanTokenSumNorm}) {
        GrpoLossConfig c = cfg;
        c.agg = agg;
        const GrpoLossStats st = grpo_loss<double>(
            logp.data(), dh.data(), dW.data(), g.hidden.data(), g.W.data(), g.tokens.data(), g.adv.data(),
            g.old_logp[t].data(), g.ref_logp[t].data(), zeros.data(), g.seq.data(), g.N, g.C, g.V, g.S,
            g.max_len, c);
        EXPECT_EQ(st.loss, 0) << grpo_agg_name(agg);
        EXPECT_EQ(st.tokens, 0);
        EXPECT_EQ(st.entropy_mean, 0);
    }
    EXPECT_EQ(max_abs(dh), 0);
    EXPECT_EQ(max_abs(dW), 0);
}

TEST(GrpoLoss, BadInputsRaise) {
    const Golden& g = golden();
    const int t = 0;
    GrpoLossConfig cfg = g.config(busy_combo());
    int counted = 0;
    while (g.mask[counted] == 0) counted++;
    std::vector<double> logp(g.N);
    auto call = [&](const std::vector<int>& tokens, const std::vector<int>& seq, const float* ref) {
        grpo_loss<double>(logp.data(), nullptr, nullptr, g.hidden.data(), g.W.data(), tokens.data(),
                          g.adv.data(), g.old_logp[t].data(), ref, g.mask.data(), seq.data(), g.N, g.C,
                          g.V, g.S, g.max_len, cfg);
    };
    auto expect_error = [&](const std::function<void()>& f, const std::string& needle) {
        try {
            f();
            ADD_FAILURE() << "no error, expected one mentioning \"" << needle << "\"";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    };
    const float* ref = g.ref_logp[t].data();
    std::vector<int> tokens = g.tokens, seq = g.seq;
    tokens[5] = g.V;
    expect_error([&] { call(tokens, seq, ref); }, "tokens[5] = 300");
    tokens = g.tokens;
    tokens[counted] = -1;
    expect_error([&] { call(tokens, seq, ref); }, "no token");
    tokens = g.tokens;
    seq[counted] = g.S;
    expect_error([&] { call(tokens, seq, ref); }, "seq = 6");
    seq = g.seq;
    expect_error([&] { call(tokens, seq, nullptr); }, "ref_logp");
    cfg.temperature = 0;
    expect_error([&] { call(tokens, seq, ref); }, "temperature");

    expect_error([] { parse_grpo_agg("seq-mean"); }, "\"seq-mean\"");
    for (GrpoAgg agg : {GrpoAgg::TokenMean, GrpoAgg::SeqMeanTokenMean, GrpoAgg::SeqMeanTokenSum,
                        GrpoAgg::SeqMeanTokenSumNorm})
        EXPECT_EQ(parse_grpo_agg(grpo_agg_name(agg)), agg);
}
