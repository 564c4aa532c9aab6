// test_cuda_matmul.cpp: cuda/matmul (cuBLASLt linear layers and the row-major gemm) against the CPU
// twins in host/cpu/ops.h. Each case: random bf16-rounded inputs at several shapes (odd and ragged
// ones included), outputs poisoned (gradients: random start values, to check +=), the reference is
// the twin in double on the bf16-rounded inputs, and the kernel's error must be at most twice the
// naive bf16 computation's (the twin in float, outputs rounded to bf16 where the kernel stores bf16)
// plus a small floor. GPU tests skip without a GPU; the argument checks run everywhere.
#include <gtest/gtest.h>

#include "gpu_test_util.h"
#include "host/error.h"

#ifdef RUSCA_CUDA
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/matmul.cuh"
#include "host/cpu/ops.h"

using namespace rusca;
using namespace rusca::gputest;
using bf16 = __nv_bfloat16;

namespace {

struct Shape {
    int N, C, OC;
};
// Odd, ragged and aligned shapes; (37, 72, 130) leaves rows of out 260 bytes apart (not 16-aligned).
const Shape kShapes[] = {{37, 72, 130}, {64, 128, 96}, {1, 8, 3}, {129, 200, 257}, {256, 512, 384}};

// fp32 outputs differ from the float twin only by summation order and the tensor cores' fp32
// accumulation, so the floor is relative to the output's scale.
double floor_for(const std::vector<double>& ref) { return 3e-5 * std::max(max_abs(ref), 1e-30); }

std::string label(const Shape& s) {
    return "N=" + std::to_string(s.N) + " C=" + std::to_string(s.C) + " OC=" + std::to_string(s.OC);
}

}  // namespace

TEST(CudaMatmul, LinearForwardMatchesCpuTwin) {
    SKIP_WITHOUT_GPU();
    uint32_t seed = 1;
    for (const Shape& s : kShapes) {
        for (bool with_bias : {true, false}) {
            const std::string what = label(s) + (with_bias ? " bias" : " no bias");
            const std::vector<float> inp = round_bf16(random_vector((size_t)s.N * s.C, seed++));
            const std::vector<float> W = round_bf16(random_vector((size_t)s.OC * s.C, seed++, 0.2f));
            const std::vector<float> bias = round_bf16(random_vector(s.OC, seed++));
            const float* b = with_bias ? bias.data() : nullptr;

            std::vector<double> ref((size_t)s.N * s.OC);
            const std::vector<double> inp_d = to_double(inp), W_d = to_double(W), bias_d = to_double(bias);
            cpu::linear_forward<double>(ref.data(), inp_d.data(), W_d.data(), with_bias ? bias_d.data() : nullptr,
                                        s.N, s.C, s.OC);
            std::vector<float> naive((size_t)s.N * s.OC);
            cpu::linear_forward<float>(naive.data(), inp.data(), W.data(), b, s.N, s.C, s.OC);
            naive = round_bf16(naive);

            cuda::DeviceBuffer<bf16> d_inp(to_device_bf16(inp)), d_W(to_device_bf16(W)), d_bias(to_device_bf16(bias));
            cuda::DeviceBuffer<bf16> d_out((size_t)s.N * s.OC);
            d_out.poison();
            cuda::linear_forward(d_out.data(), d_inp.data(), d_W.data(), with_bias ? d_bias.data() : nullptr, s.N,
                                 s.C, s.OC);
            const std::vector<float> out = from_bf16(d_out.download());
            expect_bf16_rule(out, ref, naive, 1e-6 * max_abs(ref), what + " out");

            // Same call again (cached algorithm): bit-identical.
            d_out.poison();
            cuda::linear_forward(d_out.data(), d_inp.data(), d_W.data(), with_bias ? d_bias.data() : nullptr, s.N,
                                 s.C, s.OC);
            EXPECT_TRUE(from_bf16(d_out.download()) == out) << what << ": second run differs";
        }
    }
}

