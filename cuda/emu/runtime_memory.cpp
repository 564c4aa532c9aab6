// runtime_memory.cpp: device memory on the emulator. An allocation is host memory, 256-byte
// aligned as cudaMalloc's, filled with 0xFF (NaN in fp32 and bf16) so an output a kernel forgets to
// write shows up, and tracked so copies and cp.async can check their ranges. Copies and memsets
// run in stream order (enqueue), so they are recorded during graph capture.
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "cuda/emu/engine.h"
#include "cuda/emu/runtime.h"

struct CUmemPoolHandle_st {
    unsigned long long release_threshold = 0;
    unsigned long long used_high = 0;
};

namespace rusca::emu {
namespace {

constexpr size_t kTotalBytes = 150ull * 1000 * 1000 * 1000;  // an H200's 141 GiB (rounded)

std::mutex g_mem_mutex;
std::map<uintptr_t, size_t> g_allocs;  // base -> bytes
size_t g_used = 0, g_async_used = 0;
CUmemPoolHandle_st g_pool;

cudaError_t allocate(void** p, size_t bytes) {
    if (!p) return set_last_error(cudaErrorInvalidValue);
    *p = nullptr;
    if (bytes == 0) return cudaSuccess;
    std::lock_guard<std::mutex> lock(g_mem_mutex);
    if (g_used + bytes > kTotalBytes) return set_last_error(cudaErrorMemoryAllocation);
    // The exact size (no rounding up): in the ASan build a read past the end is then a report.
    void* m = nullptr;
    if (posix_memalign(&m, 256, bytes) != 0) return set_last_error(cudaErrorMemoryAllocation);
    std::memset(m, 0xFF, bytes);
    g_allocs[reinterpret_cast<uintptr_t>(m)] = bytes;
    g_used += bytes;
    *p = m;
    return cudaSuccess;
}

cudaError_t release(void* p) {
    if (!p) return cudaSuccess;
    std::lock_guard<std::mutex> lock(g_mem_mutex);
    auto it = g_allocs.find(reinterpret_cast<uintptr_t>(p));
    if (it == g_allocs.end()) return set_last_error(cudaErrorInvalidValue);
    g_used -= it->second;
    g_allocs.erase(it);
    std::free(p);
    return cudaSuccess;
}

// The checks a GPU makes on a copy's pointers for its kind (a host pointer is anything else).
void check_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
    if (kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice)
        check_device_range(src, bytes, "cudaMemcpy source");
    if (kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice)
        check_device_range(dst, bytes, "cudaMemcpy destination");
}

}  // namespace

bool is_device_range(const void* p, size_t bytes) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    std::lock_guard<std::mutex> lock(g_mem_mutex);
    auto it = g_allocs.upper_bound(a);
    if (it == g_allocs.begin()) return false;
    --it;
    return a >= it->first && a + bytes <= it->first + it->second;
}

void check_device_range(const void* p, size_t bytes, const char* what) {
    if (bytes == 0 || is_device_range(p, bytes)) return;  // an empty range needs no memory (as on a GPU)
    char buf[64];
    std::snprintf(buf, sizeof buf, "%p", p);
    const std::string msg = std::string(what) + ": [" + buf + ", +" + std::to_string(bytes) +
                            " bytes) is not inside one live device allocation (out of bounds or freed)";
    if (in_kernel()) fault(msg);
    throw Fault(msg);
}

void free_device(void* p) { release(p); }

}  // namespace rusca::emu

using namespace rusca::emu;

cudaError_t cudaMalloc(void** p, size_t bytes) {
    if (cudaError_t e = refuse_during_capture()) return e;
    return allocate(p, bytes);
}

cudaError_t cudaFree(void* p) {
    if (cudaError_t e = refuse_during_capture()) return e;
    return release(p);
}

// Stream-ordered allocation: the memory is ready at once (streams are synchronous). During capture
// it belongs to the graph; see CUgraph_st.
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t s) {
    cudaError_t e = allocate(p, bytes);
    if (e) return e;
    if (s && s->capture) {
        s->capture->owned->push_back(*p);
        return cudaSuccess;
    }
    std::lock_guard<std::mutex> lock(g_mem_mutex);
    g_async_used += bytes;
    if (g_async_used > g_pool.used_high) g_pool.used_high = g_async_used;
    return cudaSuccess;
}

