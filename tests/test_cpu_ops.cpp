// test_cpu_ops.cpp: the CPU reference ops (host/cpu/ops.h).
// Every backward is checked against central finite differences of L = sum(out * R) in double
// precision (random inputs and R, fixed seed), on small ragged sizes (C=7, N=5, T=5, D=6, GQA).
// Forwards are checked against the formulas written out naively; then float vs double agreement,
// that backwards accumulate (+=), and that results are bit-identical for 1 and 2 OpenMP threads.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "host/cpu/ops.h"

using namespace rusca::cpu;

namespace {

using Vec = std::vector<double>;
using VecF = std::vector<float>;

Vec random_vec(size_t n, std::mt19937& rng, double lo = -1.0, double hi = 1.0) {
    std::uniform_real_distribution<double> u(lo, hi);
    Vec v(n);
    for (double& x : v) x = u(rng);
    return v;
}

VecF to_float(const Vec& v) { return VecF(v.begin(), v.end()); }

double dot(const Vec& a, const Vec& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
    return s;
}

// Runs f with the given number of OpenMP threads, then restores the previous setting.
void with_threads(int n, const std::function<void()>& f) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(n);
    f();
    omp_set_num_threads(before);
}

// dL/dx by central differences: x is perturbed in place and restored; loss() reruns the forward.
// Single-threaded: thousands of tiny forwards, where waking a second thread costs more than the work
// (and much more on a busy machine).
Vec numeric_grad(Vec& x, const std::function<double()>& loss, double h = 1e-6) {
    Vec g(x.size());
    const int before = omp_get_max_threads();
    omp_set_num_threads(1);
    for (size_t i = 0; i < x.size(); i++) {
        const double x0 = x[i];
        x[i] = x0 + h;
        const double lp = loss();
        x[i] = x0 - h;
        const double lm = loss();
        x[i] = x0;
        g[i] = (lp - lm) / (2 * h);
    }
    omp_set_num_threads(before);
    return g;
}

// |a - b| <= tol * (1 + |b|) elementwise.
template <typename A, typename B>
void expect_close(const A& a, const B& b, double tol, const char* what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    for (size_t i = 0; i < a.size(); i++) {
        EXPECT_NEAR(a[i], b[i], tol * (1 + std::fabs((double)b[i]))) << what << " [" << i << "]";
    }
}

void check_grad(Vec& x, const Vec& analytic, const std::function<double()>& loss, const char* what) {
    expect_close(analytic, numeric_grad(x, loss), 1e-6, what);
}

// out[N, OC] = inp @ W^T + b, written out.
Vec naive_linear(const Vec& inp, const Vec& W, const double* bias, int N, int C, int OC) {
    Vec out((size_t)N * OC);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int c = 0; c < C; c++) s += inp[(size_t)n * C + c] * W[(size_t)o * C + c];
            out[(size_t)n * OC + o] = s;
        }
    return out;
}

// ------------------------------------------------------------------------------------------------
// embedding

TEST(CpuOps, EmbeddingForwardAndGrad) {
    std::mt19937 rng(1);
    const int N = 5, C = 7, V = 4;
    const std::vector<int> tokens = {1, 3, 1, 0, 1};  // repeats: the backward must add them up
    Vec wte = random_vec((size_t)V * C, rng), R = random_vec((size_t)N * C, rng), out((size_t)N * C);
    embedding_forward(out.data(), tokens.data(), wte.data(), N, C);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) EXPECT_EQ(out[(size_t)n * C + c], wte[(size_t)tokens[n] * C + c]);

    Vec dwte(wte.size(), 0.0);
    embedding_backward(dwte.data(), R.data(), tokens.data(), N, C);
    check_grad(wte, dwte, [&] {
        embedding_forward(out.data(), tokens.data(), wte.data(), N, C);
        return dot(out, R);
    }, "dwte");
}

// ------------------------------------------------------------------------------------------------
// rmsnorm

