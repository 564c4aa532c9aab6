// cub/device/device_radix_sort.cuh (emulator build): cub::DeviceRadixSort, the pointer (not
// DoubleBuffer) forms of SortPairs / SortPairsDescending / SortKeys / SortKeysDescending: a stable
// sort by the key bits [begin_bit, end_bit), inputs left unchanged, results in the output arrays.
// Temporary storage follows CUB's size-query convention (device_emu.cuh); the work runs in stream
// order through the emulator (now, or at each replay of a captured CUDA graph).
#pragma once
#include <cuda_runtime.h>

#include "cub/device/device_emu.cuh"

namespace cub {

struct DeviceRadixSort {
    template <typename KeyT, typename ValueT, typename NumItemsT>
    static cudaError_t SortPairs(void* d_temp_storage, size_t& temp_storage_bytes, const KeyT* d_keys_in,
                                 KeyT* d_keys_out, const ValueT* d_values_in, ValueT* d_values_out,
                                 NumItemsT num_items, int begin_bit = 0, int end_bit = sizeof(KeyT) * 8,
                                 cudaStream_t stream = 0) {
        return sort<KeyT, ValueT>(d_temp_storage, temp_storage_bytes, d_keys_in, d_keys_out, d_values_in,
                                  d_values_out, int64_t(num_items), begin_bit, end_bit, false, stream);
    }
    template <typename KeyT, typename ValueT, typename NumItemsT>
    static cudaError_t SortPairsDescending(void* d_temp_storage, size_t& temp_storage_bytes, const KeyT* d_keys_in,
                                           KeyT* d_keys_out, const ValueT* d_values_in, ValueT* d_values_out,
                                           NumItemsT num_items, int begin_bit = 0, int end_bit = sizeof(KeyT) * 8,
                                           cudaStream_t stream = 0) {
        return sort<KeyT, ValueT>(d_temp_storage, temp_storage_bytes, d_keys_in, d_keys_out, d_values_in,
                                  d_values_out, int64_t(num_items), begin_bit, end_bit, true, stream);
    }
    template <typename KeyT, typename NumItemsT>
    static cudaError_t SortKeys(void* d_temp_storage, size_t& temp_storage_bytes, const KeyT* d_keys_in,
                                KeyT* d_keys_out, NumItemsT num_items, int begin_bit = 0,
                                int end_bit = sizeof(KeyT) * 8, cudaStream_t stream = 0) {
        return sort<KeyT, NullType>(d_temp_storage, temp_storage_bytes, d_keys_in, d_keys_out, nullptr, nullptr,
                                    int64_t(num_items), begin_bit, end_bit, false, stream);
    }
    template <typename KeyT, typename NumItemsT>
    static cudaError_t SortKeysDescending(void* d_temp_storage, size_t& temp_storage_bytes, const KeyT* d_keys_in,
                                          KeyT* d_keys_out, NumItemsT num_items, int begin_bit = 0,
                                          int end_bit = sizeof(KeyT) * 8, cudaStream_t stream = 0) {
        return sort<KeyT, NullType>(d_temp_storage, temp_storage_bytes, d_keys_in, d_keys_out, nullptr, nullptr,
                                    int64_t(num_items), begin_bit, end_bit, true, stream);
    }

private:
    // Temporary storage of the size CUB's onesweep sort needs, give or take its small counters:
    // alternate key and value buffers and the per-pass digit histograms (8-bit digits).
    template <typename KeyT, typename ValueT>
    static size_t temp_bytes(int64_t n, int begin_bit, int end_bit) {
        const size_t passes = size_t(std::max(1, (end_bit - begin_bit + 7) / 8));
        const size_t values = std::is_same<ValueT, NullType>::value ? 0 : size_t(n) * sizeof(ValueT);
        return emu::temp_bytes_for({size_t(n) * sizeof(KeyT), values, passes * 256 * sizeof(int64_t)});
    }

    template <typename KeyT, typename ValueT>
    static cudaError_t sort(void* d_temp_storage, size_t& temp_storage_bytes, const KeyT* keys_in, KeyT* keys_out,
                            const ValueT* values_in, ValueT* values_out, int64_t n, int begin_bit, int end_bit,
                            bool descending, cudaStream_t stream) {
        if (n < 0 || !emu::valid_bit_range<KeyT>(begin_bit, end_bit)) return cudaErrorInvalidValue;
        const size_t needed = n == 0 ? 1 : temp_bytes<KeyT, ValueT>(n, begin_bit, end_bit);
        if (!d_temp_storage) {
            temp_storage_bytes = needed;
            return cudaSuccess;
        }
        if (const cudaError_t err = emu::check_temp(d_temp_storage, temp_storage_bytes, needed)) return err;
        if (n == 0) return cudaSuccess;
        constexpr bool kPairs = !std::is_same<ValueT, NullType>::value;
        const size_t temp_given = temp_storage_bytes;
        ::rusca::emu::enqueue(stream, [=] {
            emu::poison_temp(d_temp_storage, temp_given, "cub::DeviceRadixSort: temporary storage");
            emu::check_items(keys_in, size_t(n), "cub::DeviceRadixSort: d_keys_in");
            emu::check_items(keys_out, size_t(n), "cub::DeviceRadixSort: d_keys_out");
            const std::vector<KeyT> keys(keys_in, keys_in + n);
            std::vector<ValueT> values;
            if constexpr (kPairs) {
                emu::check_items(values_in, size_t(n), "cub::DeviceRadixSort: d_values_in");
                emu::check_items(values_out, size_t(n), "cub::DeviceRadixSort: d_values_out");
                values.assign(values_in, values_in + n);
            }
            const std::vector<size_t> order = emu::radix_order(keys.data(), size_t(n), begin_bit, end_bit, descending);
            for (int64_t i = 0; i < n; i++) {
                keys_out[i] = keys[order[i]];
                if constexpr (kPairs) values_out[i] = values[order[i]];
            }
        });
        return cudaSuccess;
    }
};

}  // namespace cub
