// test_cuda_common.cpp: checked CUDA calls report file and line; the device query agrees with the
// runtime; DeviceBuffer round-trips and poisons. GPU parts skip without a GPU.
#include <gtest/gtest.h>

#include "gpu_test_util.h"
#include "host/error.h"

#ifdef RUSCA_CUDA
#include "cuda/common.cuh"

using namespace rusca;

TEST(CudaCommon, CheckedCallsNameFileAndLine) {
    try {
        cuda::check_cuda(cudaErrorInvalidValue, "cuda/some_kernel.cu", 42);
        FAIL() << "no error raised";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("cuda/some_kernel.cu:42"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("cudaErrorInvalidValue"), std::string::npos) << e.what();
    }
    try {
        cuda::check_cuda(cudaErrorMemoryAllocation, "x.cu", 1);
        FAIL() << "no error raised";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("out of GPU memory"), std::string::npos) << e.what();
    }
}

TEST(CudaCommon, DeviceQueryMatchesRuntime) {
    SKIP_WITHOUT_GPU();
    int count = 0;
    ASSERT_EQ(cudaGetDeviceCount(&count), cudaSuccess);
    std::vector<GpuInfo> gpus = list_gpus();
    ASSERT_EQ(int(gpus.size()), count);
    EXPECT_GT(gpus[0].total_bytes, size_t(1) << 30);
    EXPECT_GT(gpus[0].sm_count, 0);
    // Free memory (a context on that GPU) only where asked: by default nowhere, then the current one.
    for (const GpuInfo& g : gpus) EXPECT_FALSE(g.free_known) << g.index;
    const std::vector<GpuInfo> cur = list_gpus(nullptr, GpuFree::kCurrent);
    for (const GpuInfo& g : cur) {
        EXPECT_EQ(g.free_known, g.index == current_gpu()) << g.index;
        if (!g.free_known) continue;
        EXPECT_GT(g.free_bytes, 0u);
        EXPECT_LE(g.free_bytes, g.total_bytes);
    }
}

TEST(CudaCommon, DeviceBufferRoundTripsAndPoisons) {
    SKIP_WITHOUT_GPU();
    std::vector<float> host = gputest::random_vector(1000, 3);
    cuda::DeviceBuffer<float> buf(host);
    EXPECT_EQ(buf.download(), host);
    buf.poison();
    for (float x : buf.download()) EXPECT_TRUE(std::isnan(x));
}
#endif
