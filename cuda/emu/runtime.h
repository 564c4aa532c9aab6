// runtime.h: state shared by the emulator's runtime files (runtime_memory.cpp, runtime_stream.cpp,
// runtime_device.cpp): the capture state of streams and the rule for calls refused during capture.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "cuda/emu/emu.h"

struct CUgraph_st {
    std::vector<std::function<void()>> nodes;
    // Memory allocated by cudaMallocAsync during the capture belongs to the graph (as a GPU's graph
    // memory nodes do): it stays valid for every replay and is freed with the last graph or exec.
    std::shared_ptr<std::vector<void*>> owned;
};
struct CUgraphExec_st {
    std::vector<std::function<void()>> nodes;
    std::shared_ptr<std::vector<void*>> owned;
};
struct CUstream_st {
    CUgraph_st* capture = nullptr;  // the graph being captured, or nullptr
    bool invalidated = false;       // a refused call happened during capture
};

namespace rusca::emu {

// The stream capturing on this OS thread, or nullptr.
CUstream_st* capturing_stream();
// A call that a GPU refuses during stream capture (cudaMalloc, synchronous copies, synchronize):
// returns cudaErrorStreamCaptureUnsupported and invalidates the capture when one is in progress,
// cudaSuccess otherwise.
cudaError_t refuse_during_capture();
// Frees a device allocation (used when a graph's memory is released).
void free_device(void* p);

}  // namespace rusca::emu