TEST(CudaMatmul, LinearBackwardMatchesCpuTwin) {
    SKIP_WITHOUT_GPU();
    uint32_t seed = 100;
    for (const Shape& s : kShapes) {
        const std::string what = label(s);
        const std::vector<float> inp = round_bf16(random_vector((size_t)s.N * s.C, seed++));
        const std::vector<float> W = round_bf16(random_vector((size_t)s.OC * s.C, seed++, 0.2f));
        const std::vector<float> dout = round_bf16(random_vector((size_t)s.N * s.OC, seed++));
        // Gradients start from random values: the kernels must add (+=), like the twin.
        const std::vector<float> dinp0 = round_bf16(random_vector((size_t)s.N * s.C, seed++));
        const std::vector<float> dW0 = random_vector((size_t)s.OC * s.C, seed++);
        const std::vector<float> dbias0 = random_vector(s.OC, seed++);

        std::vector<double> dinp_ref = to_double(dinp0), dW_ref = to_double(dW0), dbias_ref = to_double(dbias0);
        const std::vector<double> inp_d = to_double(inp), W_d = to_double(W), dout_d = to_double(dout);
        cpu::linear_backward<double>(dinp_ref.data(), dW_ref.data(), dbias_ref.data(), dout_d.data(), inp_d.data(),
                                     W_d.data(), s.N, s.C, s.OC);
        std::vector<float> dinp_naive = dinp0, dW_naive = dW0, dbias_naive = dbias0;
        cpu::linear_backward<float>(dinp_naive.data(), dW_naive.data(), dbias_naive.data(), dout.data(), inp.data(),
                                    W.data(), s.N, s.C, s.OC);
        dinp_naive = round_bf16(dinp_naive);

        cuda::DeviceBuffer<bf16> d_inp(to_device_bf16(inp)), d_W(to_device_bf16(W)), d_dout(to_device_bf16(dout));
        cuda::DeviceBuffer<bf16> d_dinp(to_device_bf16(dinp0));
        cuda::DeviceBuffer<float> d_dW(dW0), d_dbias(dbias0);
        cuda::linear_backward(d_dinp.data(), d_dW.data(), d_dbias.data(), d_dout.data(), d_inp.data(), d_W.data(),
                              s.N, s.C, s.OC);
        expect_bf16_rule(from_bf16(d_dinp.download()), dinp_ref, dinp_naive, 1e-6 * max_abs(dinp_ref),
                         what + " dinp");
        const std::vector<float> dW = d_dW.download(), dbias = d_dbias.download();
        expect_bf16_rule(dW, dW_ref, dW_naive, floor_for(dW_ref), what + " dW");
        expect_bf16_rule(dbias, dbias_ref, dbias_naive, floor_for(dbias_ref), what + " dbias");

        // Deterministic: the same accumulation from the same start gives the same bits.
        d_dW.upload(dW0), d_dbias.upload(dbias0);
        cuda::linear_backward(nullptr, d_dW.data(), d_dbias.data(), d_dout.data(), d_inp.data(), d_W.data(), s.N,
                              s.C, s.OC);
        EXPECT_TRUE(d_dW.download() == dW) << what << ": dW differs between runs";
        EXPECT_TRUE(d_dbias.download() == dbias) << what << ": dbias differs between runs";
    }
}

// The general row-major gemm() as the fused losses use it (transposes, row strides wider than the
// matrix, alpha, beta = 1 into fp32 and bf16), and the fallback kernel on the same products.
TEST(CudaMatmul, GemmStridesTransposesAndFallback) {
    SKIP_WITHOUT_GPU();
    struct Case {
        int M, N, K, lda, ldb, ldd;
        bool ta, tb, d_fp32;
        float alpha, beta;
    };
    const Case cases[] = {
        {37, 72, 130, 260, 72, 80, false, false, true, 0.5f, 1.0f},    // A [M, K] in a wider row
        {130, 72, 37, 260, 72, 72, true, false, true, 1.0f, 1.0f},     // A^T stored [K, M], like dlogits^T
        {37, 72, 130, 130, 130, 72, false, true, false, 1.0f, 1.0f},   // B^T stored [N, K], bf16 +=
        {64, 96, 48, 64, 48, 96, true, true, false, -0.7f, 0.0f},      // both transposed, overwrite
    };
    uint32_t seed = 200;
    for (const Case& c : cases) {
        for (bool fallback : {false, true}) {
            const std::string what = "M=" + std::to_string(c.M) + " N=" + std::to_string(c.N) + " K=" +
                                      std::to_string(c.K) + (c.ta ? " A^T" : "") + (c.tb ? " B^T" : "") +
                                      (c.d_fp32 ? " fp32" : " bf16") + (fallback ? " fallback" : " cuBLASLt");
            const size_t a_rows = c.ta ? c.K : c.M, b_rows = c.tb ? c.N : c.K;
            const std::vector<float> A = round_bf16(random_vector(a_rows * c.lda, seed++));
            const std::vector<float> B = round_bf16(random_vector(b_rows * c.ldb, seed++));
            std::vector<float> D0 = random_vector((size_t)c.M * c.ldd, seed++);
            if (!c.d_fp32) D0 = round_bf16(D0);
            // reference (double) and naive (float sums, bf16 output rounding) by the definition
            std::vector<double> ref(D0.size());
            std::vector<float> naive(D0.size());
            for (int i = 0; i < c.M; i++) {
                for (int j = 0; j < c.ldd; j++) {
                    const size_t at = (size_t)i * c.ldd + j;
                    if (j >= c.N) {  // outside the matrix: must stay untouched
                        ref[at] = D0[at], naive[at] = D0[at];
                        continue;
                    }
                    double s = 0;
                    float sf = 0;
                    for (int k = 0; k < c.K; k++) {
                        const float a = c.ta ? A[(size_t)k * c.lda + i] : A[(size_t)i * c.lda + k];
                        const float b = c.tb ? B[(size_t)j * c.ldb + k] : B[(size_t)k * c.ldb + j];
                        s += (double)a * b;
                        sf += a * b;
                    }
                    ref[at] = c.alpha * s + (c.beta != 0 ? c.beta * (double)D0[at] : 0.0);
                    naive[at] = c.alpha * sf + (c.beta != 0 ? c.beta * D0[at] : 0.0f);
                }
            }
            if (!c.d_fp32) naive = round_bf16(naive);

            cuda::DeviceBuffer<bf16> d_A(to_device_bf16(A)), d_B(to_device_bf16(B));
            const cuda::MatRef mA{d_A.data(), c.lda, c.ta}, mB{d_B.data(), c.ldb, c.tb};
            std::vector<float> got;
            auto run = [&](void* D) {
                if (fallback)
                    cuda::gemm_fallback(D, c.d_fp32, c.ldd, mA, mB, c.M, c.N, c.K, c.alpha, c.beta, nullptr);
                else
                    cuda::gemm(D, c.d_fp32, c.ldd, mA, mB, c.M, c.N, c.K, c.alpha, c.beta, nullptr);
            };
            if (c.d_fp32) {
                cuda::DeviceBuffer<float> d_D(D0);
                run(d_D.data());
                got = d_D.download();
            } else {
                cuda::DeviceBuffer<bf16> d_D(to_device_bf16(D0));
                if (c.beta == 0) {  // poison the matrix (beta = 0 must not read it), keep the margins
                    std::vector<float> poisoned = D0;
                    for (int i = 0; i < c.M; i++)
                        for (int j = 0; j < c.N; j++) poisoned[(size_t)i * c.ldd + j] = NAN;
                    d_D.upload(to_device_bf16(poisoned));
                }
                run(d_D.data());
                got = from_bf16(d_D.download());
            }
            expect_bf16_rule(got, ref, naive, c.d_fp32 ? floor_for(ref) : 1e-6 * max_abs(ref), what);
        }
    }
}

