// test_cuda_kv_attention.cpp: attention over a two-segment KV cache on the GPU
// (cuda/kv_attention.cuh) against the CPU twin cpu::kv_attention_forward, with the bf16 rule of
// gpu_test_util.h: reference = the twin in double on bf16-rounded inputs; the kernel's max error may
// be at most 2x that of the twin in float on the same inputs with outputs rounded to bf16, plus
// 1e-5. Shapes cover no prefix, short and long contexts (one split and many), several query rows,
// MHA and GQA, D 64 and 128 (16-byte path), other D (generic path), groups above 8 (sliced), and
// the batched launcher with shared prefixes scattered in pools. Outputs are poisoned first.
#include <gtest/gtest.h>

#include "gpu_test_util.h"

#ifdef RUSCA_CUDA
#include <algorithm>
#include <string>
#include <vector>

#include "cuda/kv_attention.cuh"
#include "host/cpu/ops.h"
#include "host/error.h"

using namespace rusca;
using cuda::DeviceBuffer;
using gputest::from_bf16;
using gputest::round_bf16;
using gputest::to_device_bf16;

namespace {

using bf16 = __nv_bfloat16;

// q is drawn wider than k and v so the softmax is far from flat.
std::vector<float> rand_bf16(size_t n, uint32_t seed, float scale = 1.0f) {
    return round_bf16(gputest::random_vector(n, seed, scale));
}

// Reference (double) and naive (float, output rounded to bf16) of the CPU twin for one sequence;
// the pointers are into bf16-rounded host arrays.
struct Twin {
    std::vector<double> ref;
    std::vector<float> naive;
};
Twin cpu_twin(const float* q, const float* pk, const float* pv, int Lp, const float* ok, const float* ov, int Lo,
              int n, int Hq, int Hkv, int D) {
    const size_t out_n = size_t(n) * Hq * D, p_n = size_t(Lp) * Hkv * D, o_n = size_t(Lo) * Hkv * D;
    Twin t{std::vector<double>(out_n), std::vector<float>(out_n)};
    const std::vector<double> qd(q, q + out_n), pkd(pk, pk + p_n), pvd(pv, pv + p_n), okd(ok, ok + o_n),
        ovd(ov, ov + o_n);
    cpu::kv_attention_forward<double>(t.ref.data(), qd.data(), pkd.data(), pvd.data(), Lp, okd.data(), ovd.data(),
                                      Lo, n, Hq, Hkv, D);
    cpu::kv_attention_forward<float>(t.naive.data(), q, pk, pv, Lp, ok, ov, Lo, n, Hq, Hkv, D);
    t.naive = round_bf16(t.naive);
    return t;
}

void expect_within_rule(const std::vector<float>& gpu, const std::vector<double>& ref, const std::vector<float>& naive,
                        const std::string& what) {
    ASSERT_EQ(gpu.size(), ref.size());
    for (size_t i = 0; i < gpu.size(); i++) ASSERT_FALSE(std::isnan(gpu[i])) << what << ": NaN at " << i;
    const double err = gputest::max_abs_diff(gpu, ref), naive_err = gputest::max_abs_diff(naive, ref);
    EXPECT_LE(err, 2 * naive_err + 1e-5) << what << " (naive bf16 error " << naive_err << ")";
}

// One sequence through cuda::kv_attention_forward. `misalign` shifts every K/V pointer by that
// many elements inside a larger buffer (2: 4-byte aligned only, so the generic kernel runs).
void check_single(int Lp, int Lo, int n, int Hq, int Hkv, int D, int misalign = 0) {
    const std::string what = "Lp=" + std::to_string(Lp) + " Lo=" + std::to_string(Lo) + " n=" + std::to_string(n) +
                             " Hq=" + std::to_string(Hq) + " Hkv=" + std::to_string(Hkv) + " D=" + std::to_string(D) +
                             " misalign=" + std::to_string(misalign);
    const size_t p_n = size_t(Lp) * Hkv * D + misalign, o_n = size_t(Lo) * Hkv * D + misalign;
    const std::vector<float> q = rand_bf16(size_t(n) * Hq * D, 1, 3.0f), pk = rand_bf16(p_n, 2), pv = rand_bf16(p_n, 3),
                             ok = rand_bf16(o_n, 4), ov = rand_bf16(o_n, 5);
    const Twin twin = cpu_twin(q.data(), pk.data() + misalign, pv.data() + misalign, Lp, ok.data() + misalign,
                               ov.data() + misalign, Lo, n, Hq, Hkv, D);

    DeviceBuffer<bf16> d_q(to_device_bf16(q)), d_pk(to_device_bf16(pk)), d_pv(to_device_bf16(pv)),
        d_ok(to_device_bf16(ok)), d_ov(to_device_bf16(ov)), d_out(twin.ref.size());
    d_out.poison();
    cuda::kv_attention_forward(d_out.data(), d_q.data(), Lp ? d_pk.data() + misalign : nullptr,
                               Lp ? d_pv.data() + misalign : nullptr, Lp, d_ok.data() + misalign,
                               d_ov.data() + misalign, Lo, n, Hq, Hkv, D);
    const std::vector<float> gpu = from_bf16(d_out.download());
    expect_within_rule(gpu, twin.ref, twin.naive, what);

    // Deterministic: a second run gives the same bits.
    d_out.poison();
    cuda::kv_attention_forward(d_out.data(), d_q.data(), Lp ? d_pk.data() + misalign : nullptr,
                               Lp ? d_pv.data() + misalign : nullptr, Lp, d_ok.data() + misalign,
                               d_ov.data() + misalign, Lo, n, Hq, Hkv, D);
    EXPECT_EQ(from_bf16(d_out.download()), gpu) << what << ": not deterministic";
}

}  // namespace

