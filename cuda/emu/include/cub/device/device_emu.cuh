// cub/device/device_emu.cuh (emulator build): what the emulated device-wide CUB algorithms share:
// CUB's temporary-storage convention, pointer checks against the emulator's device allocations, and
// the stable host-side radix order.
//
// CUB's convention: a first call with d_temp_storage == nullptr only sets temp_storage_bytes; the
// second call gets storage of at least that size and does the work, in stream order. Sizes follow
// CUB's own rule (each piece rounded up to 256 bytes, plus 255 for aligning the start), and a call
// with too little storage fails with cudaErrorInvalidValue as CUB's does. The emulation does its
// work in host memory, so it fills the caller's temporary storage with a poison pattern instead of
// using it: a caller that lets it overlap live data sees that data destroyed, as on a GPU.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "cub/util_type.cuh"

namespace cub {
namespace emu {

// CUB's AliasTemporaries: the bytes a blob needs to hold these pieces, each 256-byte aligned.
inline size_t temp_bytes_for(std::initializer_list<size_t> pieces) {
    size_t total = 0;
    for (size_t p : pieces) total += (p + 255) & ~size_t(255);
    return total + 255;
}

// The second call of the convention: is the caller's storage there and large enough?
inline cudaError_t check_temp(const void* d_temp_storage, size_t given, size_t needed) {
    return d_temp_storage && given >= needed ? cudaSuccess : cudaErrorInvalidValue;
}

inline void poison_temp(void* d_temp_storage, size_t bytes, const char* what) {
    ::rusca::emu::check_device_range(d_temp_storage, bytes, what);
    std::memset(d_temp_storage, 0xA5, bytes);
}

// A device pointer (an iterator of another kind is used as it is) must cover n elements.
template <typename It>
void check_items(It it, size_t n, const char* what) {
    if constexpr (std::is_pointer<It>::value)
        if (n > 0) ::rusca::emu::check_device_range(it, n * sizeof(*it), what);
}

// Positions [0, n) in the order a stable CUB radix sort of keys[0, n) over the bit range puts them.
template <typename Key>
std::vector<size_t> radix_order(const Key* keys, size_t n, int begin_bit, int end_bit, bool descending) {
    std::vector<uint64_t> digit(n);
    for (size_t i = 0; i < n; i++) digit[i] = RadixDigits<Key>::of(keys[i], begin_bit, end_bit);
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return descending ? digit[a] > digit[b] : digit[a] < digit[b];
    });
    return order;
}

}  // namespace emu
}  // namespace cub