cudaError_t cudaFreeAsync(void* p, cudaStream_t s) {
    if (!p) return cudaSuccess;
    if (s && s->capture) {
        for (void* q : *s->capture->owned)
            if (q == p) return cudaSuccess;  // the graph's memory: released with the graph
        enqueue(s, [p] { release(p); });
        return cudaSuccess;
    }
    {
        std::lock_guard<std::mutex> lock(g_mem_mutex);
        auto it = g_allocs.find(reinterpret_cast<uintptr_t>(p));
        if (it != g_allocs.end()) g_async_used -= std::min(g_async_used, it->second);
    }
    return release(p);
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
    if (cudaError_t e = refuse_during_capture()) return e;
    if (bytes == 0) return cudaSuccess;  // may name null pointers
    check_copy(dst, src, bytes, kind);
    std::memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
    if (bytes == 0) return cudaSuccess;
    enqueue(s, [=] {
        check_copy(dst, src, bytes, kind);
        std::memmove(dst, src, bytes);
    });
    return cudaSuccess;
}

cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s) {
    if (width > dpitch || width > spitch) return set_last_error(cudaErrorInvalidPitchValue);
    enqueue(s, [=] {
        for (size_t y = 0; y < height; y++) {
            char* d = static_cast<char*>(dst) + y * dpitch;
            const char* r = static_cast<const char*>(src) + y * spitch;
            check_copy(d, r, width, kind);
            std::memmove(d, r, width);
        }
    });
    return cudaSuccess;
}

// Linear memory only (no cudaArray): element (x bytes, y, z) of a pitched pointer lives at
// ptr + (z * ysize + y) * pitch + x.
cudaError_t cudaMemcpy3DAsync(const cudaMemcpy3DParms* p, cudaStream_t s) {
    if (!p || p->srcArray || p->dstArray) return set_last_error(cudaErrorInvalidValue);
    const cudaPitchedPtr sp = p->srcPtr, dp = p->dstPtr;
    const cudaPos so = p->srcPos, dof = p->dstPos;
    const cudaExtent e = p->extent;
    if (so.x + e.width > sp.pitch || dof.x + e.width > dp.pitch || so.y + e.height > sp.ysize ||
        dof.y + e.height > dp.ysize)
        return set_last_error(cudaErrorInvalidValue);
    const cudaMemcpyKind kind = p->kind;
    enqueue(s, [=] {
        for (size_t z = 0; z < e.depth; z++)
            for (size_t y = 0; y < e.height; y++) {
                char* d = static_cast<char*>(dp.ptr) + ((dof.z + z) * dp.ysize + dof.y + y) * dp.pitch + dof.x;
                const char* r =
                    static_cast<const char*>(sp.ptr) + ((so.z + z) * sp.ysize + so.y + y) * sp.pitch + so.x;
                check_copy(d, r, e.width, kind);
                std::memmove(d, r, e.width);
            }
    });
    return cudaSuccess;
}

cudaError_t cudaMemset(void* p, int value, size_t bytes) {
    if (cudaError_t e = refuse_during_capture()) return e;
    if (bytes == 0) return cudaSuccess;
    check_device_range(p, bytes, "cudaMemset");
    std::memset(p, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
    if (bytes == 0) return cudaSuccess;
    enqueue(s, [=] {
        check_device_range(p, bytes, "cudaMemsetAsync");
        std::memset(p, value, bytes);
    });
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free, size_t* total) {
    std::lock_guard<std::mutex> lock(g_mem_mutex);
    *total = kTotalBytes;
    *free = kTotalBytes - g_used;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int device) {
    if (device != 0) return set_last_error(cudaErrorInvalidDevice);
    *pool = &g_pool;
    return cudaSuccess;
}

cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value) {
    std::lock_guard<std::mutex> lock(g_mem_mutex);
    const unsigned long long v = *static_cast<unsigned long long*>(value);
    if (attr == cudaMemPoolAttrReleaseThreshold) pool->release_threshold = v;
    else if (attr == cudaMemPoolAttrUsedMemHigh && v == 0) pool->used_high = g_async_used;  // reset
    else return set_last_error(cudaErrorInvalidValue);
    return cudaSuccess;
}

cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value) {
    std::lock_guard<std::mutex> lock(g_mem_mutex);
    unsigned long long& out = *static_cast<unsigned long long*>(value);
    if (attr == cudaMemPoolAttrReleaseThreshold) out = pool->release_threshold;
    else if (attr == cudaMemPoolAttrUsedMemHigh) out = pool->used_high;
    else if (attr == cudaMemPoolAttrUsedMemCurrent) out = g_async_used;
    else return set_last_error(cudaErrorInvalidValue);
    return cudaSuccess;
}