TEST(CudaKvAttention, MatchesCpuTwin) {
    SKIP_WITHOUT_GPU();
    struct Lengths {
        int Lp, Lo, n;
    };
    for (const Lengths& l : {Lengths{0, 1, 1}, Lengths{7, 5, 1}, Lengths{100, 37, 3}, Lengths{4000, 300, 1}})
        for (const auto& [Hq, Hkv] : {std::pair{4, 4}, std::pair{8, 2}})
            for (int D : {64, 128}) check_single(l.Lp, l.Lo, l.n, Hq, Hkv, D);
}

TEST(CudaKvAttention, GenericHeadDimsGroupsAndAlignment) {
    SKIP_WITHOUT_GPU();
    check_single(100, 37, 3, 8, 2, 96);    // generic kernel, D % 8 == 0
    check_single(300, 37, 2, 6, 2, 256);   // largest D, two splits
    check_single(7, 5, 2, 4, 1, 34);       // D % 4 == 2
    check_single(700, 37, 3, 24, 2, 64);   // group of 12: two head slices per kv head
    check_single(100, 300, 3, 8, 2, 64, 2);  // pointers only 4-byte aligned: generic kernel
    check_single(0, 1000, 5, 14, 2, 64);   // Qwen2-0.5B's heads, no prefix, own rows only
}

