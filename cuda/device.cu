// device.cu: checked-call reporting and the device query behind `rusca info`.
#include <string>

#include "common.cuh"
#include "host/error.h"
#include "host/gpu.h"

namespace rusca::cuda {

void check_cuda(cudaError_t err, const char* file, int line) {
    if (err == cudaSuccess) return;
    std::string msg = std::string(file) + ":" + std::to_string(line) + ": CUDA error " + cudaGetErrorName(err) +
                      ": " + cudaGetErrorString(err);
    if (err == cudaErrorMemoryAllocation) msg += " (out of GPU memory: try a smaller batch or sequence length)";
    throw CudaError(msg);
}

}  // namespace rusca::cuda

namespace rusca {

bool cuda_built() { return true; }

#ifdef RUSCA_EMU
const char* cuda_backend_name() { return "CUDA on the SIMT emulator (cuda/emu: kernels run on the CPU)"; }
#else
const char* cuda_backend_name() { return "CUDA (sm_90a)"; }
#endif

int current_gpu() {
    int d = 0;
    CUDA_CHECK(cudaGetDevice(&d));
    return d;
}

void use_gpu(int index) { CUDA_CHECK(cudaSetDevice(index)); }

std::vector<GpuInfo> list_gpus(std::string* why_none, GpuFree free) {
    std::vector<GpuInfo> gpus;
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        if (why_none) *why_none = err != cudaSuccess ? cudaGetErrorString(err) : "no CUDA device found";
        cudaGetLastError();  // clear the sticky error so later calls start clean
        return gpus;
    }
    int current = 0;
    CUDA_CHECK(cudaGetDevice(&current));
    for (int i = 0; i < count; i++) {
        cudaDeviceProp prop;
        CUDA_CHECK(cudaGetDeviceProperties(&prop, i));
        GpuInfo g;
        g.index = i;
        g.name = prop.name;
        g.cc_major = prop.major, g.cc_minor = prop.minor, g.sm_count = prop.multiProcessorCount;
        g.total_bytes = prop.totalGlobalMem;
        if (free == GpuFree::kAll || (free == GpuFree::kCurrent && i == current)) {
            CUDA_CHECK(cudaSetDevice(i));
            CUDA_CHECK(cudaMemGetInfo(&g.free_bytes, &g.total_bytes));
            g.free_known = true;
        }
        gpus.push_back(g);
    }
    CUDA_CHECK(cudaSetDevice(current));  // the query changes nothing: a rank keeps its GPU
    return gpus;
}

size_t gpu_memory_used() {
    size_t free = 0, total = 0;
    CUDA_CHECK(cudaMemGetInfo(&free, &total));
    return total - free;
}

}  // namespace rusca
