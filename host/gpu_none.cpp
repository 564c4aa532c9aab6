// gpu_none.cpp: the GPU query of a CPU-only build (compiled to nothing when CUDA is built).
#ifndef RUSCA_CUDA
#include "gpu.h"

namespace rusca {

bool cuda_built() { return false; }
const char* cuda_backend_name() { return "none"; }

std::vector<GpuInfo> list_gpus(std::string* why_none, GpuFree) {
    if (why_none) *why_none = "this rusca was built without CUDA (nvcc was not found at build time)";
    return {};
}

size_t gpu_memory_used() { return 0; }
int current_gpu() { return 0; }
void use_gpu(int) {}

}  // namespace rusca
#endif
