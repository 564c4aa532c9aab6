// runtime_device.cpp: the emulated device (one, with an H200's properties and a name that says it is
// emulated), the last-error state, error names and strings, and kernel attributes.
#include <cstring>
#include <map>
#include <mutex>

#include "cuda/emu/engine.h"
#include "cuda/emu/runtime.h"

namespace rusca::emu {
namespace {
thread_local cudaError_t t_last_error = cudaSuccess;
std::mutex g_func_mutex;
}  // namespace

cudaError_t set_last_error(cudaError_t err) {
    if (err != cudaSuccess) t_last_error = err;
    return err;
}

}  // namespace rusca::emu

using namespace rusca::emu;

cudaError_t cudaGetLastError() {
    cudaError_t e = t_last_error;
    t_last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError() { return t_last_error; }

cudaError_t cudaGetDeviceCount(int* count) {
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : set_last_error(cudaErrorInvalidDevice); }

cudaError_t cudaGetDevice(int* device) {
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
    if (device != 0) return set_last_error(cudaErrorInvalidDevice);
    *p = cudaDeviceProp{};
    std::strncpy(p->name, "rusca SIMT emulator (H200 properties)", sizeof p->name - 1);
    size_t free = 0;
    cudaMemGetInfo(&free, &p->totalGlobalMem);
    p->major = 9, p->minor = 0;
    p->multiProcessorCount = 132;
    p->warpSize = 32;
    p->maxThreadsPerBlock = kMaxThreadsPerBlock;
    p->maxThreadsDim[0] = 1024, p->maxThreadsDim[1] = 1024, p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 2147483647, p->maxGridSize[1] = 65535, p->maxGridSize[2] = 65535;
    p->sharedMemPerBlock = kDefaultSmemBytes;
    p->sharedMemPerBlockOptin = kOptinSmemBytes;
    p->sharedMemPerMultiprocessor = 228 * 1024;
    p->regsPerBlock = 65536, p->regsPerMultiprocessor = 65536;
    p->maxThreadsPerMultiProcessor = 2048;
    p->l2CacheSize = 50 * 1024 * 1024;
    p->memoryBusWidth = 6144;
    p->totalConstMem = 65536;
    p->concurrentKernels = 1;
    p->unifiedAddressing = 1;
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return set_last_error(cudaErrorInvalidValue);
    if (value < 0 || value > kOptinSmemBytes) return set_last_error(cudaErrorInvalidValue);
    set_max_dynamic_smem(func, value);
    return cudaSuccess;
}

const char* cudaGetErrorName(cudaError_t e) {
    switch (e) {
#define NAME(x) \
    case x: return #x;
        NAME(cudaSuccess)
        NAME(cudaErrorInvalidValue)
        NAME(cudaErrorMemoryAllocation)
        NAME(cudaErrorInvalidConfiguration)
        NAME(cudaErrorInvalidPitchValue)
        NAME(cudaErrorInvalidDevice)
        NAME(cudaErrorInvalidResourceHandle)
        NAME(cudaErrorIllegalState)
        NAME(cudaErrorStreamCaptureUnsupported)
        NAME(cudaErrorStreamCaptureInvalidated)
        NAME(cudaErrorStreamCaptureImplicit)
        NAME(cudaErrorLaunchFailure)
        NAME(cudaErrorNotSupported)
#undef NAME
    default: return "cudaErrorUnknown";
    }
}

const char* cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidPitchValue: return "invalid pitch argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalState: return "the operation is not permitted in the current state";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit:
        return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorNotSupported: return "operation not supported";
    default: return "unknown error";
    }
}