TEST(CpuOps, RmsnormForwardByHand) {
    const int N = 2, C = 3;
    const Vec x = {1, 2, 2, -3, 0, 4}, w = {1, 0.5, 2};
    const float eps = 1e-5f;
    Vec out(N * C), rstd(N);
    rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, eps);
    const double r0 = 1 / std::sqrt(9.0 / 3 + (double)eps), r1 = 1 / std::sqrt(25.0 / 3 + (double)eps);
    EXPECT_NEAR(rstd[0], r0, 1e-15);
    EXPECT_NEAR(rstd[1], r1, 1e-15);
    const Vec want = {1 * r0 * 1, 2 * r0 * 0.5, 2 * r0 * 2, -3 * r1 * 1, 0, 4 * r1 * 2};
    expect_close(out, want, 1e-14, "out");
}

TEST(CpuOps, RmsnormGrad) {
    std::mt19937 rng(2);
    const int N = 5, C = 7;
    Vec x = random_vec(N * C, rng), w = random_vec(C, rng, 0.5, 1.5), R = random_vec(N * C, rng);
    Vec out(N * C), rstd(N);
    auto loss = [&] {
        rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5f);
        return dot(out, R);
    };
    loss();
    Vec dx(N * C, 0.0), dw(C, 0.0);
    rmsnorm_backward(dx.data(), dw.data(), R.data(), x.data(), w.data(), rstd.data(), N, C);
    check_grad(x, dx, loss, "dx");
    check_grad(w, dw, loss, "dw");
}

// ------------------------------------------------------------------------------------------------
// linear

// Sizes: tiny ragged; then ones that cover full register tiles, vector and scalar column tails.
struct LinearShape { int N, C, OC; };

class CpuLinear : public testing::TestWithParam<LinearShape> {};

TEST_P(CpuLinear, ForwardAndGrad) {
    const int N = GetParam().N, C = GetParam().C, OC = GetParam().OC;
    std::mt19937 rng(3);
    Vec inp = random_vec((size_t)N * C, rng), W = random_vec((size_t)OC * C, rng);
    Vec b = random_vec(OC, rng), R = random_vec((size_t)N * OC, rng), out((size_t)N * OC);
    for (bool with_bias : {false, true}) {
        const double* bias = with_bias ? b.data() : nullptr;
        linear_forward(out.data(), inp.data(), W.data(), bias, N, C, OC);
        expect_close(out, naive_linear(inp, W, bias, N, C, OC), 1e-13, "out");

        Vec dinp(inp.size(), 0.0), dW(W.size(), 0.0), db(OC, 0.0);
        linear_backward(dinp.data(), dW.data(), with_bias ? db.data() : nullptr, R.data(), inp.data(),
                        W.data(), N, C, OC);
        auto loss = [&] {
            linear_forward(out.data(), inp.data(), W.data(), bias, N, C, OC);
            return dot(out, R);
        };
        check_grad(inp, dinp, loss, "dinp");
        check_grad(W, dW, loss, "dW");
        if (with_bias) check_grad(b, db, loss, "dbias");
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuLinear,
                         testing::Values(LinearShape{5, 7, 6}, LinearShape{1, 1, 1},
                                         LinearShape{9, 29, 13}, LinearShape{8, 24, 12}));

// Bigger float case: several L2 panels along K in both backward products, compared to a double
// reference computed naively.
TEST(CpuOps, LinearFloatMatchesDoubleReference) {
    std::mt19937 rng(4);
    const int N = 300, C = 1100, OC = 70;
    Vec inp = random_vec((size_t)N * C, rng), W = random_vec((size_t)OC * C, rng), b = random_vec(OC, rng);
    Vec dout = random_vec((size_t)N * OC, rng);
    VecF inpf = to_float(inp), Wf = to_float(W), bf = to_float(b), doutf = to_float(dout);
    VecF outf((size_t)N * OC), dinpf(inp.size(), 0.f), dWf(W.size(), 0.f), dbf(OC, 0.f);
    linear_forward(outf.data(), inpf.data(), Wf.data(), bf.data(), N, C, OC);
    linear_backward(dinpf.data(), dWf.data(), dbf.data(), doutf.data(), inpf.data(), Wf.data(), N, C, OC);
    // References from the float-rounded inputs, so only accumulation error remains.
    Vec inpr(inpf.begin(), inpf.end()), Wr(Wf.begin(), Wf.end()), br(bf.begin(), bf.end());
    Vec doutr(doutf.begin(), doutf.end());
    expect_close(outf, naive_linear(inpr, Wr, br.data(), N, C, OC), 1e-5, "out");
    Vec dinp((size_t)N * C, 0.0), dW((size_t)OC * C, 0.0), db(OC, 0.0);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            const double g = doutr[(size_t)n * OC + o];
            db[o] += g;
            for (int c = 0; c < C; c++) {
                dinp[(size_t)n * C + c] += g * Wr[(size_t)o * C + c];
                dW[(size_t)o * C + c] += g * inpr[(size_t)n * C + c];
            }
        }
    expect_close(dinpf, dinp, 1e-5, "dinp");
    expect_close(dWf, dW, 1e-5, "dW");
    expect_close(dbf, db, 1e-5, "dbias");
}

