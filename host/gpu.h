// gpu.h: what the host needs to know about GPUs, without including CUDA headers.
// In a CPU-only build (no nvcc) these report that CUDA was not built.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace rusca {

struct GpuInfo {
    int index = 0;
    std::string name;
    int cc_major = 0, cc_minor = 0, sm_count = 0;
    size_t total_bytes = 0, free_bytes = 0;  // free_bytes: only where list_gpus was asked for it
    bool free_known = false;
};

// Which GPUs' free memory list_gpus reads. Reading it opens a CUDA context on that GPU (hundreds of
// MB of its memory for the life of the process), so a rank asks for its own GPU's at most: eight
// ranks on an eight-GPU node would otherwise each hold a context on every GPU.
enum class GpuFree { kNone, kCurrent, kAll };

bool cuda_built();
// What the CUDA backend runs on: "CUDA (sm_90a)", or the SIMT emulator in the emulator build.
const char* cuda_backend_name();
// Visible GPUs; when there are none, `why_none` (if given) says why (no driver, no device, ...).
std::vector<GpuInfo> list_gpus(std::string* why_none = nullptr, GpuFree free = GpuFree::kNone);
// Throws Error("<what> needs a GPU: <why there is none>") when no GPU is visible.
void require_gpu(const std::string& what);
// The GPU this process runs CUDA on (0 unless use_gpu chose another; 0 without CUDA).
int current_gpu();
void use_gpu(int index);
// Bytes in use on the current GPU (total - free, all processes); 0 without CUDA.
size_t gpu_memory_used();

}  // namespace rusca
