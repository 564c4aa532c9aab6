// test_cuda_cross_entropy.cpp: cuda::lm_head_cross_entropy (LM head + cross-entropy, chunked) against
// its CPU twin, the composition cpu::linear_forward -> cross_entropy_forward / _backward ->
// linear_backward. Random bf16-rounded inputs at several shapes (odd vocabularies, ragged last
// chunks, ignored targets), losses poisoned, gradients starting from random values (+=). Reference:
// the composition in double. Naive bf16 computation: the composition in float with the dlogits
// rounded to bf16 (the kernel stores them in bf16, as the operand of its backward GEMMs) and dhidden
// rounded to bf16. Rule: kernel error <= 2 x naive error + a small floor; no NaN.
#include <gtest/gtest.h>

#include "gpu_test_util.h"
#include "host/error.h"

#ifdef RUSCA_CUDA
#include <cmath>
#include <string>
#include <vector>

#include "cuda/cross_entropy.cuh"
#include "host/cpu/ops.h"

using namespace rusca;
using namespace rusca::gputest;
using bf16 = __nv_bfloat16;

namespace {

struct Case {
    int N, C, V, chunk;
};
// Ragged chunks (37 = 4 x 8 + 5), odd V (rows of the bf16 dlogits 4V bytes apart), one chunk.
const Case kCases[] = {{37, 72, 1001, 0}, {37, 72, 1001, 8}, {130, 136, 2053, 48}, {64, 64, 512, 0}};

struct Inputs {
    std::vector<float> hidden, W, dloss, dh0, dW0;
    std::vector<int> targets;
};

Inputs make_inputs(const Case& c, uint32_t seed) {
    Inputs in;
    in.hidden = round_bf16(random_vector((size_t)c.N * c.C, seed));
    in.W = round_bf16(random_vector((size_t)c.V * c.C, seed + 1, 0.5f));
    in.dloss = random_vector(c.N, seed + 2);
    in.dh0 = round_bf16(random_vector((size_t)c.N * c.C, seed + 3, 0.1f));
    in.dW0 = random_vector((size_t)c.V * c.C, seed + 4, 1e-3f);
    std::mt19937 gen(seed + 5);
    for (int n = 0; n < c.N; n++) in.targets.push_back(n % 7 == 3 ? -1 : (int)(gen() % c.V));
    return in;
}

// The CPU twin: forward, and (with dh, dW) the backward of sum dloss * losses, added into dh, dW.
// round_dlogits: the naive bf16 model (dlogits rounded to bf16 before the backward matmuls).
template <typename Real>
void twin(std::vector<Real>& losses, std::vector<Real>* dh, std::vector<Real>* dW, const Case& c,
          const Inputs& in, bool round_dlogits) {
    const std::vector<Real> h(in.hidden.begin(), in.hidden.end()), W(in.W.begin(), in.W.end());
    const std::vector<Real> dloss(in.dloss.begin(), in.dloss.end());
    std::vector<Real> logits((size_t)c.N * c.V), dlogits((size_t)c.N * c.V, 0);
    losses.assign(c.N, 0);
    cpu::linear_forward<Real>(logits.data(), h.data(), W.data(), nullptr, c.N, c.C, c.V);
    cpu::cross_entropy_forward<Real>(losses.data(), logits.data(), in.targets.data(), c.N, c.V);
    if (!dh) return;
    cpu::cross_entropy_backward<Real>(dlogits.data(), logits.data(), in.targets.data(), dloss.data(), c.N, c.V);
    if (round_dlogits)
        for (Real& x : dlogits) x = (Real)round_bf16((float)x);
    cpu::linear_backward<Real>(dh->data(), dW->data(), nullptr, dlogits.data(), h.data(), W.data(), c.N, c.C, c.V);
}

std::string label(const Case& c) {
    return "N=" + std::to_string(c.N) + " C=" + std::to_string(c.C) + " V=" + std::to_string(c.V) +
           " chunk=" + std::to_string(c.chunk);
}

}  // namespace