// ------------------------------------------------------------------------------------------------
// rope

TEST(CpuOps, RopeForwardByHand) {
    std::mt19937 rng(5);
    const int N = 3, H = 2, D = 6;
    const float theta = 10000.f;
    const std::vector<int> pos = {0, 3, 17};
    Vec x = random_vec((size_t)N * H * D, rng), out(x.size());
    rope_forward(out.data(), x.data(), pos.data(), N, H, D, theta);
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < D / 2; i++) {
                const double a = pos[n] * std::pow(10000.0, -2.0 * i / D);
                const double* xh = &x[((size_t)n * H + h) * D];
                const double* oh = &out[((size_t)n * H + h) * D];
                EXPECT_NEAR(oh[i], xh[i] * std::cos(a) - xh[i + D / 2] * std::sin(a), 1e-14);
                EXPECT_NEAR(oh[i + D / 2], xh[i + D / 2] * std::cos(a) + xh[i] * std::sin(a), 1e-14);
            }
    // position 0 is the identity
    for (int j = 0; j < H * D; j++) EXPECT_EQ(out[j], x[j]);
}

TEST(CpuOps, RopeGrad) {
    std::mt19937 rng(6);
    const int N = 5, H = 3, D = 6;
    const std::vector<int> pos = {0, 1, 4, 2, 9};
    Vec x = random_vec((size_t)N * H * D, rng), R = random_vec(x.size(), rng), out(x.size());
    Vec dx(x.size(), 0.0);
    rope_backward(dx.data(), R.data(), pos.data(), N, H, D, 100.f);
    check_grad(x, dx, [&] {
        rope_forward(out.data(), x.data(), pos.data(), N, H, D, 100.f);
        return dot(out, R);
    }, "dx");
}

// ------------------------------------------------------------------------------------------------
// attention

struct AttnShape { int B, T, Hq, Hkv, D; };

// Causal GQA attention with the softmax written out, in double.
Vec naive_attention(const Vec& q, const Vec& k, const Vec& v, const AttnShape& s) {
    const auto [B, T, Hq, Hkv, D] = s;
    Vec out((size_t)B * T * Hq * D, 0.0);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < Hq; h++) {
            const int hk = h / (Hq / Hkv);
            for (int t = 0; t < T; t++) {
                std::vector<double> w(t + 1);
                double sum = 0;
                for (int t2 = 0; t2 <= t; t2++) {
                    double sc = 0;
                    for (int d = 0; d < D; d++)
                        sc += q[(((size_t)b * T + t) * Hq + h) * D + d] * k[(((size_t)b * T + t2) * Hkv + hk) * D + d];
                    w[t2] = std::exp(sc / std::sqrt((double)D));
                    sum += w[t2];
                }
                for (int t2 = 0; t2 <= t; t2++)
                    for (int d = 0; d < D; d++)
                        out[(((size_t)b * T + t) * Hq + h) * D + d] +=
                            w[t2] / sum * v[(((size_t)b * T + t2) * Hkv + hk) * D + d];
            }
        }
    return out;
}

class CpuAttention : public testing::TestWithParam<AttnShape> {};

