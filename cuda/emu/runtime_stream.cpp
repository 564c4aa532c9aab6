// runtime_stream.cpp: streams, events and CUDA graphs on the emulator. Streams are synchronous: work
// enqueued on a stream runs at once, in order. Capture records the work instead (kernels, copies,
// memsets, library calls, event records) as graph nodes; an instantiated graph replays them in
// order. As on a GPU, calls that would synchronize or allocate outside the stream's order during
// capture fail with cudaErrorStreamCaptureUnsupported and invalidate the capture, and work on the
// legacy default stream while this thread captures fails with cudaErrorStreamCaptureImplicit.
#include <chrono>

#include "cuda/emu/runtime.h"

struct CUevent_st {
    std::chrono::steady_clock::time_point t;
    bool recorded = false;
};

namespace rusca::emu {
namespace {
thread_local CUstream_st* t_capturing = nullptr;

void release_owned(const std::shared_ptr<std::vector<void*>>& owned) {
    if (owned && owned.use_count() == 1)
        for (void* p : *owned) free_device(p);
}
}  // namespace

CUstream_st* capturing_stream() { return t_capturing; }

cudaError_t refuse_during_capture() {
    if (!t_capturing) return cudaSuccess;
    t_capturing->invalidated = true;
    return set_last_error(cudaErrorStreamCaptureUnsupported);
}

void enqueue(cudaStream_t stream, std::function<void()> work) {
    if (stream && stream->capture) {
        stream->capture->nodes.push_back(std::move(work));
        return;
    }
    if (!stream && t_capturing) {
        t_capturing->invalidated = true;
        set_last_error(cudaErrorStreamCaptureImplicit);
        return;
    }
    work();
}

}  // namespace rusca::emu

using namespace rusca::emu;

cudaError_t cudaStreamCreate(cudaStream_t* s) {
    *s = new CUstream_st;
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) { return cudaStreamCreate(s); }

cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if (!s) return set_last_error(cudaErrorInvalidResourceHandle);
    if (s->capture) return set_last_error(cudaErrorStreamCaptureUnsupported);
    delete s;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) { return refuse_during_capture(); }

cudaError_t cudaDeviceSynchronize() { return refuse_during_capture(); }

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
    if (!s) return set_last_error(cudaErrorStreamCaptureUnsupported);  // the legacy stream cannot capture
    if (s->capture || t_capturing) return set_last_error(cudaErrorIllegalState);
    s->capture = new CUgraph_st;
    s->capture->owned = std::make_shared<std::vector<void*>>();
    s->invalidated = false;
    t_capturing = s;
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph) {
    if (!s || !s->capture) return set_last_error(cudaErrorIllegalState);
    CUgraph_st* g = s->capture;
    s->capture = nullptr;
    if (t_capturing == s) t_capturing = nullptr;
    if (s->invalidated) {
        *graph = nullptr;
        cudaGraphDestroy(g);
        return set_last_error(cudaErrorStreamCaptureInvalidated);
    }
    *graph = g;
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status) {
    *status = s && s->capture ? (s->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive)
                              : cudaStreamCaptureStatusNone;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t g, unsigned long long) {
    if (!g) return set_last_error(cudaErrorInvalidValue);
    *exec = new CUgraphExec_st{g->nodes, g->owned};
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
    if (!exec) return set_last_error(cudaErrorInvalidValue);
    for (const auto& node : exec->nodes) enqueue(s, node);
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    if (!g) return set_last_error(cudaErrorInvalidValue);
    release_owned(g->owned);
    delete g;
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    if (!exec) return set_last_error(cudaErrorInvalidValue);
    release_owned(exec->owned);
    delete exec;
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* e) {
    *e = new CUevent_st;
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    if (!e) return set_last_error(cudaErrorInvalidResourceHandle);
    enqueue(s, [e] {
        e->t = std::chrono::steady_clock::now();
        e->recorded = true;
    });
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    if (cudaError_t err = refuse_during_capture()) return err;
    return e ? cudaSuccess : set_last_error(cudaErrorInvalidResourceHandle);
}

// Elapsed host time between the two records: the emulator's kernels take CPU time, not GPU time.
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
    if (!start || !end) return set_last_error(cudaErrorInvalidResourceHandle);
    if (!start->recorded || !end->recorded) return set_last_error(cudaErrorInvalidResourceHandle);
    *ms = std::chrono::duration<float, std::milli>(end->t - start->t).count();
    return cudaSuccess;
}
