// common.cuh: what every CUDA file of rusca shares: checked CUDA calls that report the file and
// line of the call (and say plainly when the GPU is out of memory), and small launch helpers.
// Every CUDA API call goes through CUDA_CHECK; every kernel launch through LAUNCH_KERNEL (launch.cuh).
#pragma once
#include <cuda_runtime.h>

namespace rusca::cuda {

// Throws rusca::CudaError "<file>:<line>: CUDA error <name>: <description>" when err != cudaSuccess.
void check_cuda(cudaError_t err, const char* file, int line);

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

}  // namespace rusca::cuda

#define CUDA_CHECK(call) ::rusca::cuda::check_cuda((call), __FILE__, __LINE__)