TEST(CudaCrossEntropy, ForwardBackwardMatchesCpuTwin) {
    SKIP_WITHOUT_GPU();
    uint32_t seed = 1;
    for (const Case& c : kCases) {
        const std::string what = label(c);
        const Inputs in = make_inputs(c, seed += 10);

        std::vector<double> loss_ref, dh_ref = to_double(in.dh0), dW_ref = to_double(in.dW0);
        twin<double>(loss_ref, &dh_ref, &dW_ref, c, in, false);
        std::vector<float> loss_naive, dh_naive = in.dh0, dW_naive = in.dW0;
        twin<float>(loss_naive, &dh_naive, &dW_naive, c, in, true);
        dh_naive = round_bf16(dh_naive);

        cuda::DeviceBuffer<bf16> d_h(to_device_bf16(in.hidden)), d_W(to_device_bf16(in.W));
        cuda::DeviceBuffer<bf16> d_dh(to_device_bf16(in.dh0));
        cuda::DeviceBuffer<float> d_dW(in.dW0), d_dloss(in.dloss), d_losses(c.N);
        cuda::DeviceBuffer<int> d_targets(in.targets);
        d_losses.poison();
        cuda::lm_head_cross_entropy(d_losses.data(), d_dh.data(), d_dW.data(), d_h.data(), d_W.data(),
                                    d_targets.data(), d_dloss.data(), c.N, c.C, c.V, c.chunk);
        const std::vector<float> losses = d_losses.download();
        expect_bf16_rule(losses, loss_ref, loss_naive, 1e-5 * (1 + max_abs(loss_ref)), what + " losses");
        for (int n = 0; n < c.N; n++) {
            if (in.targets[n] < 0) {
                EXPECT_EQ(losses[n], 0.0f) << what << " ignored target " << n;
            }
        }
        expect_bf16_rule(from_bf16(d_dh.download()), dh_ref, dh_naive, 1e-6 * max_abs(dh_ref), what + " dhidden");
        expect_bf16_rule(d_dW.download(), dW_ref, dW_naive, 1e-5 * max_abs(dW_ref), what + " dW");

        // Forward only: the same losses, nothing else needed.
        d_losses.poison();
        cuda::lm_head_cross_entropy(d_losses.data(), nullptr, nullptr, d_h.data(), d_W.data(), d_targets.data(),
                                    nullptr, c.N, c.C, c.V, c.chunk);
        EXPECT_TRUE(d_losses.download() == losses) << what << ": forward-only losses differ";
    }
}

// Only one of the two gradients: the other pointer is null and the result is the same.
TEST(CudaCrossEntropy, OneGradientAtATime) {
    SKIP_WITHOUT_GPU();
    const Case c{37, 72, 1001, 16};
    const Inputs in = make_inputs(c, 77);
    cuda::DeviceBuffer<bf16> d_h(to_device_bf16(in.hidden)), d_W(to_device_bf16(in.W));
    cuda::DeviceBuffer<float> d_dloss(in.dloss), d_losses(c.N);
    cuda::DeviceBuffer<int> d_targets(in.targets);
    auto run = [&](bool want_dh, bool want_dW, std::vector<float>& dh, std::vector<float>& dW) {
        cuda::DeviceBuffer<bf16> d_dh(to_device_bf16(in.dh0));
        cuda::DeviceBuffer<float> d_dW(in.dW0);
        cuda::lm_head_cross_entropy(d_losses.data(), want_dh ? d_dh.data() : nullptr, want_dW ? d_dW.data() : nullptr,
                                    d_h.data(), d_W.data(), d_targets.data(), d_dloss.data(), c.N, c.C, c.V, c.chunk);
        dh = from_bf16(d_dh.download());
        dW = d_dW.download();
    };
    std::vector<float> dh_both, dW_both, dh_only, dW_untouched, dh_untouched, dW_only;
    run(true, true, dh_both, dW_both);
    run(true, false, dh_only, dW_untouched);
    run(false, true, dh_untouched, dW_only);
    EXPECT_TRUE(dh_only == dh_both);
    EXPECT_TRUE(dW_only == dW_both);
    EXPECT_TRUE(dW_untouched == in.dW0);
    EXPECT_TRUE(dh_untouched == in.dh0);
}

// Size and chunk checks happen before the GPU is touched, so this runs without one.
TEST(CudaCrossEntropy, BadArgumentsThrow) {
    EXPECT_THROW(cuda::lm_head_token_chunk(100, 1000, 12), Error);  // not a multiple of 8
    EXPECT_THROW(cuda::lm_head_token_chunk(100, 1000, -8), Error);
    EXPECT_EQ(cuda::lm_head_token_chunk(100, 1000, 16), 16);
    EXPECT_EQ(cuda::lm_head_token_chunk(100, 1000, 0), 100);    // default, capped at N
    EXPECT_EQ(cuda::lm_head_token_chunk(16384, 151936, 0), 1024);  // Qwen: 0.62 GB of fp32 logits
    float f = 0;
    int t = 0;
    bf16* p = reinterpret_cast<bf16*>(&f);  // never dereferenced: the checks come first
    EXPECT_THROW(cuda::lm_head_cross_entropy(&f, nullptr, nullptr, p, p, &t, nullptr, -1, 8, 8), Error);
    EXPECT_THROW(cuda::lm_head_cross_entropy(&f, nullptr, nullptr, p, p, &t, nullptr, 4, 8, 0), Error);
    EXPECT_THROW(cuda::lm_head_cross_entropy(&f, p, nullptr, p, p, &t, nullptr, 4, 8, 8), Error);  // no dloss
    EXPECT_THROW(cuda::lm_head_cross_entropy(&f, nullptr, nullptr, p, p, &t, nullptr, 4, 8, 8, 12), Error);
}
#endif
