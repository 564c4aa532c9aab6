// bench_kernels.cpp: the per-kernel GPU benchmarks (see bench_kernels.h).
#include "bench_kernels.h"

#include "host/error.h"

#ifndef RUSCA_CUDA
namespace rusca {
void bench_attention(const KernelBenchArgs&, int, int, int) { throw Error("bench attention needs a CUDA build"); }
void bench_grpo_loss(const KernelBenchArgs&, int, int, int) { throw Error("bench grpo-loss needs a CUDA build"); }
}  // namespace rusca
#else
#include <cuda_runtime.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "cuda/attention_bench.cuh"
#include "cuda/common.cuh"
#include "cuda/device_buffer.h"
#include "cuda/grpo_loss.cuh"
#include "host/bench_util.h"
#include "host/gpu.h"
#include "host/safetensors.h"

namespace rusca {

namespace {

std::vector<uint16_t> random_bf16(size_t n, float scale, uint32_t seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<uint16_t> v(n);
    for (uint16_t& x : v) x = f32_to_bf16(d(gen));
    return v;
}

}  // namespace

void bench_attention(const KernelBenchArgs& a, int B, int Hq, int Hkv) {
    require_gpu("bench attention");
    nlohmann::json rows = nlohmann::json::array();
    std::printf("bench attention: causal GQA, B=%d Hq=%d Hkv=%d, bf16 | %s\n", B, Hq, Hkv, gpu_name().c_str());
    std::printf("  %5s %4s | %10s %10s | %10s %10s | %s\n", "T", "D", "fwd TF/s", "torch", "bwd TF/s", "torch",
                "speedup fwd / bwd");
    for (int T : {1024, 4096})
        for (int D : {64, 128}) {
            cuda::AttentionBenchResult r = cuda::bench_attention(B, T, Hq, Hkv, D, a.repeats);
            nlohmann::json ours = {{"forward_ms", r.forward_ms}, {"backward_ms", r.backward_ms},
                                   {"forward_tflops", r.forward_tflops}, {"backward_tflops", r.backward_tflops}};
            char args[160];
            std::snprintf(args, sizeof(args), "--B %d --T %d --Hq %d --Hkv %d --D %d --repeats %d", B, T, Hq, Hkv, D,
                          a.repeats);
            nlohmann::json torch = a.no_pytorch ? nlohmann::json{{"error", "skipped"}}
                                                : run_python_json(a.python, "tools/bench_attention_torch.py", args);
            nlohmann::json row = {{"T", T}, {"D", D}, {"rusca", ours}, {"pytorch", torch}};
            const double tf = torch.value("forward_tflops", 0.0), tb = torch.value("backward_tflops", 0.0);
            std::printf("  %5d %4d | %10.1f %10.1f | %10.1f %10.1f | %.2fx / %.2fx\n", T, D, r.forward_tflops, tf,
                        r.backward_tflops, tb, tf > 0 ? r.forward_tflops / tf : 0.0, tb > 0 ? r.backward_tflops / tb : 0.0);
            rows.push_back(row);
        }
    write_bench_json({{"benchmark", "attention"}, {"gpu", gpu_name()}, {"B", B}, {"Hq", Hq}, {"Hkv", Hkv}, {"rows", rows}},
                     a.json_out);
}

void bench_grpo_loss(const KernelBenchArgs& a, int N, int C, int V) {
    require_gpu("bench grpo-loss");
    using bf16 = __nv_bfloat16;
    const int S = std::max(1, N / 256);
    std::vector<int> tokens(N), seq(N);
    std::vector<float> adv(N), old_logp(N), ref_logp(N), mask(N, 1.0f);
    std::mt19937 gen(1);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int i = 0; i < N; i++) {
        tokens[i] = int(gen() % V), seq[i] = i * S / N;
        adv[i] = nd(gen), old_logp[i] = -12.0f + 0.1f * nd(gen), ref_logp[i] = old_logp[i] + 0.05f * nd(gen);
    }
    cuda::DeviceBuffer<uint16_t> hidden(random_bf16(size_t(N) * C, 0.5f, 2)), W(random_bf16(size_t(V) * C, 0.02f, 3));
    cuda::DeviceBuffer<int> d_tokens(tokens), d_seq(seq);
    cuda::DeviceBuffer<float> d_adv(adv), d_old(old_logp), d_ref(ref_logp), d_mask(mask), logp(N);
    cuda::DeviceBuffer<uint16_t> dhidden(size_t(N) * C);
    cuda::DeviceBuffer<float> dW(size_t(V) * C);
    cpu::GrpoLossConfig cfg;
    auto run = [&] {
        return cuda::grpo_loss(logp.data(), reinterpret_cast<bf16*>(dhidden.data()), dW.data(),
                               reinterpret_cast<const bf16*>(hidden.data()), reinterpret_cast<const bf16*>(W.data()),
                               d_tokens.data(), d_adv.data(), d_old.data(), d_ref.data(), d_mask.data(), d_seq.data(), N,
                               C, V, S, 256, cfg);
    };
    run();  // warm-up: cuBLASLt handle, workspace, algorithm cache
    cudaMemPool_t pool;
    CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, 0));
    uint64_t zero = 0, high = 0;
    CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero));
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    std::vector<double> ms;
    for (int r = 0; r < a.repeats; r++) {
        CUDA_CHECK(cudaEventRecord(start));
        run();
        CUDA_CHECK(cudaEventRecord(stop));
        CUDA_CHECK(cudaEventSynchronize(stop));
        float t = 0;
        CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
        ms.push_back(t);
    }
    CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &high));
    CUDA_CHECK(cudaEventDestroy(start));
    CUDA_CHECK(cudaEventDestroy(stop));
    const double workspace = 32.0 * (1 << 20);  // cuBLASLt workspace (cuda/matmul.cu), allocated once
    nlohmann::json ours = {{"ms_median", median(ms)}, {"extra_memory_bytes", double(high) + workspace},
                           {"gradient_output_bytes", double(N) * C * 2 + double(V) * C * 4}};
    char args[128];
    std::snprintf(args, sizeof(args), "--tokens %d --hidden %d --vocab %d --repeats %d", N, C, V, a.repeats);
    nlohmann::json torch = a.no_pytorch ? nlohmann::json{{"error", "skipped"}}
                                        : run_python_json(a.python, "tools/bench_grpo_loss_torch.py", args);
    std::printf("bench grpo-loss: %d tokens, hidden %d, vocab %d, fwd+bwd | %s\n", N, C, V, gpu_name().c_str());
    std::printf("  rusca fused : %8.2f ms, %6.2f GB extra (scratch + cuBLASLt workspace)\n", median(ms),
                ours["extra_memory_bytes"].get<double>() / 1e9);
    if (torch.contains("ms_median"))
        std::printf("  torch naive : %8.2f ms, %6.2f GB extra\n", torch["ms_median"].get<double>(),
                    torch["extra_memory_bytes"].get<double>() / 1e9);
    else
        std::printf("  torch naive : unavailable (%s)\n", torch.value("error", std::string("?")).c_str());
    nlohmann::json result = {{"benchmark", "grpo-loss"}, {"gpu", gpu_name()}, {"tokens", N}, {"hidden", C},
                             {"vocab", V}, {"rusca", ours}, {"pytorch", torch}};
    add_ratio(result, ours, torch, "ms_median", false);
    write_bench_json(result, a.json_out);
}

}  // namespace rusca
#endif
