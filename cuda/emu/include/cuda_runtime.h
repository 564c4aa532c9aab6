// cuda_runtime.h (emulator build): shadows NVIDIA's cuda_runtime.h when -Icuda/emu/include comes
// first, so that the kernels' own source compiles with g++ and runs on the SIMT emulator.
// NVIDIA's runtime API declarations and types are used as they are (cuda_runtime_api.h); the
// emulator defines the functions (cuda/emu/runtime_*.cpp). What is added here: the C++ overloads of
// NVIDIA's cuda_runtime.h that rusca calls, and the device-side builtins (device_builtins.h).
#pragma once
#ifndef RUSCA_EMU
#error "cuda/emu/include is for the emulator build (-DRUSCA_EMU=1) only"
#endif

// __shared__ variables are per block: a block's fibers all run on one OS thread, so a function-local
// static thread_local is exactly one copy per running block (the HIP-CPU trick).
#undef __shared__
#define __shared__ static thread_local
#define __launch_bounds__(...)

#include <cuda_runtime_api.h>
// make_cudaPitchedPtr, make_cudaExtent, ... (an "internal" header to NVIDIA: say we are the runtime)
#define __CUDA_INCLUDE_COMPILER_INTERNAL_HEADERS__
#include <driver_functions.h>
#undef __CUDA_INCLUDE_COMPILER_INTERNAL_HEADERS__

#include "cuda/emu/device_builtins.h"
#include "cuda/emu/emu.h"

template <class T>
inline cudaError_t cudaMalloc(T** p, size_t bytes) {
    return ::cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
template <class T>
inline cudaError_t cudaMallocAsync(T** p, size_t bytes, cudaStream_t s) {
    return ::cudaMallocAsync(reinterpret_cast<void**>(p), bytes, s);
}
template <class T>
inline cudaError_t cudaFuncSetAttribute(T* entry, cudaFuncAttribute attr, int value) {
    return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(entry), attr, value);
}
