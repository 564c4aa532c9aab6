// launch.cuh: the one way rusca launches a kernel. LAUNCH_KERNEL(kernel, grid, block, smem, stream,
// args...) is `kernel<<<grid, block, smem, stream>>>(args...)` followed by the launch check (which
// names the calling file and line) under nvcc, and a launch on the SIMT emulator in the emulator
// build (RUSCA_EMU). `<<<` appears nowhere else (`make check-sources`): every kernel can be emulated.
// A macro only to capture the call site; a template kernel's commas are fine inside __VA_ARGS__.
#pragma once
#include <cuda_runtime.h>

#include <tuple>
#include <type_traits>
#include <utility>

#include "common.cuh"

namespace rusca::cuda {

template <typename... Params, typename... Args>
void launch_at(const char* file, int line, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
               cudaStream_t stream, Args&&... args) {
#ifdef RUSCA_EMU
    // Arguments are converted to the kernel's parameter types and copied, as a launch does.
    std::tuple<std::decay_t<Params>...> params(std::forward<Args>(args)...);
    ::rusca::emu::launch_kernel(reinterpret_cast<const void*>(kernel), grid, block, smem, stream, file, line,
                                [kernel, params] { std::apply(kernel, params); });
#else
    kernel<<<grid, block, smem, stream>>>(std::forward<Args>(args)...);
#endif
    check_cuda(cudaGetLastError(), file, line);
}

}  // namespace rusca::cuda

#define LAUNCH_KERNEL(...) ::rusca::cuda::launch_at(__FILE__, __LINE__, __VA_ARGS__)