TEST_P(CpuAttention, ForwardAndGrad) {
    const AttnShape s = GetParam();
    const int B = s.B, T = s.T, Hq = s.Hq, Hkv = s.Hkv, D = s.D;
    std::mt19937 rng(7);
    Vec q = random_vec((size_t)B * T * Hq * D, rng), k = random_vec((size_t)B * T * Hkv * D, rng);
    Vec v = random_vec(k.size(), rng), R = random_vec(q.size(), rng);
    Vec out(q.size()), att((size_t)B * Hq * T * T, -1.0);  // -1: the masked half must be written
    attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), B, T, Hq, Hkv, D);
    expect_close(out, naive_attention(q, k, v, s), 1e-13, "out");
    for (int row = 0; row < B * Hq * T; row++) {
        const int t = row % T;
        double sum = 0;
        for (int t2 = 0; t2 < T; t2++) {
            if (t2 > t) {
                EXPECT_EQ(att[(size_t)row * T + t2], 0.0);
            }
            sum += att[(size_t)row * T + t2];
        }
        EXPECT_NEAR(sum, 1.0, 1e-14);
    }

    Vec dq(q.size(), 0.0), dk(k.size(), 0.0), dv(v.size(), 0.0);
    attention_backward(dq.data(), dk.data(), dv.data(), R.data(), q.data(), k.data(), v.data(), att.data(),
                       B, T, Hq, Hkv, D);
    auto loss = [&] {
        attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), B, T, Hq, Hkv, D);
        return dot(out, R);
    };
    check_grad(q, dq, loss, "dq");
    check_grad(k, dk, loss, "dk");
    check_grad(v, dv, loss, "dv");
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuAttention,
                         testing::Values(AttnShape{2, 5, 4, 2, 6},     // GQA, 2 query heads per kv head
                                         AttnShape{1, 5, 3, 3, 6},     // plain multi-head
                                         AttnShape{1, 4, 4, 1, 11}));  // multi-query, D past one vector

// ------------------------------------------------------------------------------------------------
// swiglu

TEST(CpuOps, SwigluForwardAndGrad) {
    std::mt19937 rng(8);
    const size_t n = 11;
    Vec gate = random_vec(n, rng, -4, 4), up = random_vec(n, rng), R = random_vec(n, rng), out(n);
    swiglu_forward(out.data(), gate.data(), up.data(), n);
    for (size_t i = 0; i < n; i++) EXPECT_NEAR(out[i], gate[i] / (1 + std::exp(-gate[i])) * up[i], 1e-15);

    Vec dgate(n, 0.0), dup(n, 0.0);
    swiglu_backward(dgate.data(), dup.data(), R.data(), gate.data(), up.data(), n);
    auto loss = [&] {
        swiglu_forward(out.data(), gate.data(), up.data(), n);
        return dot(out, R);
    };
    check_grad(gate, dgate, loss, "dgate");
    check_grad(up, dup, loss, "dup");
}

// ------------------------------------------------------------------------------------------------
// cross-entropy

TEST(CpuOps, CrossEntropyForwardAndGrad) {
    std::mt19937 rng(9);
    const int N = 5, V = 7;
    const std::vector<int> targets = {2, -1, 6, 0, -100};  // two ignored rows
    Vec logits = random_vec((size_t)N * V, rng, -3, 3), R = random_vec(N, rng), losses(N);
    cross_entropy_forward(losses.data(), logits.data(), targets.data(), N, V);
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) {
            EXPECT_EQ(losses[n], 0.0);
            continue;
        }
        double sum = 0;
        for (int i = 0; i < V; i++) sum += std::exp(logits[(size_t)n * V + i]);
        EXPECT_NEAR(losses[n], std::log(sum) - logits[(size_t)n * V + targets[n]], 1e-14);
    }

    Vec dlogits(logits.size(), 0.0);
    cross_entropy_backward(dlogits.data(), logits.data(), targets.data(), R.data(), N, V);
    check_grad(logits, dlogits, [&] {
        cross_entropy_forward(losses.data(), logits.data(), targets.data(), N, V);
        return dot(losses, R);
    }, "dlogits");
    for (int i = 0; i < V; i++) EXPECT_EQ(dlogits[(size_t)1 * V + i], 0.0);  // ignored row
}

