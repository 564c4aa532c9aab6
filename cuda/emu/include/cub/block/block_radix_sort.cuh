// cub/block/block_radix_sort.cuh (emulator build): cub::BlockRadixSort, keys or key-value pairs
// held by the threads of a block, ITEMS_PER_THREAD each, sorted as CUB sorts them: by the key bits
// [begin_bit, end_bit) (signed keys with the sign bit flipped), stable, ascending or descending.
// Input is blocked (thread t holds ranks t * ITEMS_PER_THREAD + j); output is blocked (Sort,
// SortDescending) or striped (thread t gets ranks j * BLOCK_THREADS + t: *BlockedToStriped).
//
// How: every thread writes its items to shared memory, thread 0 runs a stable sort on the digits,
// every thread reads its items back, with a barrier between the steps. The order is fully defined
// by the rules above, so this is bit-identical to CUB's result. TempStorage holds all keys (and
// values), the same order of size as CUB's, so kernels keep their real shared-memory footprint.
// As in CUB, reusing the TempStorage needs a __syncthreads() after the sort.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "cub/block/block_scan.cuh"
#include "cub/util_type.cuh"

namespace cub {

template <typename KeyT, int BLOCK_DIM_X, int ITEMS_PER_THREAD, typename ValueT = NullType, int RADIX_BITS = 4,
          bool MEMOIZE_OUTER_SCAN = true, BlockScanAlgorithm INNER_SCAN_ALGORITHM = BLOCK_SCAN_WARP_SCANS,
          cudaSharedMemConfig SMEM_CONFIG = cudaSharedMemBankSizeFourByte, int BLOCK_DIM_Y = 1, int BLOCK_DIM_Z = 1>
class BlockRadixSort {
    static constexpr int kThreads = BLOCK_DIM_X * BLOCK_DIM_Y * BLOCK_DIM_Z;
    static constexpr int kItems = kThreads * ITEMS_PER_THREAD;
    static constexpr bool kKeysOnly = std::is_same<ValueT, NullType>::value;
    static constexpr size_t kValueBytes = kKeysOnly ? 1 : sizeof(ValueT) * kItems;

    struct Storage {
        alignas(KeyT) unsigned char keys[sizeof(KeyT) * kItems];
        alignas(ValueT) unsigned char values[kValueBytes];
    };

public:
    struct TempStorage : Storage {};  // raw bytes (CUB's Uninitialized): fits in a __shared__ union

    __device__ explicit BlockRadixSort(TempStorage& storage) : storage_(storage) {
        emu::require_block_threads("cub::BlockRadixSort", kThreads);
    }

    // keys-only (the site arguments name the caller's line in the emulator's deadlock reports)
    __device__ void Sort(KeyT (&keys)[ITEMS_PER_THREAD], int begin_bit = 0, int end_bit = sizeof(KeyT) * 8, RUSCA_EMU_SITE) {
        sort(keys, nullptr, begin_bit, end_bit, false, false, RUSCA_EMU_AT);
    }
    __device__ void SortDescending(KeyT (&keys)[ITEMS_PER_THREAD], int begin_bit = 0,
                                   int end_bit = sizeof(KeyT) * 8, RUSCA_EMU_SITE) {
        sort(keys, nullptr, begin_bit, end_bit, true, false, RUSCA_EMU_AT);
    }
    __device__ void SortBlockedToStriped(KeyT (&keys)[ITEMS_PER_THREAD], int begin_bit = 0,
                                         int end_bit = sizeof(KeyT) * 8, RUSCA_EMU_SITE) {
        sort(keys, nullptr, begin_bit, end_bit, false, true, RUSCA_EMU_AT);
    }
    __device__ void SortDescendingBlockedToStriped(KeyT (&keys)[ITEMS_PER_THREAD], int begin_bit = 0,
                                                   int end_bit = sizeof(KeyT) * 8, RUSCA_EMU_SITE) {
        sort(keys, nullptr, begin_bit, end_bit, true, true, RUSCA_EMU_AT);
    }

