// attention_bench.cu: times cuda::attention_forward / attention_backward with CUDA events: random
// (never zero) bf16 inputs made on the device, a few warm-up runs, then the median of `repeats` timed
// runs of each direction, reported as ms and TFLOP/s (causal FLOPs, see attention_bench.cuh).
// The backward accumulates into dq, dk, dv on every run (+= semantics); values stay bounded for any
// sensible number of repeats, and the timing does not depend on them.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "attention.cuh"
#include "attention_bench.cuh"
#include "common.cuh"
#include "launch.cuh"
#include "device_buffer.h"
#include "host/error.h"

namespace rusca::cuda {
namespace {

// x[i] = uniform in [-scale, scale) from a hash of (i, seed): cheap, reproducible, never all zeros.
__global__ void fill_uniform_kernel(__nv_bfloat16* x, size_t n, uint32_t seed, float scale) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ (uint32_t)(i >> 32) ^ seed * 0x9e3779b9u;
        h ^= h >> 16, h *= 0x85ebca6bu, h ^= h >> 13, h *= 0xc2b2ae35u, h ^= h >> 16;
        x[i] = __float2bfloat16(scale * ((h >> 8) * (2.0f / 16777216.0f) - 1.0f));
    }
}

void fill_uniform(DeviceBuffer<__nv_bfloat16>& x, uint32_t seed, float scale) {
    LAUNCH_KERNEL(fill_uniform_kernel, 1024, 256, 0, nullptr, x.data(), x.size(), seed, scale);
}

// A pair of CUDA events, destroyed even when a launch throws.
struct EventPair {
    cudaEvent_t start = nullptr, stop = nullptr;
    EventPair() {
        CUDA_CHECK(cudaEventCreate(&start));
        CUDA_CHECK(cudaEventCreate(&stop));
    }
    ~EventPair() {
        cudaEventDestroy(start);  // not checked: destructors must not throw
        cudaEventDestroy(stop);
    }
    EventPair(const EventPair&) = delete;
    EventPair& operator=(const EventPair&) = delete;
};

// Median milliseconds of `repeats` runs of fn() after `warmup` untimed runs.
template <typename Fn>
double median_ms(Fn fn, int warmup, int repeats) {
    for (int i = 0; i < warmup; i++) fn();
    EventPair ev;
    std::vector<float> ms(repeats);
    for (int i = 0; i < repeats; i++) {
        CUDA_CHECK(cudaEventRecord(ev.start));
        fn();
        CUDA_CHECK(cudaEventRecord(ev.stop));
        CUDA_CHECK(cudaEventSynchronize(ev.stop));
        CUDA_CHECK(cudaEventElapsedTime(&ms[i], ev.start, ev.stop));
    }
    std::sort(ms.begin(), ms.end());
    return repeats % 2 ? ms[repeats / 2] : 0.5 * (ms[repeats / 2 - 1] + ms[repeats / 2]);
}

}  // namespace

AttentionBenchResult bench_attention(int B, int T, int Hq, int Hkv, int D, int repeats) {
    check(repeats >= 1, "bench_attention: repeats must be at least 1");
    check(B >= 1 && T >= 1 && Hq >= 1 && Hkv >= 1 && D >= 1, "bench_attention: sizes must be positive");
    const size_t nq = (size_t)B * T * Hq * D, nk = (size_t)B * T * Hkv * D, nl = (size_t)B * Hq * T;
    DeviceBuffer<__nv_bfloat16> q(nq), k(nk), v(nk), out(nq), dout(nq), dq(nq), dk(nk), dv(nk);
    DeviceBuffer<float> lse(nl), delta(nl);
    fill_uniform(q, 1, 2.0f), fill_uniform(k, 2, 2.0f), fill_uniform(v, 3, 1.0f), fill_uniform(dout, 4, 1.0f);
    dq.zero(), dk.zero(), dv.zero();

    AttentionBenchResult r;
    r.B = B, r.T = T, r.Hq = Hq, r.Hkv = Hkv, r.D = D, r.repeats = repeats;
    r.forward_ms = median_ms(
        [&] { attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), B, T, Hq, Hkv, D); }, 3,
        repeats);
    r.backward_ms = median_ms(
        [&] {
            attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), out.data(),
                               lse.data(), delta.data(), B, T, Hq, Hkv, D);
        },
        3, repeats);
    const double fwd_flops = 2.0 * 2.0 * B * Hq * (double)T * T * D / 2.0;
    r.forward_tflops = fwd_flops / (r.forward_ms * 1e-3) / 1e12;
    r.backward_tflops = 2.5 * fwd_flops / (r.backward_ms * 1e-3) / 1e12;
    return r;
}

}  // namespace rusca::cuda