TEST(CpuOps, CrossEntropyIsStableForHugeLogits) {
    const int V = 3, target = 1;
    const VecF logits = {1000.f, 1001.f, -1000.f};
    const float dloss = 1.f;
    float loss;
    VecF dlogits(V, 0.f);
    cross_entropy_forward(&loss, logits.data(), &target, 1, V);
    cross_entropy_backward(dlogits.data(), logits.data(), &target, &dloss, 1, V);
    EXPECT_NEAR(loss, std::log(1 + std::exp(-1.0)), 1e-6);
    EXPECT_NEAR(dlogits[0], 1 / (1 + std::exp(1.0)), 1e-6);
    EXPECT_NEAR(dlogits[1], 1 / (1 + std::exp(-1.0)) - 1, 1e-6);
    EXPECT_EQ(dlogits[2], 0.f);
}

// ------------------------------------------------------------------------------------------------
// optimizer and gradient-norm helpers

TEST(CpuOps, AdamwMatchesHandComputedSteps) {
    const float lr = 0.1f, b1 = 0.9f, b2 = 0.99f, eps = 1e-8f, wd = 0.01f;
    Vec p = {1.0, -2.0, 0.5}, m = {0, 0, 0}, v = {0, 0, 0};
    const Vec g1 = {0.5, -1.0, 0.0}, g2 = {-0.25, 2.0, 1.0};
    // Hand-computed reference (PyTorch AdamW formulas), in double.
    Vec pr = p, mr = m, vr = v;
    int step = 0;
    for (const Vec& g : {g1, g2}) {
        step++;
        adamw_update(p.data(), g.data(), m.data(), v.data(), 3, lr, b1, b2, eps, wd, step);
        for (int i = 0; i < 3; i++) {
            pr[i] *= 1 - (double)lr * wd;
            mr[i] = (double)b1 * mr[i] + (1 - (double)b1) * g[i];
            vr[i] = (double)b2 * vr[i] + (1 - (double)b2) * g[i] * g[i];
            const double mhat = mr[i] / (1 - std::pow((double)b1, step));
            const double vhat = vr[i] / (1 - std::pow((double)b2, step));
            pr[i] -= lr * mhat / (std::sqrt(vhat) + eps);
        }
        expect_close(p, pr, 1e-13, "params");
        expect_close(m, mr, 1e-13, "m");
        expect_close(v, vr, 1e-13, "v");
    }
}

TEST(CpuOps, SumSquaresAndScale) {
    std::mt19937 rng(10);
    const size_t n = 200003;  // several fixed chunks plus a ragged end
    Vec g = random_vec(n, rng);
    double want = 0;
    for (double x : g) want += x * x;
    EXPECT_NEAR(sum_squares(g.data(), n), want, 1e-10 * want);
    VecF gf = to_float(g);
    double s1 = 0, s2 = 0;
    with_threads(1, [&] { s1 = sum_squares(gf.data(), n); });
    with_threads(2, [&] { s2 = sum_squares(gf.data(), n); });
    EXPECT_EQ(s1, s2);
    EXPECT_NEAR(s1, want, 1e-6 * want);

    Vec h = {1, -2, 3};
    scale(h.data(), 3, 0.5f);
    EXPECT_EQ(h, (Vec{0.5, -1, 1.5}));
}

// ------------------------------------------------------------------------------------------------
// float agrees with double

// rmsnorm -> rope -> attention -> swiglu and back, on inputs x [B*T, Hq*D], k, v [B*T, Hkv*D], w [C];
// R is dL/d(output). Returns the output and every gradient, in one precision.
template <typename Real>
std::vector<std::vector<Real>> op_chain(const std::vector<Real>& x, const std::vector<Real>& w,
                                        const std::vector<Real>& R, const std::vector<Real>& k,
                                        const std::vector<Real>& v, int B, int T, int Hq, int Hkv, int D) {
    const int N = B * T, C = Hq * D;
    std::vector<int> pos(N);
    for (int n = 0; n < N; n++) pos[n] = n % T;
    const size_t nx = x.size();
    std::vector<Real> h(nx), rstd(N), q(nx), att((size_t)B * Hq * T * T), o(nx), s(nx);
    rmsnorm_forward(h.data(), rstd.data(), x.data(), w.data(), N, C, 1e-6f);
    rope_forward(q.data(), h.data(), pos.data(), N, Hq, D, 10000.f);
    attention_forward(o.data(), att.data(), q.data(), k.data(), v.data(), B, T, Hq, Hkv, D);
    swiglu_forward(s.data(), o.data(), x.data(), nx);  // x doubles as the "up" input
    std::vector<Real> ds(nx, 0), du(nx, 0), dq(nx, 0), dk(k.size(), 0), dv(v.size(), 0);
    std::vector<Real> dh(nx, 0), dx(nx, 0), dw(C, 0);
    swiglu_backward(ds.data(), du.data(), R.data(), o.data(), x.data(), nx);
    attention_backward(dq.data(), dk.data(), dv.data(), ds.data(), q.data(), k.data(), v.data(), att.data(),
                       B, T, Hq, Hkv, D);
    rope_backward(dh.data(), dq.data(), pos.data(), N, Hq, D, 10000.f);
    rmsnorm_backward(dx.data(), dw.data(), dh.data(), x.data(), w.data(), rstd.data(), N, C);
    return {s, dx, dw, dk, dv, du};
}