// The fallback kernel with a bias (the path linear_forward takes if cuBLASLt has no algorithm).
TEST(CudaMatmul, FallbackBiasMatchesLinearForward) {
    SKIP_WITHOUT_GPU();
    const Shape s{37, 72, 130};
    const std::vector<float> inp = round_bf16(random_vector((size_t)s.N * s.C, 300));
    const std::vector<float> W = round_bf16(random_vector((size_t)s.OC * s.C, 301, 0.2f));
    const std::vector<float> bias = round_bf16(random_vector(s.OC, 302));
    std::vector<double> ref((size_t)s.N * s.OC);
    const std::vector<double> inp_d = to_double(inp), W_d = to_double(W), bias_d = to_double(bias);
    cpu::linear_forward<double>(ref.data(), inp_d.data(), W_d.data(), bias_d.data(), s.N, s.C, s.OC);
    std::vector<float> naive((size_t)s.N * s.OC);
    cpu::linear_forward<float>(naive.data(), inp.data(), W.data(), bias.data(), s.N, s.C, s.OC);
    naive = round_bf16(naive);

    cuda::DeviceBuffer<bf16> d_inp(to_device_bf16(inp)), d_W(to_device_bf16(W)), d_bias(to_device_bf16(bias));
    cuda::DeviceBuffer<bf16> d_out((size_t)s.N * s.OC);
    d_out.poison();
    cuda::gemm_fallback(d_out.data(), false, s.OC, cuda::MatRef{d_inp.data(), s.C, false},
                        cuda::MatRef{d_W.data(), s.C, true}, s.N, s.OC, s.C, 1.0f, 0.0f, d_bias.data());
    expect_bf16_rule(from_bf16(d_out.download()), ref, naive, 1e-6 * max_abs(ref), "fallback with bias");
}

// Bad sizes are rejected before anything reaches the GPU, so this runs without one.
TEST(CudaMatmul, BadSizesThrow) {
    EXPECT_THROW(cuda::linear_forward(nullptr, nullptr, nullptr, nullptr, -1, 8, 8), Error);
    EXPECT_THROW(cuda::linear_forward(nullptr, nullptr, nullptr, nullptr, 4, 0, 8), Error);
    EXPECT_THROW(cuda::linear_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 4, 8, -3), Error);
    bf16* p = reinterpret_cast<bf16*>(uintptr_t(256));  // never dereferenced: the checks come first
    // row stride of A smaller than K
    EXPECT_THROW(cuda::gemm(p, false, 8, cuda::MatRef{p, 4, false}, cuda::MatRef{p, 8, false}, 8, 8, 8, 1, 0, nullptr),
                 Error);
    // ldd < N
    EXPECT_THROW(cuda::gemm(p, true, 4, cuda::MatRef{p, 8, false}, cuda::MatRef{p, 8, false}, 8, 8, 8, 1, 0, nullptr),
                 Error);
    // a bias with an fp32 output
    EXPECT_THROW(cuda::gemm(p, true, 8, cuda::MatRef{p, 8, false}, cuda::MatRef{p, 8, false}, 8, 8, 8, 1, 0, p),
                 Error);
}
#endif
