// test_cuda_rowwise.cpp: the row-wise and elementwise CUDA kernels against their CPU twins
// (host/cpu/ops.h): embedding, RMSNorm (+ fused residual), RoPE, SwiGLU, AdamW, sum_squares, scale.
//
// Every test: random (never zero) inputs rounded to bf16 at several shapes, ragged ones included
// (they take the scalar paths, round sizes the 16-byte paths); outputs poisoned before the launch;
// the reference is the CPU twin in double on the bf16-rounded inputs; the kernel's max error against
// it must be <= 2 x the error of the naive computation (the float twin on the same inputs, outputs
// rounded to bf16 where the kernel stores bf16) + a small floor; no NaN may survive.
// fp32 paths (AdamW, sum_squares, scale) are held to ~1e-6 relative of the float twin (or exact),
// and the deterministic ones (embedding backward, RMSNorm dw, sum_squares) must repeat bit for bit.
// Without a GPU everything skips except the size checks, which throw before touching CUDA.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "host/error.h"

#ifdef RUSCA_CUDA
#include "cuda/adamw.cuh"
#include "cuda/embedding.cuh"
#include "cuda/rmsnorm.cuh"
#include "cuda/rope.cuh"
#include "cuda/swiglu.cuh"
#include "host/cpu/ops.h"

using namespace rusca;
using namespace rusca::gputest;