TEST(CpuOps, FloatAgreesWithDouble) {
    std::mt19937 rng(11);
    const int B = 2, T = 6, Hq = 4, Hkv = 2, D = 8, N = B * T, C = Hq * D;
    Vec x = random_vec((size_t)N * C, rng), w = random_vec(C, rng), R = random_vec((size_t)N * C, rng);
    Vec k = random_vec((size_t)N * Hkv * D, rng), v = random_vec(k.size(), rng);
    auto rd = op_chain(x, w, R, k, v, B, T, Hq, Hkv, D);
    auto rf = op_chain(to_float(x), to_float(w), to_float(R), to_float(k), to_float(v), B, T, Hq, Hkv, D);
    for (size_t i = 0; i < rd.size(); i++) expect_close(rf[i], rd[i], 1e-5, "float vs double");
}

// ------------------------------------------------------------------------------------------------
// backward accumulates

TEST(CpuOps, BackwardAccumulates) {
    std::mt19937 rng(12);
    const int N = 5, C = 7, OC = 6;
    Vec inp = random_vec((size_t)N * C, rng), W = random_vec((size_t)OC * C, rng), R = random_vec((size_t)N * OC, rng);
    Vec g1[3] = {Vec(inp.size(), 0.0), Vec(W.size(), 0.0), Vec(OC, 0.0)};
    Vec g2[3] = {g1[0], g1[1], g1[2]};
    linear_backward(g1[0].data(), g1[1].data(), g1[2].data(), R.data(), inp.data(), W.data(), N, C, OC);
    for (int rep = 0; rep < 2; rep++)
        linear_backward(g2[0].data(), g2[1].data(), g2[2].data(), R.data(), inp.data(), W.data(), N, C, OC);
    for (int i = 0; i < 3; i++) {
        for (double& x : g1[i]) x *= 2;
        expect_close(g2[i], g1[i], 1e-14, "linear grads twice");
    }

    // The other ops: one call into zeros vs two calls, through small generic lambdas.
    auto twice = [](size_t n, const std::function<void(Vec&)>& bwd, const char* what) {
        Vec once(n, 0.0), two(n, 0.0);
        bwd(once);
        bwd(two);
        bwd(two);
        for (double& x : once) x *= 2;
        expect_close(two, once, 1e-14, what);
    };
    const int B = 1, T = 5, Hq = 4, Hkv = 2, D = 6;
    Vec q = random_vec((size_t)B * T * Hq * D, rng), k = random_vec((size_t)B * T * Hkv * D, rng);
    Vec v = random_vec(k.size(), rng), dout = random_vec(q.size(), rng), out(q.size()), att((size_t)B * Hq * T * T);
    attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), B, T, Hq, Hkv, D);
    Vec scratch_k(k.size()), scratch_v(v.size()), scratch_q(q.size());
    twice(q.size(), [&](Vec& dq) {
        attention_backward(dq.data(), scratch_k.data(), scratch_v.data(), dout.data(), q.data(), k.data(),
                           v.data(), att.data(), B, T, Hq, Hkv, D);
    }, "dq");
    twice(k.size(), [&](Vec& dk) {
        attention_backward(scratch_q.data(), dk.data(), scratch_v.data(), dout.data(), q.data(), k.data(),
                           v.data(), att.data(), B, T, Hq, Hkv, D);
    }, "dk");
    const std::vector<int> tokens = {1, 1, 0, 2, 1}, pos = {0, 1, 2, 3, 4};
    const Vec x = random_vec((size_t)N * C, rng), w = random_vec(C, rng), dx_out = random_vec(x.size(), rng);
    Vec rstd(N), normed(x.size()), dscratch(x.size());
    rmsnorm_forward(normed.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5f);
    twice(C, [&](Vec& dw) {
        rmsnorm_backward(dscratch.data(), dw.data(), dx_out.data(), x.data(), w.data(), rstd.data(), N, C);
    }, "rmsnorm dw");
    twice(x.size(), [&](Vec& dx) {
        rmsnorm_backward(dx.data(), dscratch.data(), dx_out.data(), x.data(), w.data(), rstd.data(), N, C);
    }, "rmsnorm dx");
    twice((size_t)3 * C, [&](Vec& dwte) { embedding_backward(dwte.data(), dx_out.data(), tokens.data(), N, C); },
          "dwte");
    twice(x.size(), [&](Vec& dx) { rope_backward(dx.data(), dx_out.data(), pos.data(), N, 1, 6, 10.f); },
          "rope dx");  // N rows of one head of D = 6 (uses the first 30 of the 35 values)
    twice(x.size(), [&](Vec& dg) { swiglu_backward(dg.data(), dscratch.data(), dx_out.data(), x.data(), w.data(), C); },
          "dgate");
    const std::vector<int> targets = {0, -1, 6, 3, 2};
    twice(x.size(), [&](Vec& dl) {
        cross_entropy_backward(dl.data(), x.data(), targets.data(), w.data(), N, C);
    }, "dlogits");
}

