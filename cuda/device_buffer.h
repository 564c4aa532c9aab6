// device_buffer.h: an owning GPU array for host code (launchers, the CUDA backend, GPU tests).
// Host-only C++ (no kernels), so g++-compiled files can use it. poison() fills every byte with
// 0xFF, which reads as NaN in fp32 and bf16: a kernel that forgets to write an output is caught.
#pragma once
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "common.cuh"
#include "host/error.h"

namespace rusca::cuda {

template <typename T>
class DeviceBuffer {
public:
    explicit DeviceBuffer(size_t n = 0) : n_(n) {
        if (n_) CUDA_CHECK(cudaMalloc(&p_, n_ * sizeof(T)));
    }
    explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
    ~DeviceBuffer() {
        if (p_) cudaFree(p_);  // not checked: destructors must not throw
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
        if (this != &o) {
            if (p_) cudaFree(p_);
            p_ = o.p_, n_ = o.n_;
            o.p_ = nullptr, o.n_ = 0;
        }
        return *this;
    }

    T* data() { return p_; }
    const T* data() const { return p_; }
    size_t size() const { return n_; }
    void upload(const std::vector<T>& host) {
        check_size(host.size());
        CUDA_CHECK(cudaMemcpy(p_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
    }
    std::vector<T> download() const {
        std::vector<T> host(n_);
        CUDA_CHECK(cudaDeviceSynchronize());  // a kernel's error surfaces here, with this line
        CUDA_CHECK(cudaMemcpy(host.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
        return host;
    }
    void poison() { CUDA_CHECK(cudaMemset(p_, 0xFF, n_ * sizeof(T))); }
    void zero() { CUDA_CHECK(cudaMemset(p_, 0, n_ * sizeof(T))); }

private:
    void check_size(size_t n) const {
        check(n == n_, "DeviceBuffer: upload of " + std::to_string(n) + " elements into a buffer of " +
                           std::to_string(n_));
    }
    T* p_ = nullptr;
    size_t n_ = 0;
};

// Device memory for one call, allocated and freed in stream order (the pool reuses it), carved into
// 256-byte-aligned pieces with take(). Kernels' per-call scratch lives in one of these.
class StreamScratch {
public:
    StreamScratch(size_t bytes, cudaStream_t s) : stream_(s), size_(bytes) {
        CUDA_CHECK(cudaMallocAsync(&base_, bytes, s));
    }
    StreamScratch(const StreamScratch&) = delete;
    StreamScratch& operator=(const StreamScratch&) = delete;
    ~StreamScratch() {
        if (base_) cudaFreeAsync(base_, stream_);  // not checked: destructors must not throw
    }
    static size_t piece(size_t bytes) { return (bytes + 255) / 256 * 256; }
    template <typename T>
    T* take(size_t count) {
        const size_t bytes = piece(count * sizeof(T));
        check(used_ + bytes <= size_, "StreamScratch: internal error, scratch too small");
        T* p = reinterpret_cast<T*>(static_cast<char*>(base_) + used_);
        used_ += bytes;
        return p;
    }

private:
    void* base_ = nullptr;
    cudaStream_t stream_;
    size_t size_, used_ = 0;
};

}  // namespace rusca::cuda
