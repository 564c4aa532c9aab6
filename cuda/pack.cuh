// pack.cuh: vectorized bf16 access shared by the row-wise and elementwise kernels (device code:
// include from .cu files only). Pack<V> moves V bf16 values as one 2V-byte access (V = 8: one
// 16-byte load or store); aligned() tells the launchers when a pointer allows it.
#pragma once
#include <cuda_bf16.h>

#include <cstddef>
#include <cstdint>

namespace rusca::cuda {

template <int V>
struct alignas(2 * V) Pack {
    __nv_bfloat16 v[V];
};
template <int V>
__device__ inline Pack<V> load(const __nv_bfloat16* p) {
    return *reinterpret_cast<const Pack<V>*>(p);
}
template <int V>
__device__ inline void store(__nv_bfloat16* p, const Pack<V>& x) {
    *reinterpret_cast<Pack<V>*>(p) = x;
}

inline bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace rusca::cuda