    // key-value pairs (values move with their keys)
    template <typename V = ValueT, typename = std::enable_if_t<!std::is_same<V, NullType>::value>>
    __device__ void Sort(KeyT (&keys)[ITEMS_PER_THREAD], V (&values)[ITEMS_PER_THREAD], int begin_bit = 0,
                         int end_bit = sizeof(KeyT) * 8, RUSCA_EMU_SITE) {
        sort(keys, values, begin_bit, end_bit, false, false, RUSCA_EMU_AT);
    }
    template <typename V = ValueT, typename = std::enable_if_t<!std::is_same<V, NullType>::value>>
    __device__ void SortDescending(KeyT (&keys)[ITEMS_PER_THREAD], V (&values)[ITEMS_PER_THREAD], int begin_bit = 0,
                                   int end_bit = sizeof(KeyT) * 8, RUSCA_EMU_SITE) {
        sort(keys, values, begin_bit, end_bit, true, false, RUSCA_EMU_AT);
    }
    template <typename V = ValueT, typename = std::enable_if_t<!std::is_same<V, NullType>::value>>
    __device__ void SortBlockedToStriped(KeyT (&keys)[ITEMS_PER_THREAD], V (&values)[ITEMS_PER_THREAD],
                                         int begin_bit = 0, int end_bit = sizeof(KeyT) * 8, RUSCA_EMU_SITE) {
        sort(keys, values, begin_bit, end_bit, false, true, RUSCA_EMU_AT);
    }
    template <typename V = ValueT, typename = std::enable_if_t<!std::is_same<V, NullType>::value>>
    __device__ void SortDescendingBlockedToStriped(KeyT (&keys)[ITEMS_PER_THREAD], V (&values)[ITEMS_PER_THREAD],
                                                   int begin_bit = 0, int end_bit = sizeof(KeyT) * 8, RUSCA_EMU_SITE) {
        sort(keys, values, begin_bit, end_bit, true, true, RUSCA_EMU_AT);
    }

private:
    TempStorage& storage_;

    KeyT* shared_keys() { return reinterpret_cast<KeyT*>(storage_.keys); }
    ValueT* shared_values() { return reinterpret_cast<ValueT*>(storage_.values); }

    // Thread 0: stable sort of the block's items in shared memory by their digits.
    void sort_shared(int begin_bit, int end_bit, bool descending) {
        KeyT* k = shared_keys();
        std::vector<int> order(kItems);
        std::iota(order.begin(), order.end(), 0);
        std::vector<uint64_t> digit(kItems);
        for (int i = 0; i < kItems; i++) digit[i] = emu::RadixDigits<KeyT>::of(k[i], begin_bit, end_bit);
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
            return descending ? digit[a] > digit[b] : digit[a] < digit[b];
        });
        std::vector<KeyT> sorted_keys(kItems);
        for (int i = 0; i < kItems; i++) sorted_keys[i] = k[order[i]];
        std::memcpy(static_cast<void*>(k), sorted_keys.data(), sizeof(KeyT) * kItems);
        if (!kKeysOnly) {
            ValueT* v = shared_values();
            std::vector<ValueT> sorted_values(kItems);
            for (int i = 0; i < kItems; i++) sorted_values[i] = v[order[i]];
            std::memcpy(static_cast<void*>(v), sorted_values.data(), sizeof(ValueT) * kItems);
        }
    }

    void sort(KeyT (&keys)[ITEMS_PER_THREAD], ValueT* values, int begin_bit, int end_bit, bool descending,
              bool striped_out, ::rusca::emu::Site site) {
        if (!emu::valid_bit_range<KeyT>(begin_bit, end_bit))
            throw ::rusca::emu::Fault("cub::BlockRadixSort: bit range [" + std::to_string(begin_bit) + ", " +
                                      std::to_string(end_bit) + ") does not fit the key type");
        const int tid = emu::linear_tid();
        for (int j = 0; j < ITEMS_PER_THREAD; j++) {  // blocked in
            shared_keys()[tid * ITEMS_PER_THREAD + j] = keys[j];
            if constexpr (!kKeysOnly) shared_values()[tid * ITEMS_PER_THREAD + j] = values[j];
        }
        __syncthreads(site.file, site.line);
        if (tid == 0) sort_shared(begin_bit, end_bit, descending);
        __syncthreads(site.file, site.line);
        for (int j = 0; j < ITEMS_PER_THREAD; j++) {
            const int rank = striped_out ? j * kThreads + tid : tid * ITEMS_PER_THREAD + j;
            keys[j] = shared_keys()[rank];
            if constexpr (!kKeysOnly) values[j] = shared_values()[rank];
        }
    }
};

}  // namespace cub
