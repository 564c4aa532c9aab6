// test_emu_engine.cpp: the SIMT emulator's execution model (emulator build only): indices, barriers,
// warp collectives, limits, and that each deliberately broken kernel is caught the way it should be:
// a missing __syncthreads by schedule fuzzing, a missing cp.async wait by poison, an out-of-bounds
// copy by the bounds check, a divergent barrier or deadlock by a report naming file:line, a warp
// collective with a wrong mask by a clear refusal.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/device_buffer.h"
#include "cuda/launch.cuh"
#include "cuda/ptx.cuh"
#include "gpu_test_util.h"

using namespace rusca;
using cuda::DeviceBuffer;

namespace {

// The error text of `f` (a Fault or rusca::Error), or "" when it does not throw.
template <class F>
std::string error_of(F f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

__global__ void indices_kernel(int* out) {
    const int block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const int thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    out[block * blockDim.x * blockDim.y * blockDim.z + thread] = block * 10000 + thread;
}

// Tree sum in shared memory: correct only because of its barriers.
__global__ void block_sum_kernel(float* out, const float* in) {
    __shared__ float s[256];
    s[threadIdx.x] = in[blockIdx.x * 256 + threadIdx.x];
    __syncthreads();
    for (int half = 128; half > 0; half /= 2) {
        if (int(threadIdx.x) < half) s[threadIdx.x] += s[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

// The same with the barrier inside the loop missing: a race.
__global__ void block_sum_missing_barrier_kernel(float* out, const float* in) {
    __shared__ float s[256];
    s[threadIdx.x] = in[blockIdx.x * 256 + threadIdx.x];
    __syncthreads();
    for (int half = 128; half > 0; half /= 2)
        if (int(threadIdx.x) < half) s[threadIdx.x] += s[threadIdx.x + half];
    if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

__global__ void warp_ops_kernel(int* out) {
    const int lane = threadIdx.x % 32;
    int v = lane + 1, sum = v;
    for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    out[threadIdx.x * 6 + 0] = sum;
    out[threadIdx.x * 6 + 1] = __shfl_up_sync(0xffffffffu, v, 3);
    out[threadIdx.x * 6 + 2] = __shfl_down_sync(0xffffffffu, v, 5, 16);
    out[threadIdx.x * 6 + 3] = __shfl_sync(0xffffffffu, v, 7);
    out[threadIdx.x * 6 + 4] = int(__ballot_sync(0xffffffffu, lane % 3 == 0));
    out[threadIdx.x * 6 + 5] = __any_sync(0xffffffffu, lane == 31) * 10 + __all_sync(0xffffffffu, lane < 31);
    // A source lane that differs per lane (a rotation): each lane's own argument counts.
    out[64 * 6 + threadIdx.x] = __shfl_sync(0xffffffffu, v, (lane + 1) % 32);
}

std::vector<float> block_sums(bool with_barriers, const DeviceBuffer<float>& in, int blocks) {
    DeviceBuffer<float> out(blocks);
    if (with_barriers) LAUNCH_KERNEL(block_sum_kernel, blocks, 256, 0, nullptr, out.data(), in.data());
    else LAUNCH_KERNEL(block_sum_missing_barrier_kernel, blocks, 256, 0, nullptr, out.data(), in.data());
    return out.download();
}

// cp.async of one float per thread into shared memory, then a neighbour's value is read.
template <bool WAIT>
__global__ void cp_async_kernel(float* out, const float* in) {
    float* s = reinterpret_cast<float*>(cuda::dynamic_smem());
    cuda::cp_async_4(s + threadIdx.x, in + threadIdx.x, true);
    cuda::cp_async_commit();
    if (WAIT) cuda::cp_async_wait<0>();
    __syncthreads();
    out[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
    __syncthreads();  // no thread exits (landing its copies late) before every thread has read
}

__global__ void cp_async_oob_kernel(float* out, const float* in, int n) {
    float* s = reinterpret_cast<float*>(cuda::dynamic_smem());
    cuda::cp_async_4(s + threadIdx.x, in + n + threadIdx.x, true);  // reads past the end of `in`
    cuda::cp_async_commit();
    cuda::cp_async_wait<0>();
    out[threadIdx.x] = s[threadIdx.x];
}

__global__ void divergent_barrier_kernel(int* out) {
    if (threadIdx.x < 32) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 1;
}

// Lane 0 waits at the block barrier while the rest of its warp waits for it at __syncwarp.
__global__ void deadlock_kernel(int* out) {
    if (threadIdx.x == 0) __syncthreads();
    else __syncwarp();
    out[threadIdx.x] = 1;
}

// Lane 20 passes a mask that leaves it out.
__global__ void mask_without_caller_kernel(int* out) {
    out[threadIdx.x] = __shfl_sync(threadIdx.x < 16 || threadIdx.x == 20 ? 0x0000ffffu : 0xffff0000u, 1, 0);
}

// Lanes 0-15 shuffle with a mask that names lanes 16-31, which never arrive (they exit).
__global__ void mask_with_exited_lanes_kernel(int* out) {
    if (threadIdx.x >= 16) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, int(threadIdx.x), 1);
}

// A half-warp mask whose xor partner lies outside the mask.
__global__ void shuffle_outside_mask_kernel(int* out) {
    if (threadIdx.x < 16) out[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, int(threadIdx.x), 16);
}

__global__ void smem_kernel(int* out) {
    unsigned char* s = cuda::dynamic_smem();
    s[threadIdx.x] = 1;
    out[threadIdx.x] = s[threadIdx.x];
}

__global__ void add_one_kernel(float* x, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += 1.0f;
}

}  // namespace

TEST(EmuEngine, ThreadAndBlockIndices) {
    const dim3 grid(3, 2, 2), block(8, 4, 2);
    DeviceBuffer<int> out(12 * 64);
    LAUNCH_KERNEL(indices_kernel, grid, block, 0, nullptr, out.data());
    std::vector<int> got = out.download();
    for (int b = 0; b < 12; b++)
        for (int t = 0; t < 64; t++) ASSERT_EQ(got[b * 64 + t], b * 10000 + t);
}

TEST(EmuEngine, BarriersMakeAReductionScheduleIndependent) {
    const int blocks = 3;
    std::vector<float> in = gputest::random_vector(blocks * 256, 1);
    DeviceBuffer<float> d_in(in);
    gputest::expect_schedule_independent([&] { return block_sums(true, d_in, blocks); }, "block_sum_kernel");
    std::vector<float> got = block_sums(true, d_in, blocks);
    for (int b = 0; b < blocks; b++) {
        double ref = 0;
        for (int i = 0; i < 256; i++) ref += in[b * 256 + i];
        EXPECT_NEAR(got[b], ref, 1e-4);
    }
}

TEST(EmuEngine, MissingBarrierIsCaughtBySchedules) {
    const int blocks = 3;
    DeviceBuffer<float> d_in(gputest::random_vector(blocks * 256, 2));
    emu::set_schedule(emu::Schedule::Forward);
    const std::vector<float> forward = block_sums(false, d_in, blocks);
    emu::set_schedule(emu::Schedule::Reverse);
    const std::vector<float> reverse = block_sums(false, d_in, blocks);
    emu::set_schedule(emu::Schedule::Forward);
    EXPECT_NE(forward, reverse) << "the race of a missing __syncthreads went unseen";
}

TEST(EmuEngine, WarpCollectives) {
    DeviceBuffer<int> out(64 * 7);
    LAUNCH_KERNEL(warp_ops_kernel, 1, 64, 0, nullptr, out.data());
    std::vector<int> got = out.download();
    unsigned ballot = 0;
    for (int l = 0; l < 32; l += 3) ballot |= 1u << l;
    for (int t = 0; t < 64; t++) {
        const int lane = t % 32, v = lane + 1;
        EXPECT_EQ(got[t * 6 + 0], 32 * 33 / 2);
        EXPECT_EQ(got[t * 6 + 1], lane >= 3 ? v - 3 : v);
        EXPECT_EQ(got[t * 6 + 2], lane % 16 + 5 < 16 ? v + 5 : v);
        EXPECT_EQ(got[t * 6 + 3], 8);
        EXPECT_EQ(unsigned(got[t * 6 + 4]), ballot);
        EXPECT_EQ(got[t * 6 + 5], 10);
        EXPECT_EQ(got[64 * 6 + t], (lane + 1) % 32 + 1) << "per-lane source, lane " << lane;
    }
}

TEST(EmuEngine, CpAsyncLandsAtTheWait) {
    std::vector<float> in = gputest::random_vector(64, 3);
    DeviceBuffer<float> d_in(in), out(64);
    LAUNCH_KERNEL(cp_async_kernel<true>, 1, 64, 64 * sizeof(float), nullptr, out.data(), d_in.data());
    std::vector<float> got = out.download();
    for (int i = 0; i < 64; i++) EXPECT_EQ(got[i], in[(i + 1) % 64]);
}

TEST(EmuEngine, MissingCpAsyncWaitReadsPoison) {
    DeviceBuffer<float> d_in(gputest::random_vector(64, 4)), out(64);
    LAUNCH_KERNEL(cp_async_kernel<false>, 1, 64, 64 * sizeof(float), nullptr, out.data(), d_in.data());
    for (float x : out.download()) EXPECT_TRUE(std::isnan(x)) << "a read before cp.async.wait_group saw data";
}

TEST(EmuEngine, OutOfBoundsCopyIsRefused) {
    DeviceBuffer<float> d_in(64), out(64);
    const std::string err = error_of(
        [&] { LAUNCH_KERNEL(cp_async_oob_kernel, 1, 64, 64 * sizeof(float), nullptr, out.data(), d_in.data(), 64); });
    EXPECT_TRUE(has(err, "cp.async source") && has(err, "not inside one live device allocation")) << err;
    EXPECT_TRUE(has(err, "test_emu_engine.cpp")) << "the fault names the launch site: " << err;
    std::vector<float> host(65);
    EXPECT_TRUE(has(error_of([&] { cudaMemcpy(host.data(), d_in.data(), 65 * sizeof(float), cudaMemcpyDeviceToHost); }),
                    "cudaMemcpy source"));
}

TEST(EmuEngine, DivergentBarrierIsReportedWithItsLines) {
    DeviceBuffer<int> out(64);
    const std::string err = error_of([&] { LAUNCH_KERNEL(divergent_barrier_kernel, 1, 64, 0, nullptr, out.data()); });
    EXPECT_TRUE(has(err, "divergent __syncthreads")) << err;
    EXPECT_TRUE(has(err, "threads 0-31") && has(err, "threads 32-63")) << err;
    EXPECT_TRUE(has(err, "test_emu_engine.cpp:")) << err;
}

TEST(EmuEngine, DeadlockIsReportedWithEachWaitingThread) {
    DeviceBuffer<int> out(64);
    const std::string err = error_of([&] { LAUNCH_KERNEL(deadlock_kernel, 1, 64, 0, nullptr, out.data()); });
    EXPECT_TRUE(has(err, "deadlock")) << err;
    EXPECT_TRUE(has(err, "__syncthreads at") && has(err, "__syncwarp at")) << err;
    EXPECT_TRUE(has(err, "test_emu_engine.cpp:")) << err;
}

TEST(EmuEngine, WrongWarpMasksAreRefused) {
    DeviceBuffer<int> out(32);
    std::string err = error_of([&] { LAUNCH_KERNEL(mask_without_caller_kernel, 1, 32, 0, nullptr, out.data()); });
    EXPECT_TRUE(has(err, "does not include the calling lane 20") || has(err, "lanes that disagree")) << err;
    err = error_of([&] { LAUNCH_KERNEL(mask_with_exited_lanes_kernel, 1, 32, 0, nullptr, out.data()); });
    EXPECT_TRUE(has(err, "exited")) << err;
    err = error_of([&] { LAUNCH_KERNEL(shuffle_outside_mask_kernel, 1, 32, 0, nullptr, out.data()); });
    EXPECT_TRUE(has(err, "not in the mask")) << err;
}

TEST(EmuEngine, LaunchLimitsAsOnAnH200) {
    DeviceBuffer<int> out(1024);
    EXPECT_TRUE(has(error_of([&] { LAUNCH_KERNEL(smem_kernel, 1, 1025, 0, nullptr, out.data()); }),
                    "cudaErrorInvalidConfiguration"));
    EXPECT_TRUE(has(error_of([&] { LAUNCH_KERNEL(smem_kernel, 1, 32, 64 * 1024, nullptr, out.data()); }),
                    "cudaErrorInvalidValue"));
    EXPECT_EQ(cudaFuncSetAttribute(smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 * 1024),
              cudaErrorInvalidValue);
    cudaGetLastError();
    ASSERT_EQ(cudaFuncSetAttribute(smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024), cudaSuccess);
    EXPECT_EQ(error_of([&] { LAUNCH_KERNEL(smem_kernel, 1, 32, 227 * 1024, nullptr, out.data()); }), "");
    cudaDeviceProp p;
    ASSERT_EQ(cudaGetDeviceProperties(&p, 0), cudaSuccess);
    EXPECT_TRUE(has(p.name, "emulator")) << p.name;
    EXPECT_EQ(p.major, 9);
}

TEST(EmuEngine, GraphsReplayCapturedWorkAndRefuseIllegalCalls) {
    cudaStream_t s;
    ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
    DeviceBuffer<float> x(std::vector<float>(100, 0.0f));
    ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    LAUNCH_KERNEL(add_one_kernel, 1, 128, 0, s, x.data(), 100);
    LAUNCH_KERNEL(add_one_kernel, 1, 128, 0, s, x.data(), 100);
    cudaGraph_t graph = nullptr;
    ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
    EXPECT_EQ(x.download(), std::vector<float>(100, 0.0f)) << "capture must not run the work";
    cudaGraphExec_t exec = nullptr;
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    cudaGraphDestroy(graph);
    ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
    EXPECT_EQ(x.download(), std::vector<float>(100, 4.0f));
    cudaGraphExecDestroy(exec);

    // cudaMalloc and synchronous copies are refused during capture, and the capture is invalidated.
    ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    void* p = nullptr;
    EXPECT_EQ(cudaMalloc(&p, 16), cudaErrorStreamCaptureUnsupported);
    EXPECT_EQ(cudaStreamSynchronize(s), cudaErrorStreamCaptureUnsupported);
    EXPECT_EQ(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);
    EXPECT_EQ(graph, nullptr);
    cudaGetLastError();
    cudaStreamDestroy(s);
}

TEST(EmuEngine, Memcpy3DCopiesTheBoxItNames) {
    // A 4 x 3 x 2 box (bytes x rows x planes) out of a 10-byte-pitch, 5-row-plane source.
    const int pitch = 10, rows = 5, planes = 3;
    std::vector<unsigned char> src(pitch * rows * planes);
    for (size_t i = 0; i < src.size(); i++) src[i] = (unsigned char)i;
    DeviceBuffer<unsigned char> d_src(src), d_dst(std::vector<unsigned char>(src.size(), 0));
    cudaMemcpy3DParms p = {};
    p.srcPtr = make_cudaPitchedPtr(d_src.data(), pitch, pitch, rows);
    p.dstPtr = make_cudaPitchedPtr(d_dst.data(), pitch, pitch, rows);
    p.srcPos = make_cudaPos(1, 1, 0);
    p.dstPos = make_cudaPos(2, 0, 1);
    p.extent = make_cudaExtent(4, 3, 2);
    p.kind = cudaMemcpyDeviceToDevice;
    ASSERT_EQ(cudaMemcpy3DAsync(&p, nullptr), cudaSuccess);
    std::vector<unsigned char> got = d_dst.download(), want(src.size(), 0);
    for (int z = 0; z < 2; z++)
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 4; x++)
                want[((1 + z) * rows + y) * pitch + 2 + x] = src[(z * rows + 1 + y) * pitch + 1 + x];
    EXPECT_EQ(got, want);
}

// The sanitizer builds (make emu-tsan, make emu-asan) are the emulator's racecheck and memcheck:
// what the schedules and bounds checks above cannot see, the sanitizers report (and end the run).
#if defined(__SANITIZE_THREAD__)
TEST(EmuSanitizer, MissingBarrierIsAThreadSanitizerReport) {
    testing::FLAGS_gtest_death_test_style = "threadsafe";
    DeviceBuffer<float> d_in(gputest::random_vector(256, 2));
    EXPECT_DEATH(block_sums(false, d_in, 1), "ThreadSanitizer: data race");
}
#endif
#if defined(__SANITIZE_ADDRESS__)
namespace {
__global__ void oob_load_kernel(float* out, const float* in, int n) {
    out[0] = in[n + threadIdx.x];  // past the end of `in`
}
}  // namespace

TEST(EmuSanitizer, OutOfBoundsLoadIsAnAddressSanitizerReport) {
    testing::FLAGS_gtest_death_test_style = "threadsafe";
    DeviceBuffer<float> in(100), out(1);
    EXPECT_DEATH(LAUNCH_KERNEL(oob_load_kernel, 1, 32, 0, nullptr, out.data(), in.data(), 100),
                 "heap-buffer-overflow");
}
#endif