TEST(CudaKvAttention, BatchedMatchesPerSequenceTwin) {
    SKIP_WITHOUT_GPU();
    // Six sequences over pools: two share a prefix, one has none, lengths on both sides of a split.
    const int Hq = 8, Hkv = 2, B = 6, prefix_rows = 1100, own_rows = 1500;  // every range below fits
    const std::vector<int> prefix_start = {0, 20, 20, 400, 0, 500}, prefix_len = {0, 300, 300, 17, 513, 256};
    const std::vector<int> own_start = {1000, 0, 30, 100, 600, 1200}, own_len_base = {0, 5, 40, 290, 2, 200};
    for (int D : {64, 128, 96}) {
        for (int n : {1, 2}) {
            std::vector<int> own_len = own_len_base;
            for (int& L : own_len) L += n;  // the last n own rows are the queries'
            const size_t row = size_t(Hkv) * D;
            const std::vector<float> pk = rand_bf16(prefix_rows * row, 11), pv = rand_bf16(prefix_rows * row, 12),
                                     ok = rand_bf16(own_rows * row, 13), ov = rand_bf16(own_rows * row, 14),
                                     q = rand_bf16(size_t(B) * n * Hq * D, 15, 3.0f);
            int true_max = 0;
            for (int b = 0; b < B; b++) true_max = std::max(true_max, prefix_len[b] + own_len[b]);
            std::vector<double> ref;
            std::vector<float> naive;
            for (int b = 0; b < B; b++) {
                const Twin t = cpu_twin(&q[size_t(b) * n * Hq * D], &pk[prefix_start[b] * row],
                                        &pv[prefix_start[b] * row], prefix_len[b], &ok[own_start[b] * row],
                                        &ov[own_start[b] * row], own_len[b], n, Hq, Hkv, D);
                ref.insert(ref.end(), t.ref.begin(), t.ref.end());
                naive.insert(naive.end(), t.naive.begin(), t.naive.end());
            }
            DeviceBuffer<bf16> d_q(to_device_bf16(q)), d_pk(to_device_bf16(pk)), d_pv(to_device_bf16(pv)),
                d_ok(to_device_bf16(ok)), d_ov(to_device_bf16(ov)), d_out(ref.size());
            DeviceBuffer<int> d_ps(prefix_start), d_pl(prefix_len), d_os(own_start), d_ol(own_len);
            std::vector<float> first;
            // max_len: exact; an overestimate (empty splits); an underestimate (the last split takes
            // the rest; one split only: no scratch). Exact results in every case.
            for (int max_len : {true_max, true_max + 700, true_max - 400, 1}) {
                const std::string what = "batched D=" + std::to_string(D) + " n=" + std::to_string(n) +
                                         " max_len=" + std::to_string(max_len);
                const size_t bytes = cuda::kv_attention_workspace_bytes(B, n, max_len, Hq, D);
                for (bool own_workspace : {false, true}) {
                    DeviceBuffer<char> ws(own_workspace ? bytes : 0);
                    d_out.poison();
                    cuda::kv_attention_forward_batched(d_out.data(), d_q.data(), d_pk.data(), d_pv.data(), d_ps.data(),
                                                       d_pl.data(), d_ok.data(), d_ov.data(), d_os.data(), d_ol.data(),
                                                       B, n, max_len, Hq, Hkv, D, own_workspace ? ws.data() : nullptr,
                                                       bytes);
                    const std::vector<float> gpu = from_bf16(d_out.download());
                    expect_within_rule(gpu, ref, naive, what);
                    if (max_len == true_max && !own_workspace) first = gpu;
                    if (max_len == true_max + 700) {
                        EXPECT_EQ(gpu, first) << what << ": depends on max_len";
                    }
                }
            }
        }
    }
}

TEST(CudaKvAttention, RejectsBadShapes) {
    SKIP_WITHOUT_GPU();
    DeviceBuffer<bf16> buf(4096);
    bf16* p = buf.data();
    EXPECT_THROW(cuda::kv_attention_forward(p, p, p, p, 1, p, p, 1, 1, 6, 4, 64), Error);   // Hq % Hkv
    EXPECT_THROW(cuda::kv_attention_forward(p, p, p, p, 1, p, p, 1, 1, 4, 4, 63), Error);   // odd D
    EXPECT_THROW(cuda::kv_attention_forward(p, p, p, p, 1, p, p, 1, 1, 4, 4, 258), Error);  // D > 256
    EXPECT_THROW(cuda::kv_attention_forward(p, p, p, p, 1, p, p, 1, 2, 4, 4, 64), Error);   // Lo < n
    EXPECT_THROW(cuda::kv_attention_forward(p, p, nullptr, p, 1, p, p, 1, 1, 4, 4, 64), Error);  // null prefix
    EXPECT_THROW(cuda::kv_attention_forward(p, p, p + 1, p + 1, 1, p + 1, p + 1, 1, 1, 1, 1, 64), Error);  // 2-byte aligned
    EXPECT_THROW(cuda::kv_attention_forward_batched(p, p, p, p, nullptr, nullptr, p, p, nullptr, nullptr, 1, 1, 8,
                                                    4, 4, 64),
                 Error);  // missing length arrays
    EXPECT_THROW(cuda::kv_attention_forward_batched(p, p, p, p, nullptr, nullptr, p, p, nullptr, nullptr, 1, 1, 0,
                                                    4, 4, 64),
                 Error);  // max_len < 1
}
#endif