// ------------------------------------------------------------------------------------------------
// determinism across thread counts

TEST(CpuOps, BitIdenticalForOneAndTwoThreads) {
    std::mt19937 rng(13);
    // Linear: big enough for several tiles, several threads' worth of work and two K panels.
    const int N = 600, C = 131, OC = 45;
    VecF inp = to_float(random_vec((size_t)N * C, rng)), W = to_float(random_vec((size_t)OC * C, rng));
    VecF b = to_float(random_vec(OC, rng)), dout = to_float(random_vec((size_t)N * OC, rng));
    auto run_linear = [&] {
        VecF out((size_t)N * OC), dinp(inp.size(), 0.f), dW(W.size(), 0.f), db(OC, 0.f);
        linear_forward(out.data(), inp.data(), W.data(), b.data(), N, C, OC);
        linear_backward(dinp.data(), dW.data(), db.data(), dout.data(), inp.data(), W.data(), N, C, OC);
        return std::vector<VecF>{out, dinp, dW, db};
    };
    std::vector<VecF> l1, l2;
    with_threads(1, [&] { l1 = run_linear(); });
    with_threads(2, [&] { l2 = run_linear(); });
    for (size_t i = 0; i < l1.size(); i++) EXPECT_TRUE(l1[i] == l2[i]) << "linear output " << i;

    // Attention, GQA.
    const int B = 2, T = 33, Hq = 4, Hkv = 2, D = 16;
    VecF q = to_float(random_vec((size_t)B * T * Hq * D, rng)), k = to_float(random_vec((size_t)B * T * Hkv * D, rng));
    VecF v = to_float(random_vec(k.size(), rng)), g = to_float(random_vec(q.size(), rng));
    auto run_attention = [&] {
        VecF out(q.size()), att((size_t)B * Hq * T * T), dq(q.size(), 0.f), dk(k.size(), 0.f), dv(v.size(), 0.f);
        attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), B, T, Hq, Hkv, D);
        attention_backward(dq.data(), dk.data(), dv.data(), g.data(), q.data(), k.data(), v.data(), att.data(),
                           B, T, Hq, Hkv, D);
        return std::vector<VecF>{out, att, dq, dk, dv};
    };
    std::vector<VecF> a1, a2;
    with_threads(1, [&] { a1 = run_attention(); });
    with_threads(2, [&] { a2 = run_attention(); });
    for (size_t i = 0; i < a1.size(); i++) EXPECT_TRUE(a1[i] == a2[i]) << "attention output " << i;
}

}  // namespace