namespace {

using bf16 = __nv_bfloat16;
using VecF = std::vector<float>;
using VecD = std::vector<double>;

// A bf16 device copy of v (v should already be bf16-rounded, so the device holds the same values).
cuda::DeviceBuffer<bf16> upload_bf16(const VecF& v) { return cuda::DeviceBuffer<bf16>(to_device_bf16(v)); }
VecF download_bf16(const cuda::DeviceBuffer<bf16>& b) { return from_bf16(b.download()); }

// Random bf16-valued inputs: uniform in [-scale, scale], never zero, then rounded to bf16.
VecF random_bf16(size_t n, uint32_t seed, float scale = 1.0f) { return round_bf16(random_vector(n, seed, scale)); }

bool has_nan(const VecF& v) {
    return std::any_of(v.begin(), v.end(), [](float x) { return std::isnan(x); });
}

// The tolerance rule. kernel: the GPU result; naive: the float twin on the same bf16 inputs (outputs
// rounded to bf16 where the kernel stores bf16); ref: the double twin. floor_rel scales the absolute
// floor by the reference's magnitude.
void expect_rule(const std::string& what, const VecF& kernel, const VecF& naive, const VecD& ref,
                 double floor_rel = 1e-6) {
    ASSERT_EQ(kernel.size(), ref.size()) << what;
    ASSERT_EQ(naive.size(), ref.size()) << what;
    EXPECT_FALSE(has_nan(kernel)) << what << ": NaN in the output (an element left unwritten?)";
    const double ek = max_abs_diff(kernel, ref), en = max_abs_diff(naive, ref);
    const double floor = floor_rel * max_abs(ref) + 1e-30;
    EXPECT_LE(ek, 2 * en + floor) << what << ": kernel error " << ek << ", naive bf16 error " << en;
}

// ---------------------------------------------------------------------------------------------
// Embedding

TEST(CudaEmbedding, ForwardCopiesRows) {
    SKIP_WITHOUT_GPU();
    struct Shape { int N, C, V; };
    for (Shape s : {Shape{1, 1, 1}, Shape{7, 13, 5}, Shape{300, 896, 50}, Shape{129, 64, 1000}, Shape{33, 8, 3}}) {
        const std::string what = "N=" + std::to_string(s.N) + " C=" + std::to_string(s.C);
        std::mt19937 rng(s.N * 31 + s.C);
        std::vector<int> tokens(s.N);
        for (int& t : tokens) t = std::uniform_int_distribution<int>(0, s.V - 1)(rng);
        const VecF wte = random_bf16((size_t)s.V * s.C, 1 + s.C);

        VecF expect((size_t)s.N * s.C);
        cpu::embedding_forward(expect.data(), tokens.data(), wte.data(), s.N, s.C);

        cuda::DeviceBuffer<int> d_tokens(tokens);
        auto d_wte = upload_bf16(wte);
        cuda::DeviceBuffer<bf16> d_out((size_t)s.N * s.C);
        d_out.poison();
        cuda::embedding_forward(d_out.data(), d_tokens.data(), d_wte.data(), s.N, s.C);
        const VecF got = download_bf16(d_out);
        EXPECT_FALSE(has_nan(got)) << what;
        EXPECT_EQ(got, expect) << what << ": a lookup is a copy, exact";
    }
}

// dwte (fp32, += into random values) against the twin; then a second run must give the same bits.
void check_embedding_backward(const std::string& what, const std::vector<int>& tokens, int V, int C) {
    const int N = (int)tokens.size();
    const VecF dout = random_bf16((size_t)N * C, 2 + C + N);
    const VecF dwte0 = random_vector((size_t)V * C, 3 + C);

    VecF naive = dwte0;
    cpu::embedding_backward(naive.data(), dout.data(), tokens.data(), N, C);
    VecD ref = to_double(dwte0);
    cpu::embedding_backward(ref.data(), to_double(dout).data(), tokens.data(), N, C);

    cuda::DeviceBuffer<int> d_tokens(tokens);
    auto d_dout = upload_bf16(dout);
    cuda::DeviceBuffer<float> d_dwte(dwte0);
    cuda::embedding_backward(d_dwte.data(), d_dout.data(), d_tokens.data(), N, C);
    const VecF got = d_dwte.download();
    expect_rule("embedding_backward " + what, got, naive, ref);

    d_dwte.upload(dwte0);
    cuda::embedding_backward(d_dwte.data(), d_dout.data(), d_tokens.data(), N, C);
    EXPECT_EQ(d_dwte.download(), got) << what << ": a second run must give the same bits";
}

TEST(CudaEmbedding, BackwardMatchesTwinAndRepeats) {
    SKIP_WITHOUT_GPU();
    struct Shape { int N, C, V; };
    for (Shape s : {Shape{1, 1, 1}, Shape{7, 13, 5}, Shape{300, 896, 50}, Shape{1000, 130, 37},
                    Shape{2048, 64, 4000}, Shape{5000, 96, 300}}) {
        // Many repeats: half of the positions are token 0 (a padding-like hot token spanning many
        // 128-slot chunks of the sorted order), the rest uniform.
        std::mt19937 rng(s.N * 7 + s.C);
        std::vector<int> tokens(s.N);
        for (int& t : tokens) t = rng() % 2 ? 0 : std::uniform_int_distribution<int>(0, s.V - 1)(rng);
        check_embedding_backward("N=" + std::to_string(s.N) + " C=" + std::to_string(s.C), tokens, s.V, s.C);
    }
}

TEST(CudaEmbedding, BackwardRunsOnChunkBoundaries) {
    SKIP_WITHOUT_GPU();
    // Token t repeated len[t] times, so that after sorting the runs start and end exactly on, just
    // before and just after the kernel's 128-slot chunk boundaries; then the positions are shuffled.
    const int lens[] = {128, 256, 1, 127, 129, 300, 1000, 2, 126, 128, 3};
    std::vector<int> tokens;
    int V = 0;
    for (int len : lens) tokens.insert(tokens.end(), len, V++);
    std::mt19937 rng(5);
    std::shuffle(tokens.begin(), tokens.end(), rng);
    check_embedding_backward("chunk boundaries", tokens, V + 2, 40);
    std::vector<int> one_run(1000, 3);  // a single run over all chunks
    check_embedding_backward("one token", one_run, 5, 33);
}

// ---------------------------------------------------------------------------------------------
// RMSNorm

struct NC { int N, C; };
const NC kNormShapes[] = {{1, 1}, {5, 7}, {33, 896}, {64, 128}, {3, 4096}, {200, 130}, {20000, 64}};

TEST(CudaRmsnorm, ForwardMatchesTwin) {
    SKIP_WITHOUT_GPU();
    const float eps = 1e-6f;
    for (NC s : kNormShapes) {
        const std::string what = "N=" + std::to_string(s.N) + " C=" + std::to_string(s.C);
        const size_t NCs = (size_t)s.N * s.C;
        const VecF x = random_bf16(NCs, 10 + s.C, 2.0f), w = random_bf16(s.C, 11 + s.C);

        VecF naive(NCs), naive_rstd(s.N);
        cpu::rmsnorm_forward(naive.data(), naive_rstd.data(), x.data(), w.data(), s.N, s.C, eps);
        naive = round_bf16(naive);
        VecD ref(NCs), ref_rstd(s.N);
        cpu::rmsnorm_forward(ref.data(), ref_rstd.data(), to_double(x).data(), to_double(w).data(), s.N, s.C, eps);

        auto d_x = upload_bf16(x), d_w = upload_bf16(w);
        cuda::DeviceBuffer<bf16> d_out(NCs);
        cuda::DeviceBuffer<float> d_rstd(s.N);
        d_out.poison(), d_rstd.poison();
        cuda::rmsnorm_forward(d_out.data(), d_rstd.data(), d_x.data(), d_w.data(), s.N, s.C, eps);
        expect_rule("rmsnorm out " + what, download_bf16(d_out), naive, ref);
        expect_rule("rmsnorm rstd " + what, d_rstd.download(), naive_rstd, ref_rstd, 2e-6);
    }
}

TEST(CudaRmsnorm, ForwardInPlaceAndMisaligned) {
    SKIP_WITHOUT_GPU();
    // out == x, and x one element past a 16-byte boundary (C % 8 == 0 but the scalar path).
    const int N = 17, C = 256;
    const float eps = 1e-5f;
    const VecF x = random_bf16((size_t)N * C, 20), w = random_bf16(C, 21);
    VecF naive((size_t)N * C), naive_rstd(N);
    cpu::rmsnorm_forward(naive.data(), naive_rstd.data(), x.data(), w.data(), N, C, eps);
    naive = round_bf16(naive);
    VecD ref((size_t)N * C), ref_rstd(N);
    cpu::rmsnorm_forward(ref.data(), ref_rstd.data(), to_double(x).data(), to_double(w).data(), N, C, eps);

    VecF x_padded = x;
    x_padded.insert(x_padded.begin(), 1.0f);
    auto d_x = upload_bf16(x_padded), d_w = upload_bf16(w);
    cuda::DeviceBuffer<float> d_rstd(N);
    d_rstd.poison();
    cuda::rmsnorm_forward(d_x.data() + 1, d_rstd.data(), d_x.data() + 1, d_w.data(), N, C, eps);
    VecF got = download_bf16(d_x);
    EXPECT_EQ(got[0], 1.0f) << "wrote before the output";
    got.erase(got.begin());
    expect_rule("rmsnorm in place, misaligned", got, naive, ref);
    expect_rule("rmsnorm in place rstd", d_rstd.download(), naive_rstd, ref_rstd, 2e-6);
}

TEST(CudaRmsnorm, FusedResidualMatchesAddThenNorm) {
    SKIP_WITHOUT_GPU();
    const float eps = 1e-6f;
    for (NC s : kNormShapes) {
        const std::string what = "N=" + std::to_string(s.N) + " C=" + std::to_string(s.C);
        const size_t NCs = (size_t)s.N * s.C;
        const VecF a = random_bf16(NCs, 30 + s.C, 2.0f), b = random_bf16(NCs, 31 + s.C),
                   w = random_bf16(s.C, 32 + s.C);
        // CPU reference from the existing ops: the residual as the kernel stores it (bf16 of the fp32 sum),
        // then the norm of that stored residual; in double for the reference, float for the naive.
        VecF resid(NCs);
        for (size_t i = 0; i < NCs; i++) resid[i] = round_bf16(a[i] + b[i]);
        VecD ref_resid(NCs);
        for (size_t i = 0; i < NCs; i++) ref_resid[i] = (double)a[i] + b[i];
        VecF naive(NCs), naive_rstd(s.N);
        cpu::rmsnorm_forward(naive.data(), naive_rstd.data(), resid.data(), w.data(), s.N, s.C, eps);
        naive = round_bf16(naive);
        VecD ref(NCs), ref_rstd(s.N);
        cpu::rmsnorm_forward(ref.data(), ref_rstd.data(), to_double(resid).data(), to_double(w).data(), s.N, s.C,
                             eps);

        auto d_a = upload_bf16(a), d_b = upload_bf16(b), d_w = upload_bf16(w);
        cuda::DeviceBuffer<bf16> d_resid(NCs), d_out(NCs);
        cuda::DeviceBuffer<float> d_rstd(s.N);
        d_resid.poison(), d_out.poison(), d_rstd.poison();
        cuda::fused_residual_rmsnorm_forward(d_resid.data(), d_out.data(), d_rstd.data(), d_a.data(), d_b.data(),
                                             d_w.data(), s.N, s.C, eps);
        const VecF got_resid = download_bf16(d_resid);
        expect_rule("fused residual " + what, got_resid, resid, ref_resid);
        EXPECT_EQ(got_resid, resid) << what << ": bf16(a + b) is exact to specify";
        expect_rule("fused out " + what, download_bf16(d_out), naive, ref);
        expect_rule("fused rstd " + what, d_rstd.download(), naive_rstd, ref_rstd, 2e-6);

        // In place (residual_out == a), the residual stream's usual call.
        cuda::fused_residual_rmsnorm_forward(d_a.data(), d_out.data(), d_rstd.data(), d_a.data(), d_b.data(),
                                             d_w.data(), s.N, s.C, eps);
        EXPECT_EQ(download_bf16(d_a), resid) << what << " in place";
    }
}

TEST(CudaRmsnorm, BackwardMatchesTwinAndRepeats) {
    SKIP_WITHOUT_GPU();
    const float eps = 1e-6f;
    for (NC s : kNormShapes) {
        const std::string what = "N=" + std::to_string(s.N) + " C=" + std::to_string(s.C);
        const size_t NCs = (size_t)s.N * s.C;
        const VecF x = random_bf16(NCs, 40 + s.C, 2.0f), w = random_bf16(s.C, 41 + s.C),
                   dout = random_bf16(NCs, 42 + s.C), dx0 = random_bf16(NCs, 43 + s.C, 0.5f),
                   dw0 = random_vector(s.C, 44 + s.C);
        // rstd as the forward saves it (fp32); the same values feed every computation.
        VecF rstd(s.N), scratch(NCs);
        cpu::rmsnorm_forward(scratch.data(), rstd.data(), x.data(), w.data(), s.N, s.C, eps);

        VecF naive_dx = dx0, naive_dw = dw0;
        cpu::rmsnorm_backward(naive_dx.data(), naive_dw.data(), dout.data(), x.data(), w.data(), rstd.data(), s.N,
                              s.C);
        naive_dx = round_bf16(naive_dx);
        VecD ref_dx = to_double(dx0), ref_dw = to_double(dw0);
        cpu::rmsnorm_backward(ref_dx.data(), ref_dw.data(), to_double(dout).data(), to_double(x).data(),
                              to_double(w).data(), to_double(rstd).data(), s.N, s.C);

        auto d_x = upload_bf16(x), d_w = upload_bf16(w), d_dout = upload_bf16(dout), d_dx = upload_bf16(dx0);
        cuda::DeviceBuffer<float> d_rstd(rstd), d_dw(dw0);
        cuda::rmsnorm_backward(d_dx.data(), d_dw.data(), d_dout.data(), d_x.data(), d_w.data(), d_rstd.data(), s.N,
                               s.C);
        expect_rule("rmsnorm dx " + what, download_bf16(d_dx), naive_dx, ref_dx);
        const VecF got_dw = d_dw.download();
        expect_rule("rmsnorm dw " + what, got_dw, naive_dw, ref_dw, 2e-6);

        // dw (block reductions in shared memory) repeats bit for bit, under every thread schedule of
        // the emulator too.
        expect_schedule_independent(
            [&] {
                d_dw.upload(dw0);
                cuda::rmsnorm_backward(d_dx.data(), d_dw.data(), d_dout.data(), d_x.data(), d_w.data(),
                                       d_rstd.data(), s.N, s.C);
                const VecF again = d_dw.download();
                EXPECT_EQ(again, got_dw) << what << ": dw must repeat bit for bit";
                return again;
            },
            "rmsnorm dw " + what);
    }
}

// ---------------------------------------------------------------------------------------------
// RoPE

struct NHD { int N, H, D; };
const NHD kRopeShapes[] = {{1, 1, 2}, {5, 3, 6}, {4, 3, 10}, {17, 14, 64}, {9, 2, 128}, {300, 4, 64}, {3, 1, 512}};

std::vector<int> random_positions(int N, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int> pos(N);
    for (int& p : pos) p = std::uniform_int_distribution<int>(0, 32767)(rng);
    pos[0] = 0;  // the identity rotation, too
    return pos;
}

TEST(CudaRope, ForwardAndBackwardMatchTwin) {
    SKIP_WITHOUT_GPU();
    for (float theta : {10000.0f, 1000000.0f}) {
        for (NHD s : kRopeShapes) {
            const std::string what = "N=" + std::to_string(s.N) + " H=" + std::to_string(s.H) +
                                     " D=" + std::to_string(s.D) + " theta=" + std::to_string(theta);
            const size_t n = (size_t)s.N * s.H * s.D;
            const std::vector<int> pos = random_positions(s.N, 50 + s.D);
            const VecF x = random_bf16(n, 51 + s.D, 2.0f), dout = random_bf16(n, 52 + s.D),
                       dx0 = random_bf16(n, 53 + s.D);
            cuda::DeviceBuffer<int> d_pos(pos);

            VecF naive(n);
            cpu::rope_forward(naive.data(), x.data(), pos.data(), s.N, s.H, s.D, theta);
            naive = round_bf16(naive);
            VecD ref(n);
            cpu::rope_forward(ref.data(), to_double(x).data(), pos.data(), s.N, s.H, s.D, theta);
            auto d_x = upload_bf16(x);
            cuda::DeviceBuffer<bf16> d_out(n);
            d_out.poison();
            cuda::rope_forward(d_out.data(), d_x.data(), d_pos.data(), s.N, s.H, s.D, theta);
            expect_rule("rope forward " + what, download_bf16(d_out), naive, ref);

            VecF naive_dx = dx0;
            cpu::rope_backward(naive_dx.data(), dout.data(), pos.data(), s.N, s.H, s.D, theta);
            naive_dx = round_bf16(naive_dx);
            VecD ref_dx = to_double(dx0);
            cpu::rope_backward(ref_dx.data(), to_double(dout).data(), pos.data(), s.N, s.H, s.D, theta);
            auto d_dout = upload_bf16(dout), d_dx = upload_bf16(dx0);
            cuda::rope_backward(d_dx.data(), d_dout.data(), d_pos.data(), s.N, s.H, s.D, theta);
            expect_rule("rope backward " + what, download_bf16(d_dx), naive_dx, ref_dx);

            // In place (out == x).
            cuda::rope_forward(d_x.data(), d_x.data(), d_pos.data(), s.N, s.H, s.D, theta);
            EXPECT_EQ(download_bf16(d_x), download_bf16(d_out)) << what << " in place";
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SwiGLU

TEST(CudaSwiglu, ForwardAndBackwardMatchTwin) {
    SKIP_WITHOUT_GPU();
    for (size_t n : {size_t(1), size_t(7), size_t(1000), size_t(4096), size_t(8003), size_t(1) << 20}) {
        const std::string what = "n=" + std::to_string(n);
        VecF gate = random_bf16(n, 60 + n, 6.0f);
        const float tails[] = {-100.0f, -30.0f, 30.0f, 100.0f};  // sigmoid saturates (expf overflows)
        for (size_t i = 0; i < std::min<size_t>(n, 4); i++) gate[i * (n / 4 + 1) % n] = tails[i];
        const VecF up = random_bf16(n, 61 + n, 2.0f), dout = random_bf16(n, 62 + n),
                   dgate0 = random_bf16(n, 63 + n), dup0 = random_bf16(n, 64 + n);

        VecF naive(n);
        cpu::swiglu_forward(naive.data(), gate.data(), up.data(), n);
        naive = round_bf16(naive);
        VecD ref(n);
        cpu::swiglu_forward(ref.data(), to_double(gate).data(), to_double(up).data(), n);
        auto d_gate = upload_bf16(gate), d_up = upload_bf16(up);
        cuda::DeviceBuffer<bf16> d_out(n);
        d_out.poison();
        cuda::swiglu_forward(d_out.data(), d_gate.data(), d_up.data(), n);
        expect_rule("swiglu forward " + what, download_bf16(d_out), naive, ref);

        VecF naive_dgate = dgate0, naive_dup = dup0;
        cpu::swiglu_backward(naive_dgate.data(), naive_dup.data(), dout.data(), gate.data(), up.data(), n);
        naive_dgate = round_bf16(naive_dgate), naive_dup = round_bf16(naive_dup);
        VecD ref_dgate = to_double(dgate0), ref_dup = to_double(dup0);
        cpu::swiglu_backward(ref_dgate.data(), ref_dup.data(), to_double(dout).data(), to_double(gate).data(),
                             to_double(up).data(), n);
        auto d_dout = upload_bf16(dout), d_dgate = upload_bf16(dgate0), d_dup = upload_bf16(dup0);
        cuda::swiglu_backward(d_dgate.data(), d_dup.data(), d_dout.data(), d_gate.data(), d_up.data(), n);
        expect_rule("swiglu dgate " + what, download_bf16(d_dgate), naive_dgate, ref_dgate);
        expect_rule("swiglu dup " + what, download_bf16(d_dup), naive_dup, ref_dup);
    }
}

TEST(CudaSwiglu, MisalignedTakesTheScalarPath) {
    SKIP_WITHOUT_GPU();
    const size_t n = 4096;  // n % 8 == 0, but the arrays start 2 bytes past a 16-byte boundary
    const VecF gate = random_bf16(n + 1, 70, 4.0f), up = random_bf16(n + 1, 71);
    VecF naive(n + 1);
    cpu::swiglu_forward(naive.data(), gate.data(), up.data(), n + 1);
    naive = round_bf16(naive);
    VecD ref(n + 1);
    cpu::swiglu_forward(ref.data(), to_double(gate).data(), to_double(up).data(), n + 1);
    auto d_gate = upload_bf16(gate), d_up = upload_bf16(up);
    cuda::DeviceBuffer<bf16> d_out(n + 1);
    d_out.poison();
    cuda::swiglu_forward(d_out.data() + 1, d_gate.data() + 1, d_up.data() + 1, n);
    VecF got = download_bf16(d_out);
    EXPECT_TRUE(std::isnan(got[0])) << "wrote before the output";
    got[0] = naive[0];
    expect_rule("swiglu misaligned", got, naive, ref);
}

// ---------------------------------------------------------------------------------------------
// AdamW, sum_squares, scale (fp32)

// max |a - b| <= rel * max |b|   (normwise relative error)
void expect_rel(const std::string& what, const VecF& a, const VecF& b, double rel) {
    ASSERT_EQ(a.size(), b.size()) << what;
    EXPECT_FALSE(has_nan(a)) << what;
    double err = 0, mag = 0;
    for (size_t i = 0; i < a.size(); i++) {
        err = std::max(err, std::fabs((double)a[i] - b[i]));
        mag = std::max(mag, std::fabs((double)b[i]));
    }
    EXPECT_LE(err, rel * mag) << what << ": max abs error " << err << " at magnitude " << mag;
}

TEST(CudaAdamw, UpdateMatchesTwinAndWritesBf16Copy) {
    SKIP_WITHOUT_GPU();
    const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
    for (size_t n : {size_t(1), size_t(1000), size_t(100003)}) {
        for (int step : {1, 7, 1000}) {
            const std::string what = "n=" + std::to_string(n) + " step=" + std::to_string(step);
            const VecF p0 = random_vector(n, 80 + n), g = random_vector(n, 81 + n, 0.1f),
                       m0 = random_vector(n, 82 + n, 0.01f);
            VecF v0 = random_vector(n, 83 + n, 0.01f);
            for (float& x : v0) x = x * x;  // second moments are >= 0

            VecF p = p0, m = m0, v = v0;
            cpu::adamw_update(p.data(), g.data(), m.data(), v.data(), n, lr, b1, b2, eps, wd, step);
            VecD pd = to_double(p0), md = to_double(m0), vd = to_double(v0);
            cpu::adamw_update(pd.data(), to_double(g).data(), md.data(), vd.data(), n, lr, b1, b2, eps, wd, step);

            cuda::DeviceBuffer<float> d_p(p0), d_g(g), d_m(m0), d_v(v0);
            cuda::DeviceBuffer<bf16> d_pb(n);
            d_pb.poison();
            cuda::adamw_update(d_p.data(), d_g.data(), d_m.data(), d_v.data(), n, lr, b1, b2, eps, wd, step,
                               d_pb.data());
            const VecF gp = d_p.download(), gm = d_m.download(), gv = d_v.download();
            expect_rel("adamw params " + what, gp, p, 1e-6);
            expect_rel("adamw m " + what, gm, m, 1e-6);
            expect_rel("adamw v " + what, gv, v, 1e-6);
            expect_rule("adamw params vs double " + what, gp, p, pd, 2e-7);
            expect_rule("adamw m vs double " + what, gm, m, md, 2e-7);
            expect_rule("adamw v vs double " + what, gv, v, vd, 2e-7);
            // The update itself (p - p0, ~1e-3) to 1e-3 relative, the checks above being dominated by p0;
            // plus 2 fp32 ulps of p for the rounding of p itself.
            double err = 0, dmax = 0, pmax = 0;
            for (size_t i = 0; i < n; i++) {
                err = std::max(err, std::fabs(((double)gp[i] - p0[i]) - (pd[i] - p0[i])));
                dmax = std::max(dmax, std::fabs(pd[i] - p0[i]));
                pmax = std::max(pmax, std::fabs((double)p0[i]));
            }
            EXPECT_LE(err, 1e-3 * dmax + 2.5e-7 * pmax) << "adamw update " << what << ", max update " << dmax;
            // The bf16 copy is the rounded fp32 result, exactly.
            EXPECT_EQ(download_bf16(d_pb), round_bf16(gp)) << what;

            // Without the bf16 copy: the same fp32 result.
            d_p.upload(p0), d_m.upload(m0), d_v.upload(v0);
            cuda::adamw_update(d_p.data(), d_g.data(), d_m.data(), d_v.data(), n, lr, b1, b2, eps, wd, step, nullptr);
            EXPECT_EQ(d_p.download(), gp) << what;
        }
    }
}

TEST(CudaAdamw, SumSquaresMatchesTwinAndRepeats) {
    SKIP_WITHOUT_GPU();
    for (size_t n : {size_t(1), size_t(1000), (size_t(1) << 20) + 17, size_t(10000019)}) {
        const std::string what = "n=" + std::to_string(n);
        const VecF g = random_vector(n, 90 + n, 3.0f);
        const double expect = cpu::sum_squares(g.data(), n);
        cuda::DeviceBuffer<float> d_g(g);
        const double got = cuda::sum_squares(d_g.data(), n);
        EXPECT_NEAR(got, expect, 1e-10 * expect) << what;  // both are double sums, in different orders
        EXPECT_EQ(cuda::sum_squares(d_g.data(), n), got) << what << ": must repeat bit for bit";
        cuda::DeviceBuffer<double> d_out(1);
        d_out.poison();
        cuda::sum_squares_to_device(d_out.data(), d_g.data(), n);
        EXPECT_EQ(d_out.download()[0], got) << what;
    }
    EXPECT_EQ(cuda::sum_squares(nullptr, 0), 0.0);
}

TEST(CudaAdamw, ScaleMatchesTwinExactly) {
    SKIP_WITHOUT_GPU();
    for (size_t n : {size_t(1), size_t(1000), size_t(100003)}) {
        VecF g = random_vector(n, 100 + n);
        cuda::DeviceBuffer<float> d_g(g);
        cuda::scale(d_g.data(), n, 0.37f);
        cpu::scale(g.data(), n, 0.37f);
        EXPECT_EQ(d_g.download(), g) << "n=" << n;  // one fp32 multiply each: exact to specify
    }
}

// ---------------------------------------------------------------------------------------------
// Bad sizes raise rusca::Error before any CUDA call (so this runs without a GPU too).

TEST(CudaRowwise, BadSizesRaise) {
    bf16* p = nullptr;
    float* f = nullptr;
    EXPECT_THROW(cuda::embedding_forward(p, nullptr, p, -1, 8), Error);
    EXPECT_THROW(cuda::embedding_backward(f, p, nullptr, 4, 0), Error);
    EXPECT_THROW(cuda::rmsnorm_forward(p, f, p, p, 4, 0, 1e-6f), Error);
    EXPECT_THROW(cuda::rmsnorm_backward(p, f, p, p, p, f, -2, 8), Error);
    EXPECT_THROW(cuda::fused_residual_rmsnorm_forward(p, p, f, p, p, p, 4, -1, 1e-6f), Error);
    EXPECT_THROW(cuda::rope_forward(p, p, nullptr, 4, 2, 7, 10000.0f), Error);    // odd D
    EXPECT_THROW(cuda::rope_backward(p, p, nullptr, 4, 2, 1024, 10000.0f), Error);  // D > 512
    EXPECT_THROW(cuda::rope_forward(p, p, nullptr, 4, 2, 8, 0.0f), Error);       // theta
    EXPECT_THROW(cuda::adamw_update(f, f, f, f, 8, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 0, nullptr), Error);
    EXPECT_THROW(cuda::swiglu_forward(p, p, p, 8), Error);  // null pointers with work to do
}

}  // namespace
#endif  // RUSCA_CUDA
